"""An HTTP entrypoint's factory: what every connection of the entrypoint shares.

The routing-table getter, the backend pool, the clock, the mirror sender, the observer
(metrics, access log) and which peers are trusted with X-Forwarded-*; the per-connection
protocol is in tsproxy.http.server. The factory is given what makes a connection's protocol
(``make_protocol``, tsproxy.http.h2switch.HTTPSwitch): the connection modules type their
factory as this class, so this module imports none of them (no import circle).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence

import attrs
from twisted.internet.protocol import Protocol, ServerFactory

from tsproxy.drain import Connections
from tsproxy.http.timers import TimerWheel
from tsproxy.http.wire import RequestPolicy

if TYPE_CHECKING:
    from tsproxy.api.internal import InternalEndpoints
    from tsproxy.config.static import EntryPoint
    from tsproxy.http.backend import BackendPool
    from tsproxy.http.mirror import MirrorSender
    from tsproxy.observe import Observer
    from tsproxy.runtime.table import RoutingTable


class TrustedPeers:
    """Which peers may set X-Forwarded-* themselves (entrypoint forwardedHeaders)."""

    def __init__(self, trusted: Sequence[str], insecure: bool) -> None:
        self.insecure = insecure
        self.networks = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def __call__(self, ip: str) -> bool:
        if self.insecure:
            return True
        if not self.networks:
            return False
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.networks)


@attrs.frozen
class RequestLimits:
    """What the entrypoint's connections accept of a request head (from its http: options)."""

    max_head_bytes: int
    policy: RequestPolicy

    @classmethod
    def of(cls, entrypoint: EntryPoint) -> RequestLimits:
        return cls(
            max_head_bytes=entrypoint.max_header_bytes,
            policy=RequestPolicy(
                max_headers=entrypoint.max_headers,
                sanitize_path=entrypoint.sanitize_path,
                denied_escapes=frozenset(e.encode("ascii") for e in entrypoint.denied_escapes),
            ),
        )


class HTTPEntryPointFactory(ServerFactory):
    """Builds the connections of one HTTP entrypoint."""

    noisy = False

    def __init__(
        self,
        entrypoint: EntryPoint,
        get_table: Callable[[], RoutingTable],
        pool: BackendPool,
        clock: Any,
        hostname: bytes,
        mirrors: Optional[MirrorSender] = None,
        tls: bool = False,
        observer: Optional[Observer] = None,
        *,
        make_protocol: Callable[[HTTPEntryPointFactory], Protocol],
    ) -> None:
        self.entrypoint = entrypoint
        self.name = entrypoint.name
        self.get_table = get_table
        self.pool = pool
        self.clock = clock
        #: The connections' readTimeout and idle timeouts (fired within a second).
        self.timers = TimerWheel(clock)
        self.hostname = hostname
        self.mirrors = mirrors
        self.tls = tls
        #: Gets every finished exchange and the connection count; None: nothing observed.
        self.observer = observer
        self.trusted = TrustedPeers(entrypoint.trusted_ips, entrypoint.insecure_forwarded)
        self.limits = RequestLimits.of(entrypoint)
        self.connections = Connections()
        #: The internal endpoints (api, dashboard, ping, metrics) this entrypoint answers
        #: before routing: a tsproxy.api.internal.InternalEndpoints, or None.
        self.internal: Optional[InternalEndpoints] = None
        #: What a router whose service is api@internal, dashboard@internal, ping@internal or
        #: prometheus@internal answers, by the part served ("api", ...); None: not served.
        self.routed_internal: Optional[Dict[str, InternalEndpoints]] = None
        #: Makes one connection's protocol (HTTPSwitch: HTTP/1.1, or HTTP/2 by its preface).
        self.make_protocol = make_protocol

    def buildProtocol(self, addr: Any) -> Protocol:
        return self.make_protocol(self)
