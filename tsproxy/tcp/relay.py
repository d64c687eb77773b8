"""Relaying one client connection to a TCP backend: full duplex, half-close, backpressure.

The client side is whatever transport the connection has by then (the accepted socket, or a
TLS layer that terminates here). Each transport is registered as the streaming producer of
the other, so a slow reader pauses the fast writer and nothing is buffered without bound.
When one side ends its stream, the other side's write half is closed (FIN, or close_notify
under TLS) and, as in Traefik, both are closed after the service's terminationDelay unless the
other side ends too. The backend is dialled as the server's TCP transport says: dial timeout,
TCP keep-alive, and TLS for a server with ``tls: true`` (a PROXY protocol header goes first,
in clear, as Traefik writes it before its handshake).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Optional

from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IHandshakeListener,
    IPushProducer,
)
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from tsproxy.http.backend_tls import client_options
from tsproxy.logs import get_logger
from tsproxy.nodelay import set_no_delay
from tsproxy.tcp import proxyproto

if TYPE_CHECKING:
    from tsproxy.runtime.tcp import TCPRouter, TCPServer

log = get_logger(__name__)

#: Go's keep-alive period when a dialer's KeepAlive is 0.
_KEEP_ALIVE_DEFAULT = 15.0


def keep_alive(transport: Any, seconds: float) -> None:
    """TCP keep-alive probes on ``transport``'s socket as Go's Dialer.KeepAlive sets them:
    idle time and interval both ``seconds`` (0: 15 s); negative leaves them off. Under a TLS
    layer (whose handle is its OpenSSL connection) the socket below is set; a transport
    without a socket, or a socket without the options, is left."""
    if seconds < 0:
        return
    try:
        sock = transport.getHandle()
        while not hasattr(sock, "setsockopt") and transport is not None:
            transport = getattr(transport, "transport", None)
            sock = transport.getHandle()
        period = max(1, int(round(seconds or _KEEP_ALIVE_DEFAULT)))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option in ("TCP_KEEPIDLE", "TCP_KEEPINTVL"):
            if hasattr(socket, option):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), period)
    except (OSError, AttributeError, NotImplementedError):
        pass


def _endpoint(address: Any) -> Optional[tuple[str, int]]:
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is None or port is None:
        return None
    return str(host), int(port)


def _close(transport: Any) -> None:
    """Close once what is buffered is written. The other side is let go of as producer
    first: with a paused producer registered, Twisted would wait for it to resume (which a
    finished peer never does) instead of closing."""
    transport.unregisterProducer()
    transport.loseConnection()


def _close_write(transport: Any) -> None:
    """Half-close: the stream feeding ``transport`` has ended, so end its write half (a FIN;
    a TLS layer ending here sends close_notify and keeps reading, as Go's CloseWrite)."""
    transport.unregisterProducer()
    if not getattr(transport, "connected", 0):
        transport.loseConnection()
        return
    transport.loseWriteConnection()


@implementer(IHalfCloseableProtocol, IHandshakeListener)
class _BackendSide(Protocol):
    """The connection to the backend server, reporting to its relay."""

    handshake_done = False  # with TLS to the server: its handshake is over

    def __init__(self, relay: TCPRelay) -> None:
        self.relay = relay

    def connectionMade(self) -> None:
        set_no_delay(self.transport)
        keep_alive(self.transport, self.relay.server.dial_keep_alive)
        self.relay.backend_connected(self)

    def handshakeCompleted(self) -> None:
        self.handshake_done = True

    def dataReceived(self, data: bytes) -> None:
        self.relay.transport.write(data)  # type: ignore[union-attr]

    def readConnectionLost(self) -> None:
        self.relay.backend_eof()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.relay.backend_lost(
            reason, self.relay.server.tls is not None and not self.handshake_done
        )


class _Connector(ClientFactory):
    noisy = False

    def __init__(self, relay: TCPRelay) -> None:
        self.relay = relay

    def buildProtocol(self, addr: Any) -> _BackendSide:  # type: ignore[override]
        return _BackendSide(self.relay)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.relay.connect_failed(reason)


@implementer(IHalfCloseableProtocol, IHandshakeListener)
class TCPRelay(Protocol):
    """A client connection relayed to ``server`` for ``router``.

    ``pending`` is what was already read from the client (a peeked ClientHello); ``client``
    and ``local`` are the addresses of the accepted connection, for the PROXY protocol header.
    ``connections`` tracks live connections for a graceful shutdown; ``observer`` (if any)
    counts it open on ``entrypoint``. With ``after_handshake`` the client side is a TLS
    layer ending TLS here, and the backend is dialled only once its handshake is over: a
    client that sends a ClientHello and stops never costs a backend connection.
    """

    def __init__(
        self,
        router: TCPRouter,
        server: TCPServer,
        reactor: Any,
        clock: Any,
        connections: Any,
        pending: bytes = b"",
        observer: Any = None,
        entrypoint: str = "",
        after_handshake: bool = False,
        server_tls: Any = None,
    ) -> None:
        self.router = router
        self.server = server
        self.reactor = reactor
        self.clock = clock
        self.connections = connections
        self.pending = [pending] if pending else []
        self.observer = observer
        self.entrypoint = entrypoint
        self.after_handshake = after_handshake
        #: (client creator, factory, preamble) → the factory dialling TLS around it, for
        #: servers with ``tls``: the entrypoint's TLS layer, which half-closes as Go's.
        self.server_tls = server_tls
        self.backend: Optional[_BackendSide] = None
        self.connector: Any = None
        self.client_eof = False
        self.backend_done = False
        self.closed = False
        self.timer: Any = None
        self.dial_timer: Any = None
        self.dial_expired = False
        self.reader: Any = None
        self.releases: Any = ()

    # -- client side -----------------------------------------------------------------------

    def connectionMade(self) -> None:
        set_no_delay(self.transport)
        transport: Any = self.transport
        # The socket to pause: the transport itself, or under a TLS layer ending here.
        self.reader = (
            transport
            if IPushProducer.providedBy(transport)
            else getattr(transport, "transport", transport)
        )
        self.connections.add(self)
        if self.observer is not None:
            self.observer.connection_opened(self.entrypoint, "TCP")
        if not self.after_handshake:
            self._dial()

    def handshakeCompleted(self) -> None:
        """The client's TLS handshake is over: now the backend is worth a connection."""
        if self.after_handshake and not self.closed and self.connector is None:
            self._dial()

    def _dial(self) -> None:
        # Nothing more is read from the client until the backend can take it.
        self.reader.pauseProducing()
        server = self.server
        factory: Any = _Connector(self)
        if server.tls is not None:
            # No name to send or verify, as Traefik's default TCP transport has none.
            creator = client_options("", server.tls, ())
            factory = self.server_tls(creator, factory, self._proxy_header())
        # The dial timeout runs on ``clock`` (the reactor, or a test's fake clock).
        self.connector = self.reactor.connectTCP(server.host, server.port, factory, timeout=None)
        if server.dial_timeout > 0:
            self.dial_timer = self.clock.callLater(server.dial_timeout, self._dial_timed_out)

    def _dial_timed_out(self) -> None:
        """dialTimeout is over and the server has not answered: give up the dial (Traefik
        closes the client's connection then, as here through connect_failed)."""
        self.dial_timer = None
        if self.connector is not None and self.backend is None and not self.closed:
            self.dial_expired = True
            self.connector.stopConnecting()

    def _cancel_dial_timer(self) -> None:
        if self.dial_timer is not None and self.dial_timer.active():
            self.dial_timer.cancel()
        self.dial_timer = None

    def _proxy_header(self) -> bytes:
        """The PROXY protocol header the server is owed (none: b"")."""
        version = self.server.proxy_protocol
        if not version:
            return b""
        source = _endpoint(self.transport.getPeer())  # type: ignore[union-attr]
        destination = _endpoint(self.transport.getHost())  # type: ignore[union-attr]
        if source is None or destination is None:
            return b""
        return proxyproto.encode(version, source, destination)

    def dataReceived(self, data: bytes) -> None:
        backend = self.backend
        if backend is not None:
            backend.transport.write(data)  # type: ignore[union-attr]
        else:
            self.pending.append(data)

    def readConnectionLost(self) -> None:
        """The client finished sending: pass the FIN on, then allow terminationDelay (or
        close now if the backend had finished too)."""
        self.client_eof = True
        backend = self.backend
        if backend is None:
            return
        if self.backend_done:
            _close(backend.transport)
            _close(self.transport)
            return
        _close_write(backend.transport)
        self._half_closed()

    def writeConnectionLost(self) -> None:
        """Our FIN to the client went out (the backend had finished): the client may still
        send, within terminationDelay."""

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed = True
        self._cancel_timer()
        self._cancel_dial_timer()
        releases, self.releases = self.releases, ()
        for release in releases:
            release()  # what the router's TCP middlewares counted (inFlightConn)
        if self.backend is not None:
            _close(self.backend.transport)
        elif self.connector is not None:
            self.connector.disconnect()
        if self.observer is not None:
            self.observer.connection_closed(self.entrypoint, "TCP")
        self.connections.discard(self)

    # -- backend side ----------------------------------------------------------------------

    def backend_connected(self, backend: _BackendSide) -> None:
        self._cancel_dial_timer()
        if self.closed:
            backend.transport.loseConnection()  # type: ignore[union-attr]
            return
        self.backend = backend
        out = backend.transport
        assert out is not None
        if self.server.tls is None:  # under TLS it went first, in clear
            header = self._proxy_header()
            if header:
                out.write(header)
        pending, self.pending = self.pending, []
        if pending:
            out.writeSequence(pending)
        # Each side produces for the other: a full write buffer pauses the reader across.
        self.transport.registerProducer(out, True)  # type: ignore[union-attr]
        out.registerProducer(self.reader, True)  # type: ignore[attr-defined]
        self.reader.resumeProducing()
        if self.client_eof:
            _close_write(out)
            self._half_closed()

    def connect_failed(self, reason: Failure) -> None:
        self.connector = None
        self._cancel_dial_timer()
        if self.closed:
            return
        why = reason.getErrorMessage()
        if self.dial_expired:
            why = "dial timeout (%gs) exceeded" % self.server.dial_timeout
        log.warn(
            "TCP router {router}: cannot reach {server}: {why}",
            router=self.router.name,
            server=self.server.address,
            why=why,
        )
        _close(self.transport)

    def backend_eof(self) -> None:
        """The backend finished sending: pass the FIN on to the client."""
        self.backend_done = True
        if self.client_eof:
            if self.backend is not None:
                _close(self.backend.transport)
            _close(self.transport)
            return
        _close_write(self.transport)
        self._half_closed()

    def backend_lost(self, reason: Failure, handshake_failed: bool = False) -> None:
        self.backend = None
        if handshake_failed and not self.closed:
            log.warn(
                "TCP router {router}: TLS handshake with {server} failed: {why}",
                router=self.router.name,
                server=self.server.address,
                why=reason.getErrorMessage() if reason is not None else "",
            )
        if not self.closed:
            if not self.backend_done and not self.client_eof:
                log.debug(
                    "TCP router {router}: {server} closed: {why}",
                    router=self.router.name,
                    server=self.server.address,
                    why=reason.getErrorMessage() if reason is not None else "",
                )
            _close(self.transport)

    # -- ending ----------------------------------------------------------------------------

    def _half_closed(self) -> None:
        """One direction is over: the other gets terminationDelay to end as well."""
        delay = self.server.termination_delay
        if delay >= 0 and self.timer is None and not self.closed:
            self.timer = self.clock.callLater(delay, self._terminate)

    def _terminate(self) -> None:
        """terminationDelay is over: close both sides (a FIN, as Traefik's Close gives)."""
        self.timer = None
        if self.backend is not None:
            _close(self.backend.transport)
        _close(self.transport)

    def _cancel_timer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def close(self) -> None:
        """At shutdown: a relayed stream has no exchange boundary, so let it run until the
        grace time is over (abort) or either side ends it."""

    def abort(self) -> None:
        if self.backend is not None:
            self.backend.transport.abortConnection()  # type: ignore[union-attr]
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]
