"""How servers are reached: the static configuration's default transports, Traefik's
``default@internal`` ones (``serversTransport``: HTTP, what every service, mirror and health
check naming no serversTransport uses; ``tcpServersTransport``: TCP servers whose service
names none). The named TCP transports a TCP service may name instead (the ServersTransportTCP
kind, the file provider's ``tcp.serversTransports``) are in tsproxy.config.transports_tcp.

Pure: the CA files ``rootCAs`` names are read through the ``read_file`` given, as the file
provider's serversTransports read theirs.
"""

from __future__ import annotations

from typing import Callable, Optional

import attrs

from tsproxy.config.fileformat import read_root_cas
from tsproxy.config.kinds_services import read_transport_tuning
from tsproxy.config.resources import TransportSettings
from tsproxy.config.schema import Fields

# The named TCP transports live in transports_tcp (the file provider's reader uses them, and
# this module reads its CA files through the file provider's helper).
from tsproxy.config.transports_tcp import (
    ServersTransportTCP,
    TCPTransportSettings,
    parse_servers_transport_tcp,
    read_tcp_transport,
)

__all__ = [
    "ReadFile",
    "ServersTransportTCP",
    "TCPTransportSettings",
    "parse_servers_transport",
    "parse_servers_transport_tcp",
    "parse_tcp_servers_transport",
    "read_tcp_transport",
]


ReadFile = Optional[Callable[[str], bytes]]
#: The words the file provider's serversTransports refuse spiffe with: it changes which
#: servers are trusted, so it is an error rather than a notice (fail closed).
_SPIFFE = "SPIFFE is not supported yet (no workload API client)"


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
