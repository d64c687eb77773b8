"""A TCP entrypoint carrying HTTP, HTTPS and TCP routers together (Traefik's TCP router).

Per connection, from the table current at accept:
- no TCP router and no HTTPS router: the connection is HTTP from the first byte;
- only plain TCP routers: route at accept without reading, so protocols where the server
  speaks first (SMTP, MySQL) work;
- otherwise peek: a TLS ClientHello (first byte 0x16) is parsed for SNI and ALPN and routed
  by the TLS rules (HTTPS hosts first, as Traefik does); other bytes go to the HTTP routers
  if the entrypoint has any, else to the plain TCP routers. The peek is bounded by the
  entrypoint's readTimeout.
Where TLS ends here, the handshake must be over within readTimeout of the accept too (a
client that sends a ClientHello and stops is closed then, as Go's http.Server does with its
read deadline), and a TCP router's backend is dialled only once the handshake is over.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, List, Optional

from OpenSSL.SSL import SENT_SHUTDOWN, Error, WantReadError, ZeroReturnError
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from tsproxy.http.backend import cancel_call
from tsproxy.http.entrypoint import HTTPEntryPointFactory
from tsproxy.http.h2switch import HTTPSwitch
from tsproxy.logs import get_logger
from tsproxy.middlewares.tcp import admit
from tsproxy.rules import TCPConnectionInfo
from tsproxy.runtime.tcp import HTTP, HTTPS, EntryPointTCP
from tsproxy.tcp.pending import PendingConnection
from tsproxy.tcp.relay import TCPRelay
from tsproxy.tcp.sni import HelloReader, MalformedHello, NotTLS

if TYPE_CHECKING:
    from tsproxy.runtime.tcp import HTTPSName, TCPRouter

log = get_logger(__name__)

_TLS_HANDSHAKE = 0x16
_SSL2_HELLO = 0x80  # Traefik takes it for TLS (and the handshake then fails)


class EntryPointFactory(HTTPEntryPointFactory):
    """Builds the connections of one TCP entrypoint: HTTP ones directly, others through a
    Dispatch that finds out where they go."""

    def __init__(self, *args: Any, reactor: Any, **kwargs: Any) -> None:
        super().__init__(*args, make_protocol=HTTPSwitch, **kwargs)
        self.reactor = reactor
        self._secure: Optional[HTTPEntryPointFactory] = None

    def buildProtocol(self, addr: Any) -> Protocol:  # type: ignore[override]
        table = self.get_table()
        routing = table.entrypoint_tcp(self.name)
        if routing is None or routing.mode == "http":
            return super().buildProtocol(addr)
        dispatch = Dispatch(routing, table.tls)
        dispatch.factory = self
        return dispatch

    @property
    def secure(self) -> HTTPEntryPointFactory:
        """The HTTP engine for connections whose TLS ends here (HTTPS routers); it shares
        this entrypoint's pool, clock, observers and live connections."""
        if self._secure is None:
            # Only read by the HTTP connections handed over here, never asked to build one.
            secure = copy.copy(self)
            secure.tls = True
            self._secure = secure
        return self._secure


