"""HTTP/2 to backends: the shared client connections and their pool.

Servers with ``scheme: h2c`` (gRPC) are dialled with prior knowledge; ``https`` servers
whose TLS handshake selected ALPN ``h2`` hand their connection over once it is made
(tsproxy.http.backend_tls). `H2ClientConnection` is one such connection, shared by many
exchanges' streams (tsproxy.http.h2backend_stream) up to the server's
``SETTINGS_MAX_CONCURRENT_STREAMS``; `H2BackendPool` keeps them per server and dials more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    InformationalResponseReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error
from h2.settings import SettingCodes, Settings
from twisted.internet import error as ierror
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from tsproxy.http.backend_tls import PoolKey, pool_key
from tsproxy.http.h2backend_stream import H2BackendStream
from tsproxy.http.h2wire import trailer_fields
from tsproxy.http.relay import PendingConnect, cancel_call
from tsproxy.logs import get_logger
from tsproxy.nodelay import set_no_delay

if TYPE_CHECKING:
    from tsproxy.runtime.services import Server

__all__ = ["H2BackendPool", "H2BackendStream", "H2ClientConnection"]

log = get_logger(__name__)

#: The receive windows this client offers a backend.
STREAM_WINDOW = 1 << 20
CONNECTION_WINDOW = 4 << 20


@implementer(IPushProducer)
class _Watch:
    def __init__(self, owner: H2ClientConnection) -> None:
        self.owner = owner

    def pauseProducing(self) -> None:
        self.owner.write_blocked = True

    def resumeProducing(self) -> None:
        self.owner.write_blocked = False
        self.owner.flush_streams()

    def stopProducing(self) -> None:
        pass


class H2ClientConnection(Protocol):
    """One HTTP/2 connection to a backend server, shared by many exchanges' streams."""

    def __init__(self, pool: H2BackendPool, key: PoolKey) -> None:
        self.pool = pool
        self.key = key
        self.streams: Dict[int, H2BackendStream] = {}
        self.ready = False
        self.closed = False
        self.goaway = False
        self.write_blocked = False
        self.waiting: List[Tuple[Callable[[Any], None], Callable[[int, str], None]]] = []
        self.idle_timer: Any = None
        self.idle_timeout = 90.0
        conn = self.conn = H2Connection(
            H2Configuration(
                client_side=True,
                header_encoding=None,
                validate_inbound_headers=True,
                # What is sent comes from a parsed HTTP/1.1 head (token names, visible values),
                # lower-cased with connection fields dropped by _request_headers: checked.
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        encode = conn.encoder.encode

        def plain(headers: Any, huffman: bool = True) -> bytes:
            """No Huffman coding (as tsproxy.http.h2server): a little larger, much cheaper."""
            return encode(headers, huffman=False)  # type: ignore[no-any-return]

        conn.encoder.encode = plain  # type: ignore[method-assign]
        conn.local_settings = Settings(
            client=True,
            initial_values={
                SettingCodes.ENABLE_PUSH: 0,
                SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                SettingCodes.MAX_HEADER_LIST_SIZE: 1 << 20,
            },
        )

    @property
    def capacity(self) -> int:
        """How many more streams the server lets this connection open."""
        if not self.ready or self.closed or self.goaway:
            return 0
        limit = self.conn.remote_settings.max_concurrent_streams
        return int(limit) - len(self.streams)

    def connectionMade(self) -> None:
        set_no_delay(self.transport)
        self.transport.registerProducer(_Watch(self), True)  # type: ignore[union-attr]
        conn = self.conn
        conn.initiate_connection()
        conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self.flush()
        self.ready = True
        self.pool.connected(self)

    def open_stream(
        self, stream: H2BackendStream, headers: List[Tuple[bytes, bytes]], end: bool
    ) -> int:
        cancel_call(self.idle_timer)
        self.idle_timer = None
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, headers, end_stream=end)
        self.streams[sid] = stream
        self.flush()
        return sid

    def stream_done(self, sid: int) -> None:
        self.streams.pop(sid, None)
        if not self.streams and not self.closed:
            if self.goaway:
                self.transport.loseConnection()  # type: ignore[union-attr]
            elif self.idle_timeout > 0:
                cancel_call(self.idle_timer)
                self.idle_timer = self.pool.clock.callLater(self.idle_timeout, self._idle)

    def _idle(self) -> None:
        self.idle_timer = None
        if not self.streams and not self.closed:
            self.pool.forget(self)
            try:
                self.conn.close_connection()
            except H2Error:
                pass
            self.flush()
            self.transport.loseConnection()  # type: ignore[union-attr]

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.closed:
            self.transport.write(data)  # type: ignore[union-attr]

    def flush_streams(self) -> None:
        for stream in list(self.streams.values()):
            stream.send_queued()
        self.flush()

    def dataReceived(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except H2Error as e:
            log.warn("HTTP/2 backend {key} broke the protocol: {e}", key=self.key, e=e)
            self.flush()
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        for event in events:
            sid = getattr(event, "stream_id", 0)
            stream = self.streams.get(sid) if sid else None
            if isinstance(event, ResponseReceived):
                if stream is not None:
                    stream.got_response(event.headers, event.stream_ended is not None)
            elif isinstance(event, DataReceived):
                if stream is not None:
                    stream.got_data(event.data, event.flow_controlled_length)
                elif event.flow_controlled_length:
                    try:
                        self.conn.acknowledge_received_data(event.flow_controlled_length, sid)
                    except H2Error:
                        pass
            elif isinstance(event, TrailersReceived):
                if stream is not None:
                    stream.trailers = trailer_fields(event.headers)
            elif isinstance(event, StreamEnded):
                if stream is not None:
                    stream.got_end()
            elif isinstance(event, StreamReset):
                if stream is not None:
                    stream.failed("stream reset by the server (code %s)" % (event.error_code,))
            elif isinstance(event, (WindowUpdated, RemoteSettingsChanged)):
                for each in list(self.streams.values()):
                    each.send_queued()
            elif isinstance(event, InformationalResponseReceived):
                pass
            elif isinstance(event, ConnectionTerminated):
                self.goaway = True
                self.pool.forget(self)
                last = event.last_stream_id or 0
                for each_sid, each in list(self.streams.items()):
                    if each_sid > last:
                        each.failed("GOAWAY from the server", refused=True)
        self.flush()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed = True
        cancel_call(self.idle_timer)
        self.pool.forget(self)
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.failed("backend closed the connection")


class _Dial(ClientFactory):
    noisy = False

    def __init__(self, pool: H2BackendPool, key: PoolKey) -> None:
        self.pool = pool
        self.key = key
        self.conn: Optional[H2ClientConnection] = None

    def buildProtocol(self, addr: Any) -> H2ClientConnection:
        conn = self.conn = H2ClientConnection(self.pool, self.key)
        return conn

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if reason.check(ierror.TimeoutError, ierror.UserError):
            self.pool.dial_failed(self.key, 504, "dial timeout")
        else:
            self.pool.dial_failed(self.key, 502, "dial failed: %s" % (reason.getErrorMessage(),))


class H2BackendPool:
    """HTTP/2 connections per server, streams multiplexed up to the server's limit."""

    def __init__(self, reactor: Any, clock: Any) -> None:
        self.reactor = reactor
        self.clock = clock
        self.conns: Dict[PoolKey, List[H2ClientConnection]] = {}
        self.dialing: Dict[PoolKey, List[Tuple[Server, Any, Any, Any]]] = {}
        self.closing = False

    def connect(
        self,
        server: Server,
        on_ready: Callable[[Any], None],
        on_error: Callable[[int, str], None],
    ) -> PendingConnect:
        """A stream for ``server``: on a connection with room, else on a new h2c connection
        (https servers come here only when one has room: their dials are the backend pool's)."""
        pending = PendingConnect()
        key = pool_key(server)
        for conn in self.conns.get(key, ()):
            if conn.capacity > 0:
                stream = H2BackendStream(self, conn, server)
                # Later, as a dial would be: the exchange is still setting up.
                self.clock.callLater(0, self._hand, pending, stream, on_ready)
                return pending
        waiters = self.dialing.get(key)
        if waiters is None:
            waiters = self.dialing[key] = []
            timeout = server.transport.dial_timeout or 3600.0
            self.reactor.connectTCP(server.host, server.port, _Dial(self, key), timeout=timeout)
        waiters.append((server, pending, on_ready, on_error))
        return pending

    def has_room(self, key: PoolKey) -> bool:
        """Whether a connection for ``key`` can open another stream now."""
        return any(conn.capacity > 0 for conn in self.conns.get(key, ()))

    def _hand(self, pending: PendingConnect, stream: H2BackendStream, on_ready: Any) -> None:
        if pending.cancelled:
            return
        if stream.conn.closed:
            stream.failed("backend closed the connection")
            return
        on_ready(stream)

    def connection(self, key: PoolKey) -> H2ClientConnection:
        """A connection of this pool for a transport made elsewhere (a TLS dial that chose
        h2, tsproxy.http.backend_tls)."""
        return H2ClientConnection(self, key)

    def connected(self, conn: H2ClientConnection) -> None:
        self.conns.setdefault(conn.key, []).append(conn)
        waiters = self.dialing.pop(conn.key, [])
        for server, pending, on_ready, _on_error in waiters:
            conn.idle_timeout = server.transport.idle_conn_timeout
            if not pending.cancelled:
                on_ready(H2BackendStream(self, conn, server))
        if not conn.streams:
            conn.stream_done(0)  # nobody is using it (yet): it closes when idle long enough

    def dial_failed(self, key: PoolKey, status: int, reason: str) -> None:
        for _server, pending, _on_ready, on_error in self.dialing.pop(key, []):
            if not pending.cancelled:
                on_error(status, reason)

    def forget(self, conn: H2ClientConnection) -> None:
        conns = self.conns.get(conn.key)
        if conns and conn in conns:
            conns.remove(conn)

    def close(self) -> None:
        self.closing = True
        for conns in list(self.conns.values()):
            for conn in list(conns):
                if not conn.streams:
                    conn.transport.loseConnection()  # type: ignore[union-attr]
        self.conns.clear()
