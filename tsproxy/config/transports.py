"""How servers are reached: the static configuration's default transports, Traefik's
``default@internal`` ones (``serversTransport``: HTTP, what every service, mirror and health
check naming no serversTransport uses; ``tcpServersTransport``: TCP servers whose service
names none), and the named TCP transports a TCP service may name instead (the
ServersTransportTCP kind, the file provider's ``tcp.serversTransports``).

Pure: the CA files ``rootCAs`` names are read through the ``read_file`` given, as the file
provider's serversTransports read theirs.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import attrs

from tsproxy.config.fileformat import read_root_cas
from tsproxy.config.kinds_services import read_root_ca_refs, read_transport_tuning
from tsproxy.config.resources import Meta, TransportSettings
from tsproxy.config.schema import Fields

__all__ = [
    "ReadFile",
    "ServersTransportTCP",
    "TCPTransportSettings",
    "parse_servers_transport",
    "parse_servers_transport_tcp",
    "parse_tcp_servers_transport",
    "read_tcp_transport",
]


@attrs.frozen
class TCPTransportSettings:
    """How to reach TCP servers (Traefik's TCP servers transport). Seconds: ``dial_timeout``
    0 is none; ``dial_keep_alive`` 0 is Go's 15 s, negative turns keep-alive probes off.
    ``tls`` (its ``insecure_skip_verify`` and ``root_cas``) shapes the TLS to servers dialled
    with ``tls: true``."""

    dial_timeout: float = 30.0
    dial_keep_alive: float = 15.0
    tls: TransportSettings = TransportSettings()
    #: A named transport's ``terminationDelay`` (seconds, negative: forever) and PROXY
    #: protocol version (0: none); None in the default transport, where the service's own
    #: are used. Traefik 3.7 ignores a service's own once it names a transport.
    termination_delay: Optional[float] = None
    proxy_protocol: Optional[int] = None


@attrs.frozen
class ServersTransportTCP:
    """A ServersTransportTCP (CRD): its settings, the Secrets and ConfigMaps its ``tls``
    names (read when a service uses it, as a ServersTransport's) and the TLS fields tsproxy
    cannot honour (``unsupported``: a service naming it is disabled, never served without
    them)."""

    meta: Meta
    tcp: TCPTransportSettings = TCPTransportSettings()
    unsupported: Tuple[str, ...] = ()
    root_ca_secrets: Tuple[str, ...] = ()
    certificate_secrets: Tuple[str, ...] = ()
    root_ca_config_maps: Tuple[str, ...] = ()

    @property
    def settings(self) -> TransportSettings:
        """The TLS part, as a ServersTransport's settings (which Secrets then complete)."""
        return self.tcp.tls


ReadFile = Optional[Callable[[str], bytes]]
#: The words the file provider's serversTransports refuse spiffe with: it changes which
#: servers are trusted, so it is an error rather than a notice (fail closed).
_SPIFFE = "TLS towards the servers is not supported yet"


def _refuse_spiffe(fields: Fields) -> None:
    if fields.has("spiffe") or "spiffe" in fields.data:  # ``spiffe:`` alone enables it too
        raise fields.fail("spiffe", _SPIFFE)


def parse_servers_transport(root: Fields, read_file: ReadFile) -> TransportSettings:
    """``serversTransport``: Traefik's ``default@internal`` HTTP transport, read as the
    file provider reads a serversTransport (the same timeouts, limits and rootCAs)."""
    section = root.mapping("serversTransport")
    if section is None:
        return TransportSettings()
    _refuse_spiffe(section)
    settings = attrs.evolve(
        read_transport_tuning(section, h2_timeouts=False),
        insecure_skip_verify=section.boolean("insecureSkipVerify", False),
        root_cas=read_root_cas(section, read_file),
    )
    section.done()
    return settings


def parse_tcp_servers_transport(root: Fields, read_file: ReadFile) -> TCPTransportSettings:
    """``tcpServersTransport``: Traefik's default TCP transport. ``terminationDelay`` is read
    and not applied: Traefik 3.7 leaves it out of the default transport it makes."""
    section = root.mapping("tcpServersTransport")
    if section is None:
        return TCPTransportSettings()
    tls = TransportSettings()
    _present, tls_fields = section.section("tls")
    if tls_fields is not None:
        _refuse_spiffe(tls_fields)
        tls = TransportSettings(
            insecure_skip_verify=tls_fields.boolean("insecureSkipVerify", False),
            root_cas=read_root_cas(tls_fields, read_file),
        )
        tls_fields.done()
    settings = TCPTransportSettings(
        dial_timeout=section.duration("dialTimeout", 30.0),
        dial_keep_alive=section.duration("dialKeepAlive", 15.0, negative=True),
        tls=tls,
    )
    section.duration("terminationDelay", 0.1, negative=True)  # checked all the same
    if section.has("terminationDelay"):
        section.note(
            "terminationDelay",
            "not applied: Traefik 3.7 leaves it out of its default TCP transport too (a TCP"
            " service's own terminationDelay, 100ms unless set, is used)",
        )
    section.done()
    return settings


def read_tcp_transport(section: Fields, tls: TransportSettings) -> TCPTransportSettings:
    """The fields of a named TCP transport besides ``tls`` (read by the caller: Secrets in
    a CRD, files or PEM in the file provider), with Traefik's defaults: dialTimeout 30s,
    dialKeepAlive 15s, terminationDelay 100ms, no PROXY protocol (version 2 when the
    section is there without one)."""
    proxy_protocol = 0
    present, proxy = section.section("proxyProtocol")
    if present:
        proxy_protocol = 2
        if proxy is not None:
            proxy_protocol = proxy.integer("version", 2, minimum=1, maximum=2)
            proxy.done()
    settings = TCPTransportSettings(
        dial_timeout=section.duration("dialTimeout", 30.0),
        dial_keep_alive=section.duration("dialKeepAlive", 15.0, negative=True),
        tls=tls,
        termination_delay=section.duration("terminationDelay", 0.1, negative=True),
        proxy_protocol=proxy_protocol,
    )
    section.done()
    return settings


#: ServersTransportTCP ``tls`` fields tsproxy does not implement: kept by name, and every
#: service naming the transport is disabled (they change which servers are trusted).
_TCP_TLS_UNSUPPORTED = ("peerCertSANs", "spiffe")


def parse_servers_transport_tcp(root: Fields, meta: Meta) -> ServersTransportTCP:
    """A ServersTransportTCP (``traefik.io/v1alpha1``): dial settings, terminationDelay,
    proxyProtocol, and ``tls`` (serverName, insecureSkipVerify, peerCertURI; rootCAs from
    Secrets or ConfigMaps, client certificates from Secrets, read when a service uses it)."""
    spec = root.mapping("spec", required=True)
    assert spec is not None
    tls = TransportSettings()
    unsupported: Tuple[str, ...] = ()
    roots: Tuple[str, ...] = ()
    maps: Tuple[str, ...] = ()
    certificates: Tuple[str, ...] = ()
    _present, tls_fields = spec.section("tls")
    if tls_fields is not None:
        unsupported = tuple(
            f"tls.{name}"
            for name in _TCP_TLS_UNSUPPORTED
            if tls_fields.has(name) or name in tls_fields.data
        )
        roots, maps = read_root_ca_refs(tls_fields)
        certificates = tls_fields.strings("certificatesSecrets")
        tls = TransportSettings(
            server_name=tls_fields.string("serverName"),
            insecure_skip_verify=tls_fields.boolean("insecureSkipVerify", False),
            peer_cert_uri=tls_fields.string("peerCertURI"),
        )
        tls_fields.done(_TCP_TLS_UNSUPPORTED)
    settings = read_tcp_transport(spec, tls)
    return ServersTransportTCP(meta, settings, unsupported, roots, certificates, maps)