@implementer(IHalfCloseableProtocol)
class _TLSLayer(TLSMemoryBIOProtocol):
    """TLS ended here, with half-closes both ways as Go's tls.Conn gives them to Traefik.

    - The peer's close_notify, or a FIN after the handshake, ends only the reading half:
      the wrapped protocol gets readConnectionLost (when it takes half-closes) and may
      still answer. Twisted's layer would shut the whole connection down instead.
    - loseWriteConnection sends close_notify and keeps reading (Go's CloseWrite).
    - Once both halves are over the socket is closed, without waiting for the peer's
      close_notify (as Go's Close); connectionLost reaches the wrapped protocol once, from
      the socket's.

    Twisted's layer waits for a registered producer to go away before it shuts TLS down on
    loseConnection; our protocols keep theirs (backpressure watchers) for the connection's
    life, so closing lets go of it first.

    This overrides the private ``_flushReceiveBIO`` of TLSMemoryBIOProtocol and uses its
    private state (``_handshakeDone``, ``_appSendBuffer``, ``_lostTLSConnection``,
    ``_producer``); that code is the same in Twisted 25.5 and 26.10.
    """

    _write_closed = False  # loseWriteConnection (or a close after a half-close) was called
    _notify_due = False  # ...and our close_notify could not go out yet (handshake, writes)
    _read_closed = False  # the peer ended its stream; the wrapped protocol was told
    _lost = False  # connectionLost has begun
    _handshake_timer: Any = None  # aborts the connection if the handshake is not over in time

    def bound_handshake(self, clock: Any, seconds: float) -> None:
        """Abort the connection unless the handshake is over within ``seconds`` on
        ``clock``."""
        self._handshake_timer = clock.callLater(max(seconds, 0.0), self._handshake_timed_out)

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if self._handshakeDone or self._lost or self.transport is None:
            return
        log.debug(
            "TLS handshake from {peer} not over in time: closing",
            peer=getattr(self.getPeer(), "host", ""),
        )
        self.abortConnection()

    def _checkHandshakeStatus(self) -> None:
        super()._checkHandshakeStatus()
        if self._handshakeDone:
            cancel_call(self._handshake_timer)
            self._handshake_timer = None

    def write(self, data: bytes) -> None:
        if not self._write_closed:
            super().write(data)

    def writeSequence(self, data: Any) -> None:
        if not self._write_closed:
            super().writeSequence(data)

    def loseWriteConnection(self) -> None:
        """Send close_notify (after what is buffered) and keep reading."""
        if self._write_closed or self.disconnecting or not self.connected:
            return
        if self._producer is not None:
            self.unregisterProducer()
        self._write_closed = True
        self._notify_due = True
        self._send_close_notify()
        if self._read_closed:
            self._close_socket()

    def loseConnection(self) -> None:
        if self._producer is not None:
            self.unregisterProducer()
        if self.disconnecting or not self.connected:
            return
        if self._handshakeDone and (
            self._read_closed or self._write_closed or not self._appSendBuffer
        ):
            # Send our close_notify (after what is written) and close the socket now, as
            # Go's tls.Conn.Close does: waiting for the peer's close_notify could be forever
            # (an idle pooled client that does not read, a FIN, terminationDelay over).
            if not self._write_closed:
                self._write_closed = True
                self._notify_due = True
            self._close_socket()
            return
        super().loseConnection()

    def _send_close_notify(self) -> None:
        """Our close_notify, once nothing of ours is waiting for the handshake."""
        if not self._notify_due or self._lostTLSConnection:
            return
        if not self._handshakeDone or self._appSendBuffer:
            return  # dataReceived tries again when those have gone out
        self._notify_due = False
        tls = self._tlsConnection
        if tls.get_shutdown() & SENT_SHUTDOWN:
            return
        try:
            tls.shutdown()
        except Error:
            self._tlsShutdownFinished(Failure())
            return
        self._flushSendBIO()

    def _close_socket(self) -> None:
        """Both halves are over: close once what is written has gone out."""
        self._send_close_notify()
        if self._producer is not None:
            self.unregisterProducer()
        self.disconnecting = True
        self.transport.loseConnection()  # type: ignore[union-attr]

    def _peer_finished(self) -> bool:
        """The peer sends nothing more. With a wrapped protocol that takes half-closes, tell
        it and go on writing; False if the connection has to end whole instead."""
        if self._lost or self.disconnecting or self._lostTLSConnection:
            return False
        half = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if half is None:
            return False
        self._read_closed = True
        half.readConnectionLost()
        if self._write_closed and not self.disconnecting:
            self._close_socket()
        return True

    def dataReceived(self, data: bytes) -> None:
        if self._read_closed:
            return  # nothing may follow a close_notify
        super().dataReceived(data)
        if self._notify_due and not self._notify_blocked():
            self._send_close_notify()
            if self._read_closed and not self.disconnecting:
                self._close_socket()

    def _notify_blocked(self) -> bool:
        return not self._handshakeDone or bool(self._appSendBuffer) or self._lostTLSConnection

    def _flushReceiveBIO(self) -> None:
        """Twisted's loop, except that the peer's close_notify ends only the reading half."""
        while not self._lostTLSConnection and not self._read_closed:
            try:
                data = self._tlsConnection.recv(2**15)
            except WantReadError:
                break
            except ZeroReturnError:
                if not self._peer_finished():
                    self._shutdownTLS()
                    self._tlsShutdownFinished(None)
            except Error:
                self._tlsShutdownFinished(Failure())
            else:
                if not self._aborted:
                    ProtocolWrapper.dataReceived(self, data)
        if self._tlsConnection is not None:
            self._flushSendBIO()

    def readConnectionLost(self) -> None:
        """A FIN from the peer: after the handshake, the end of its stream (Go reads it as
        EOF too); before, or with our writes stuck in the handshake, the end of it all."""
        if self._read_closed:
            return
        if self._handshakeDone and not self._appSendBuffer and self._peer_finished():
            return
        self._close_socket()

    def writeConnectionLost(self) -> None:
        """Not used: our half-close is a close_notify, the socket's write half stays open."""

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._lost = True
        cancel_call(self._handshake_timer)
        self._handshake_timer = None
        super().connectionLost(reason)


