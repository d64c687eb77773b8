"""Connections to backend servers: an HTTP/1.1 response reader and a keep-alive pool.

A BackendConnection serves one exchange at a time and reports to it through the
`BackendListener` methods; the pool keeps idle connections per server and closes them after
the transport's idle timeout. No routing or header policy lives here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from twisted.internet import error as ierror
from twisted.internet.protocol import ClientFactory
from twisted.python.failure import Failure

from tsproxy.http.backend_tls import PoolKey, TLSDialling, Waiter, pool_key

# RELAY_BUFFER is re-exported for the modules that import it from here.
from tsproxy.http.relay import RELAY_BUFFER as RELAY_BUFFER
from tsproxy.http.relay import (
    PendingConnect,
    Relaying,
    cancel_call,
)
from tsproxy.http.wire import (
    MAX_HEAD_BYTES,
    BodyDecoder,
    ChunkedDecoder,
    CloseDecoder,
    HTTPError,
    LengthDecoder,
    ResponseHead,
    find_head_end,
    parse_response_head,
)
from tsproxy.logs import get_logger
from tsproxy.nodelay import set_no_delay

if TYPE_CHECKING:
    from tsproxy.runtime.services import Server

log = get_logger(__name__)

#: Interim (1xx) responses a backend may send before its final one; past it, 502.
MAX_INTERIM = 10


class BackendListener:
    """What a BackendConnection tells the exchange it serves."""

    def response_head(self, head: ResponseHead, rest: bytes) -> None:
        raise NotImplementedError

    def response_data(self, data: bytes) -> None:
        raise NotImplementedError

    def response_end(self, reusable: bool) -> None:
        raise NotImplementedError

    def response_flush(self) -> None:
        """A BackendConnection has passed on all it read (the response goes on): write out
        what was held back to go with it."""

    def backend_failed(self, status: int, reason: str, got_bytes: bool) -> None:
        raise NotImplementedError

    def tunnel_data(self, data: bytes) -> None:
        raise NotImplementedError

    def tunnel_closed(self) -> None:
        raise NotImplementedError


class BackendConnection(Relaying):
    """One HTTP/1.1 connection to a backend server."""

    def __init__(self, pool: BackendPool, key: PoolKey) -> None:
        self.pool = pool
        self.key = key
        self.listener: Optional[BackendListener] = None
        self.buf = b""
        self.method = b"GET"
        self.decoder: Optional[BodyDecoder] = None
        self.head: Optional[ResponseHead] = None
        self.got_bytes = False
        self.interim = 0
        self.reused = False
        self.tunnel = False
        self.closed = False
        self.idle_since = 0.0
        self.timer: Any = None
        self.idle_timeout = 90.0
        self.factory: Any = None

    def connectionMade(self) -> None:
        set_no_delay(self.transport)
        self.start_relaying()
        self.factory.on_ready(self)

    # -- driven by the exchange ----------------------------------------------------------

    def begin(self, listener: BackendListener, method: bytes) -> None:
        """Start serving an exchange whose request head is about to be written."""
        self.listener = listener
        self.method = method
        self.buf = b""
        self.decoder = None
        self.head = None
        self.got_bytes = False
        self.interim = 0
        self.tunnel = False

    def arm_timeout(self, seconds: float) -> None:
        """Give up on the response head after `seconds` (Traefik's responseHeaderTimeout)."""
        if seconds > 0 and self.head is None and not self.closed:
            self.timer = self.pool.clock.callLater(seconds, self._timed_out)

    def _cancel_timer(self) -> None:
        cancel_call(self.timer)
        self.timer = None

    def _timed_out(self) -> None:
        self.timer = None
        listener, self.listener = self.listener, None
        self.transport.abortConnection()
        if listener is not None:
            listener.backend_failed(504, "timeout awaiting response headers", self.got_bytes)

    def start_tunnel(self, rest: bytes) -> None:
        """After a 101: everything from now on is passed through unread."""
        self.tunnel = True
        if rest and self.listener is not None:
            self.listener.tunnel_data(rest)

    # -- Protocol ------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        listener = self.listener
        if listener is None:
            # A server speaking while idle has broken the protocol: drop the connection.
            self.transport.loseConnection()
            return
        self.got_bytes = True
        if self.tunnel:
            listener.tunnel_data(data)
            return
        if self.decoder is not None:
            self._feed_body(data)
            return
        buf = self.buf + data if self.buf else data
        while True:
            end, body_start = find_head_end(buf)
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    self._protocol_error("response head too large")
                else:
                    self.buf = buf
                return
            try:
                head = parse_response_head(buf[:end], self.method)
            except HTTPError as e:
                self._protocol_error(e.reason)
                return
            buf = buf[body_start:]
            if 100 <= head.status < 200 and head.status != 101:
                self.interim += 1
                if self.interim > MAX_INTERIM:
                    self._protocol_error("more than %d interim responses" % MAX_INTERIM)
                    return
                listener.response_head(head, b"")
                if self.listener is not listener:
                    return
                continue
            self.buf = b""
            self.head = head
            self._cancel_timer()
            if head.status == 101:
                listener.response_head(head, buf)
                return
            if head.framing == "length":
                self.decoder = LengthDecoder(head.content_length, listener.response_data)
            elif head.framing == "chunked":
                self.decoder = ChunkedDecoder(listener.response_data, error_status=502)
            elif head.framing == "close":
                self.decoder = CloseDecoder(listener.response_data)
            listener.response_head(head, b"")
            if self.listener is not listener:
                return
            if self.decoder is None:
                self._finish(leftover=buf)
            elif buf:
                self._feed_body(buf)
            if self.listener is listener:
                listener.response_flush()
            return

    def _feed_body(self, data: bytes) -> None:
        try:
            leftover = self.decoder.feed(data)  # type: ignore[union-attr]
        except HTTPError as e:
            self._protocol_error(e.reason)
            return
        if leftover is not None:
            self._finish(leftover)

    def _finish(self, leftover: bytes) -> None:
        head = self.head
        listener, self.listener = self.listener, None
        self.decoder = None
        reusable = bool(head is not None and head.keep_alive and not leftover and not self.closed)
        if listener is not None:
            listener.response_end(reusable)

    def _protocol_error(self, reason: str) -> None:
        listener, self.listener = self.listener, None
        self._cancel_timer()
        self.transport.abortConnection()
        if listener is not None:
            listener.backend_failed(502, "invalid response: " + reason, True)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed = True
        self._cancel_timer()
        self.pool.forget(self)
        listener, self.listener = self.listener, None
        if listener is None:
            return
        if self.tunnel:
            listener.tunnel_closed()
        elif isinstance(self.decoder, CloseDecoder) and (
            reason is None or reason.check(ierror.ConnectionDone)
        ):
            # Only a clean close ends a body read until close; a reset cuts it short.
            listener.response_end(False)
        else:
            listener.backend_failed(502, "backend closed the connection", self.got_bytes)


class _ConnectFactory(ClientFactory):
    noisy = False

    def __init__(
        self,
        pool: BackendPool,
        key: PoolKey,
        on_ready: Callable[[BackendConnection], None],
        on_error: Callable[[int, str], None],
    ) -> None:
        self.pool = pool
        self.key = key
        self.on_ready = on_ready
        self.on_error = on_error

    def buildProtocol(self, addr: Any) -> BackendConnection:
        conn = BackendConnection(self.pool, self.key)
        conn.factory = self
        return conn

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if reason.check(ierror.TimeoutError, ierror.UserError):
            self.on_error(504, "dial timeout")
        else:
            self.on_error(502, "dial failed: %s" % (reason.getErrorMessage(),))


class _Handover:
    """Hands an HTTP/1.1 connection made by a TLS dial to the exchange that waited for it."""

    def __init__(self, pool: BackendPool, waiter: Waiter) -> None:
        self.pool = pool
        self.waiter = waiter

    def on_ready(self, conn: BackendConnection) -> None:
        _server, pending, on_ready, _on_error = self.waiter
        if pending.cancelled:
            conn.transport.loseConnection()
            return
        self.pool.active.add(conn)
        on_ready(conn)


class BackendPool(TLSDialling):
    """Idle keep-alive connections per server, newest first, swept when stale."""

    sweep_interval = 5.0

    def __init__(
        self,
        reactor: Any,
        clock: Any = None,
        tls_options: Optional[Callable[[str, Any, Tuple[bytes, ...]], Any]] = None,
    ) -> None:
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.tls_options = tls_options
        self.idle: Dict[PoolKey, List[BackendConnection]] = {}
        self.active: set = set()
        self._sweeper: Any = None
        self.closing = False
        #: HTTP/2 connections to h2c servers, and https ones that chose h2 by ALPN
        #: (tsproxy.http.h2backend), made when first used.
        self.h2: Any = None
        #: The protocol each https server's last handshake chose (b"h2" or b"http/1.1").
        self.protocols: Dict[PoolKey, bytes] = {}

    @staticmethod
    def key_for(server: Server) -> PoolKey:
        return pool_key(server)

    def take_idle(self, server: Server) -> Optional[BackendConnection]:
        """A pooled connection to `server`, or None."""
        if server.scheme == "h2c":
            return None  # streams of a shared HTTP/2 connection: see connect
        conns = self.idle.get(self.key_for(server))
        while conns:
            conn = conns.pop()
            if not conn.closed:
                conn.reused = True
                self.active.add(conn)
                return conn
        return None

    def connect(
        self,
        server: Server,
        on_ready: Callable[[BackendConnection], None],
        on_error: Callable[[int, str], None],
        upgrade: bool = False,
    ) -> PendingConnect:
        """Open a new connection to `server` (or a stream of a shared HTTP/2 one); exactly one
        of the callbacks fires unless the returned attempt is cancelled first. ``upgrade``:
        the request asks for a protocol upgrade, which only HTTP/1.1 carries."""
        if server.scheme == "h2c":
            return self._h2().connect(server, on_ready, on_error)  # type: ignore[no-any-return]
        pending = PendingConnect()
        if server.scheme == "https":
            if self.tls_options is None:
                if not pending.cancelled:
                    on_error(502, "no TLS client support configured")
                return pending
            return self._connect_tls(server, (server, pending, on_ready, on_error), upgrade)
        key = self.key_for(server)

        def ready(conn: BackendConnection) -> None:
            if pending.cancelled:
                conn.transport.abortConnection()
                return
            self.active.add(conn)
            on_ready(conn)

        def failed(status: int, reason: str) -> None:
            if not pending.cancelled:
                on_error(status, reason)

        factory = _ConnectFactory(self, key, ready, failed)
        timeout = server.transport.dial_timeout or 3600.0
        pending.connector = self.reactor.connectTCP(
            server.host, server.port, factory, timeout=timeout
        )
        return pending

    def _h2(self) -> Any:
        """The HTTP/2 pool, made when first used."""
        if self.h2 is None:
            from tsproxy.http.h2backend import H2BackendPool

            self.h2 = H2BackendPool(self.reactor, self.clock)
        return self.h2

    def http1_connection(self, key: PoolKey, waiter: Waiter) -> BackendConnection:
        """An HTTP/1.1 connection a TLS dial made, for the exchange ``waiter`` (TLSDialling)."""
        conn = BackendConnection(self, key)
        conn.factory = _Handover(self, waiter)
        return conn

    def release(self, conn: BackendConnection, server: Server) -> None:
        """Return a connection after a complete exchange; closes it if it cannot be kept."""
        if getattr(conn, "multiplexed", False):
            return  # an HTTP/2 stream: over once the response ended
        self.active.discard(conn)
        conn.listener = None
        conn.set_peer(None)
        if conn.gate is not None and conn.gate.reasons:
            conn.gate.reasons.clear()
            conn.transport.resumeProducing()
        limit = server.transport.max_idle_conns_per_host
        conns = self.idle.setdefault(conn.key, [])
        if self.closing or conn.closed or limit <= 0:
            conn.transport.loseConnection()
            return
        if len(conns) >= limit:
            conns.pop(0).transport.loseConnection()
        conn.idle_since = self.clock.seconds()
        conn.idle_timeout = server.transport.idle_conn_timeout
        conns.append(conn)
        if self._sweeper is None:
            self._sweeper = self.clock.callLater(self.sweep_interval, self._sweep)

    def discard(self, conn: BackendConnection) -> None:
        """Drop a connection that must not be reused."""
        if getattr(conn, "multiplexed", False):
            conn.transport.abortConnection()  # resets the HTTP/2 stream only
            return
        self.active.discard(conn)
        conn.listener = None
        conn.set_peer(None)
        if not conn.closed:
            conn.transport.abortConnection()

    def forget(self, conn: BackendConnection) -> None:
        self.active.discard(conn)
        conns = self.idle.get(conn.key)
        if conns and conn in conns:
            conns.remove(conn)

    def _sweep(self) -> None:
        self._sweeper = None
        now = self.clock.seconds()
        remaining = 0
        for conns in self.idle.values():
            for conn in list(conns):
                if conn.idle_timeout > 0 and now - conn.idle_since >= conn.idle_timeout:
                    conns.remove(conn)
                    conn.transport.loseConnection()
            remaining += len(conns)
        if remaining:
            self._sweeper = self.clock.callLater(self.sweep_interval, self._sweep)

    def close(self) -> None:
        """Close every idle connection and stop the sweeper (at shutdown)."""
        self.closing = True
        if self.h2 is not None:
            self.h2.close()
        if self._sweeper is not None and self._sweeper.active():
            self._sweeper.cancel()
        self._sweeper = None
        for conns in self.idle.values():
            for conn in conns:
                conn.transport.loseConnection()
        self.idle.clear()
