"""How TCP servers are dialled: TCPServer (an address with its PROXY protocol version,
terminationDelay, dial settings and TLS), the servers of a service through the transport it
names, and the ServersTransportTCP resources a CRD TCP service may name. Pure.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

import attrs

from tsproxy.config.resources import TransportSettings
from tsproxy.config.transports_tcp import ServersTransportTCP, TCPTransportSettings
from tsproxy.runtime.endpoints import BuildError
from tsproxy.runtime.l4 import host_port

__all__ = [
    "NamedTCPTransports",
    "TCPServer",
    "TCPTransports",
    "chosen_transport",
    "named_default",
    "tcp_servers",
]

#: (name a TCP service gives, its route's namespace) → the transport; BuildError if none.
TCPTransports = Callable[[str, str], TCPTransportSettings]


@attrs.frozen(cache_hash=True)
class TCPServer:
    """One backend address and how to talk to it: ``proxy_protocol`` 0 (none), 1 or 2;
    ``termination_delay`` in seconds after one side half-closes (negative: wait forever);
    ``dial_timeout`` (0: none) and ``dial_keep_alive`` (0: 15 s, negative: off) in seconds,
    from the TCP servers transport; ``tls``: dialled with TLS, as those settings say."""

    host: str
    port: int
    proxy_protocol: int = 0
    termination_delay: float = 0.1
    dial_timeout: float = 30.0
    dial_keep_alive: float = 15.0
    tls: Optional[TransportSettings] = None

    @property
    def address(self) -> str:
        return host_port(self.host, self.port)


#: Why a server with ``tls: true`` cannot be dialled through a TCP transport that neither has a
#: serverName nor skips verification: Go's TLS client needs a name to verify the certificate
#: by (Traefik fails every connection: "either ServerName or InsecureSkipVerify must be
#: specified").
_TLS_NEEDS_SKIP = (
    "tls: dialling the server with TLS through the default TCP transport needs"
    " tcpServersTransport.tls.insecureSkipVerify: true in the static configuration (it has no"
    " serverName to verify the certificate by: Traefik fails every connection)"
)
_TLS_NEEDS_NAME = (
    "tls: dialling the server with TLS through serversTransport {name} needs its"
    " tls.serverName or tls.insecureSkipVerify: true (without either Traefik fails every"
    " connection)"
)


def named_default(transport: TCPTransportSettings) -> TCPTransportSettings:
    """The default TCP transport as a service naming it (``default@internal``) gets it: as
    with any transport named, the service's own terminationDelay and proxyProtocol are
    ignored, and Traefik 3.7's default dialer has neither (no PROXY header; after a
    half-close the other direction is closed at once), as its binary shows."""
    return attrs.evolve(transport, termination_delay=0.0, proxy_protocol=0)


def tcp_servers(
    pairs: Iterable[Tuple[str, int]],
    proxy_protocol: int,
    termination_delay: float,
    tls: bool,
    transport: TCPTransportSettings,
    name: str = "",
) -> Tuple[TCPServer, ...]:
    """The servers at ``pairs``, dialled as the TCP servers ``transport`` says: the static
    configuration's default, or the one the service names (``name``), whose terminationDelay
    and PROXY protocol then replace the service's own; BuildError for ``tls`` it cannot
    verify."""
    if tls and not (transport.tls.insecure_skip_verify or transport.tls.server_name):
        raise BuildError(_TLS_NEEDS_NAME.format(name=name) if name else _TLS_NEEDS_SKIP)
    if transport.termination_delay is not None:
        termination_delay = transport.termination_delay
    if transport.proxy_protocol is not None:
        proxy_protocol = transport.proxy_protocol
    return tuple(
        TCPServer(
            host,
            port,
            proxy_protocol,
            termination_delay,
            transport.dial_timeout,
            transport.dial_keep_alive,
            transport.tls if tls else None,
        )
        for host, port in pairs
    )


def chosen_transport(
    written: str,
    namespace: str,
    default: TCPTransportSettings,
    named: Optional[TCPTransports],
) -> TCPTransportSettings:
    """The transport a TCP service (of a route in ``namespace``) names: none is ``default``
    (the static tcpServersTransport), ``default@internal`` that as named_default says,
    another one what ``named`` finds; BuildError when it finds none."""
    if not written:
        return default
    if written == "default@internal":
        return named_default(default)
    if named is None:
        raise BuildError(f"serversTransport: {written} not found")
    try:
        return named(written, namespace)
    except BuildError as exc:
        raise BuildError(f"serversTransport: {exc}") from None


_CRD = "@kubernetescrd"


class NamedTCPTransports:
    """The ServersTransportTCP resources of one build, found as Traefik's
    makeTCPServersTransportKey finds them: ``<name>`` in the route's namespace, or
    ``<ns>-<name>@kubernetescrd`` where cross-namespace references are allowed. Their
    Secrets and ConfigMaps are read by ``builder`` (the build's service builder) as a
    ServersTransport's; what cannot be honoured is a BuildError."""

    def __init__(self, resources: Sequence[Any], builder: Any) -> None:
        self.builder = builder
        self.found: Dict[Tuple[str, str], ServersTransportTCP] = {
            (r.meta.namespace, r.meta.name): r
            for r in resources
            if isinstance(r, ServersTransportTCP)
        }

    def __call__(self, name: str, namespace: str) -> TCPTransportSettings:
        builder = self.builder
        if name.endswith(_CRD):
            builder._qualified_allowed("ServersTransportTCP", name)
            wanted = name[: -len(_CRD)]
            found = [t for k, t in self.found.items() if builder.normalized(k) == wanted]
        elif "@" in name:
            raise BuildError(
                f"ServersTransportTCP {name}: TCP servers transports of other providers are not"
                " reachable from the kubernetescrd provider yet"
            )
        else:
            transport = self.found.get((namespace, name))
            found = [] if transport is None else [transport]
        if not found:
            raise BuildError(f"ServersTransportTCP {name} not found in namespace {namespace}")
        tls = builder._usable(f"{name} (ServersTransportTCP)", found[0])
        return attrs.evolve(found[0].tcp, tls=tls)