class _TLSFactory(TLSMemoryBIOFactory):
    protocol = _TLSLayer


class _ServerTLSLayer(_TLSLayer):
    """TLS to a TCP server dialled with ``tls: true``: the factory's ``preamble`` (a PROXY
    protocol header) goes first, in clear, as Traefik writes it before its handshake."""

    def makeConnection(self, transport: Any) -> None:
        preamble = self.factory.preamble  # type: ignore[attr-defined]
        if preamble:
            transport.write(preamble)
        super().makeConnection(transport)


class _ServerTLSFactory(TLSMemoryBIOFactory):
    protocol = _ServerTLSLayer
    noisy = False

    def __init__(self, creator: Any, wrapped: Any, preamble: bytes) -> None:
        super().__init__(creator, True, wrapped)
        self.preamble = preamble


def server_tls_factory(creator: Any, wrapped: Any, preamble: bytes = b"") -> Any:
    """A client factory dialling a TCP server with TLS (``creator``'s client options) around
    ``wrapped``, with half-closes as Go's tls.Conn; ``preamble`` is written before TLS."""
    return _ServerTLSFactory(creator, wrapped, preamble)


class _Wrapped(Factory):
    """A factory handing out one protocol already made, for TLSMemoryBIOFactory."""

    def __init__(self, protocol: Protocol) -> None:
        self.protocol_made = protocol

    def buildProtocol(self, addr: Any) -> Protocol:  # type: ignore[override]
        return self.protocol_made


