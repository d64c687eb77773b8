"""The first stage of a connection on an entrypoint with ``proxyProtocol``: read the PROXY
protocol header a load balancer in front sends, then hand the connection to what serves it.

Every TCP connection of such an entrypoint starts here, before TLS, SNI peeking and HTTP.
From a trusted peer the header's source and destination become the connection's own
(``getPeer()`` and ``getHost()`` of its transport, so the HTTP engine, TLS, TCP routers,
middlewares and logs all see them); from another peer the header is read and dropped. What
the bytes are is decided by tsproxy.tcp.proxyproto.read_arrival; the wait is bounded by the
entrypoint's readTimeout, after which a connection whose header has not begun goes on
without one (go-proxyproto's header timeout, which Traefik sets to readTimeout).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import Protocol, ServerFactory

from tsproxy.http.backend import cancel_call
from tsproxy.http.entrypoint import TrustedPeers
from tsproxy.logs import get_logger
from tsproxy.tcp.pending import PendingConnection
from tsproxy.tcp.proxyproto import Endpoint, bytes_wanted, header_started, read_arrival

if TYPE_CHECKING:
    from tsproxy.config.entrypoints import ProxyProtocol

__all__ = ["ProxyHeaderFactory", "ProxyHeaderStage", "with_proxy_headers"]

log = get_logger(__name__)


def _address(endpoint: Endpoint) -> Any:
    host, port = endpoint
    kind = IPv6Address if ":" in host else IPv4Address
    return kind("TCP", host, port)


class ProxyHeaderStage(PendingConnection):
    """Reads the header, then gives the connection (and the bytes after the header) to the
    protocol ``build()`` makes, which then starts as if the connection had just come."""

    def __init__(self, factory: Any, trusted: bool, build: Callable[[], Protocol]) -> None:
        self.factory = factory
        self.trusted = trusted
        self.build = build
        self.buf = bytearray()
        self.wanted = 0  # no use parsing before the buffer holds this many bytes
        self.timer: Any = None
        self.done = False

    def _peer(self) -> str:
        return str(getattr(self.transport.getPeer(), "host", ""))  # type: ignore[union-attr]

    def connectionMade(self) -> None:
        self.factory.connections.add(self)
        timeout = self.factory.entrypoint.read_timeout
        if timeout > 0:
            self.timer = self.factory.clock.callLater(timeout, self._timed_out)

    def _timed_out(self) -> None:
        self.timer = None
        if self.done:
            return
        if header_started(bytes(self.buf)):
            log.debug("PROXY protocol header from {peer} not over in time", peer=self._peer())
            self._close()
            return
        self._hand_over(bytes(self.buf))

    def dataReceived(self, data: bytes) -> None:
        if self.done:
            return
        buf = self.buf
        buf += data
        if len(buf) < self.wanted:
            return  # a v2 header's rest in small pieces: parsed once, when it is all here
        try:
            arrival = read_arrival(bytes(buf), self.trusted)
        except ValueError as exc:
            log.debug(
                "bad PROXY protocol header from {peer}: {why}; closing",
                peer=self._peer(),
                why=str(exc),
            )
            self._close()
            return
        if arrival is None:
            self.wanted = bytes_wanted(bytes(buf))
            return  # more bytes needed (the parser bounds the header's size)
        if arrival.source is not None and arrival.destination is not None:
            transport: Any = self.transport
            peer, host = _address(arrival.source), _address(arrival.destination)
            transport.getPeer = lambda: peer
            transport.getHost = lambda: host
        self._hand_over(bytes(buf[arrival.consumed :]))

    def _close(self) -> None:
        self.done = True
        self.transport.loseConnection()  # type: ignore[union-attr]

    def _hand_over(self, data: bytes) -> None:
        self.done = True
        cancel_call(self.timer)
        self.timer = None
        self.buf = bytearray()
        self.factory.connections.discard(self)
        transport: Any = self.transport
        protocol = self.build()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        if data and not transport.disconnecting:
            # To whatever serves the connection now: a Dispatch that routed at accept has
            # handed it over already.
            transport.protocol.dataReceived(data)


class ProxyHeaderFactory(ServerFactory):
    """What the port of an entrypoint with ``proxyProtocol`` is given: each connection
    starts with a ProxyHeaderStage, then gets the protocol the entrypoint's own factory
    (``inner``, whose clock, timeouts and live connections the stage uses) builds."""

    noisy = False

    def __init__(self, inner: Any, accept: ProxyProtocol) -> None:
        self.inner = inner
        self.name = inner.name
        self.trusted = TrustedPeers(accept.trusted_ips, accept.insecure)

    def buildProtocol(self, addr: Any) -> Protocol:
        trusted = self.trusted(str(getattr(addr, "host", "")))
        return ProxyHeaderStage(self.inner, trusted, lambda: self.inner.buildProtocol(addr))

    def doStart(self) -> None:
        self.inner.doStart()

    def doStop(self) -> None:
        self.inner.doStop()


def with_proxy_headers(factory: Any) -> Any:
    """The factory to listen with for an entrypoint's ``factory``: itself, or wrapped in a
    ProxyHeaderFactory when the entrypoint has ``proxyProtocol``."""
    accept = factory.entrypoint.proxy_protocol
    return factory if accept is None else ProxyHeaderFactory(factory, accept)
