"""Named TCP transports: the ServersTransportTCP kind and the file provider's
``tcp.serversTransports`` entries a TCP service may name, and the TCPTransportSettings every
TCP server is dialled by (the static ``tcpServersTransport`` gives the default one, read in
tsproxy.config.transports). Pure.
"""

from __future__ import annotations

from typing import Optional, Tuple

import attrs

from tsproxy.config.kinds_services import read_root_ca_refs
from tsproxy.config.resources import Meta, TransportSettings
from tsproxy.config.schema import Fields

__all__ = [
    "ServersTransportTCP",
    "TCPTransportSettings",
    "parse_servers_transport_tcp",
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


def read_proxy_protocol(fields: Fields) -> int:
    """A ``proxyProtocol`` section's version: 0 when absent, 2 when it names none."""
    present, proxy = fields.section("proxyProtocol")
    if not present:
        return 0
    if proxy is None:
        return 2
    version = proxy.integer("version", 2, minimum=1, maximum=2)
    proxy.done()
    return version


def read_tcp_transport(section: Fields, tls: TransportSettings) -> TCPTransportSettings:
    """The fields of a named TCP transport besides ``tls`` (read by the caller: Secrets in
    a CRD, files or PEM in the file provider), with Traefik's defaults: dialTimeout 30s,
    dialKeepAlive 15s, terminationDelay 100ms, no PROXY protocol (version 2 when the
    section is there without one)."""
    proxy_protocol = read_proxy_protocol(section)
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