@implementer(IHalfCloseableProtocol)
class Dispatch(PendingConnection):
    """A connection whose destination is not known yet: route at once or peek first."""

    factory: EntryPointFactory

    def __init__(self, routing: EntryPointTCP, tls: Any = None) -> None:
        self.routing = routing
        self.tls = tls  # the TLS manager of the same table as ``routing``
        self.hello = HelloReader()
        self.buf: List[bytes] = []
        self.timer: Any = None
        self.deadline: Optional[float] = None  # when the peek, and a TLS handshake, must end
        self.peer_ip = ""
        self.done = False

    def connectionMade(self) -> None:
        factory = self.factory
        factory.connections.add(self)
        self.peer_ip = getattr(self.transport.getPeer(), "host", "")  # type: ignore[union-attr]
        router = self.routing.route_at_accept(self.peer_ip)
        if router is not None:
            self._relay(router, b"")
            return
        timeout = factory.entrypoint.read_timeout
        if timeout > 0:
            self.deadline = factory.clock.seconds() + timeout
            self.timer = factory.clock.callLater(timeout, self._peek_timed_out)

    def _peek_timed_out(self) -> None:
        self.timer = None
        log.debug("no first bytes from {peer} in time: closing", peer=self.peer_ip)
        self.transport.loseConnection()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self.done:
            return
        self.buf.append(data)
        first = self.buf[0][0]
        if first not in (_TLS_HANDSHAKE, _SSL2_HELLO):
            self._plain()
            return
        sni, alpn = "", ()  # type: tuple[str, tuple[str, ...]]
        try:
            hello = self.hello.feed(data)
        except (NotTLS, MalformedHello):
            # The first byte says TLS (a handshake record, or SSLv2's hello): Traefik goes on
            # as TLS with an empty SNI, and the handshake decides.
            pass
        else:
            if hello is None:
                return  # more bytes needed (the parser bounds the size)
            sni, alpn = hello.server_name, hello.alpn
        self._tls(TCPConnectionInfo(sni, alpn, self.peer_ip))  # type: ignore[arg-type]

    def readConnectionLost(self) -> None:
        if not self.done:
            self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]

    # -- decisions -------------------------------------------------------------------------

    def _plain(self) -> None:
        kind, router = self.routing.route_cleartext(self.peer_ip)
        if kind == HTTP:
            self._hand_over(self._http(self.factory))
            return
        if router is None:
            log.debug("no TCP router for {peer}: closing", peer=self.peer_ip)
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self._relay(router, self._take())

    def _tls(self, info: TCPConnectionInfo) -> None:
        kind, target = self.routing.route_tls(info)
        tls: Any = self.tls
        if kind == HTTPS:
            named: Optional[HTTPSName] = target  # type: ignore[assignment]
            creator = None
            if tls is not None:
                options = named.options if named is not None else None
                creator = tls.server_creator(info.sni, options, local_ip=self._local_ip())
            if creator is None:
                self._refuse(info, "no certificate for it")
                return
            inner = self._http(self.factory.secure)
            self._hand_over(_TLSFactory(creator, False, _Wrapped(inner)), tls=True)
            return
        router: TCPRouter = target  # type: ignore[assignment]
        if not router.terminates:
            self._relay(router, self._take())
            return
        creator = None
        if tls is not None:
            creator = tls.server_creator(
                info.sni,
                router.tls.options,  # type: ignore[union-attr]
                local_ip=self._local_ip(),
            )
        if creator is None:
            self._refuse(info, f"TCP router {router.name} has no certificate for it")
            return
        relay = self._make_relay(router, after_handshake=True)
        if relay is None:
            return
        self._hand_over(_TLSFactory(creator, False, _Wrapped(relay)), tls=True)

    def _local_ip(self) -> str:
        return str(getattr(self.transport.getHost(), "host", ""))  # type: ignore[union-attr]

    def _refuse(self, info: TCPConnectionInfo, why: str) -> None:
        log.debug(
            "TLS connection from {peer} for {sni!r} closed: {why}",
            peer=self.peer_ip,
            sni=info.sni,
            why=why,
        )
        self.transport.loseConnection()  # type: ignore[union-attr]

    # -- hand-overs ------------------------------------------------------------------------

    def _take(self) -> bytes:
        data = b"".join(self.buf)
        self.buf = []
        return data

    def _http(self, factory: HTTPEntryPointFactory) -> HTTPSwitch:
        return HTTPSwitch(factory)

    def _make_relay(
        self, router: TCPRouter, pending: bytes = b"", after_handshake: bool = False
    ) -> Optional[TCPRelay]:
        releases = admit(router.chain, self.peer_ip) if router.chain else []
        if releases is None:
            # A TCP middleware refused it: closed before the backend is dialled, no byte sent.
            log.debug("TCP router {router}: {peer} refused", router=router.name, peer=self.peer_ip)
            self.transport.loseConnection()  # type: ignore[union-attr]
            return None
        server, services = router.service.pick_path()
        observer = self.factory.observer
        if observer is not None and observer.metrics is not None and server is not None:
            observer.metrics.l4_session("tcp", services)
        if server is None:
            for release in releases:
                release()
            log.warn("TCP router {router}: no server available, closing", router=router.name)
            self.transport.loseConnection()  # type: ignore[union-attr]
            return None
        factory = self.factory
        relay = TCPRelay(
            router,
            server,
            factory.reactor,
            factory.clock,
            factory.connections,
            pending,
            observer=factory.observer,
            entrypoint=factory.name,
            after_handshake=after_handshake,
            server_tls=server_tls_factory,
        )
        relay.releases = releases
        return relay

    def _relay(self, router: TCPRouter, pending: bytes) -> None:
        relay = self._make_relay(router, pending)
        if relay is not None:
            self._hand_over(relay)

    def _hand_over(self, protocol: Any, tls: bool = False) -> None:
        """Give the connection (and what was read of it) to ``protocol``; with ``tls``,
        ``protocol`` is a TLS factory whose layer ends TLS here first."""
        self.done = True
        cancel_call(self.timer)
        self.timer = None
        self.factory.connections.discard(self)
        transport: Any = self.transport
        assert transport is not None
        data = self._take()
        if tls:
            protocol = protocol.buildProtocol(transport.getPeer())  # type: ignore[union-attr]
            if self.deadline is not None:
                clock = self.factory.clock
                protocol.bound_handshake(clock, self.deadline - clock.seconds())
        transport.protocol = protocol  # type: ignore[union-attr]
        protocol.makeConnection(transport)
        if data:
            protocol.dataReceived(data)
