"""HTTP/2 to backends: servers with ``scheme: h2c`` (gRPC) are dialled with prior knowledge.

An exchange (tsproxy.http.server) talks to a backend through the BackendConnection
interface: it writes the HTTP/1.1 request to the connection's transport and hears the
response through the BackendListener methods. `H2BackendStream` is that interface over
one stream of a shared HTTP/2 client connection: the request bytes are parsed back into
HEADERS and DATA, the response events become ``response_head``/``response_data``/
``response_end``. Response trailers (gRPC's ``grpc-status``) go to the client stream when
the client speaks HTTP/2 (its transport takes ``resp_trailers``); HTTP/1.1 clients lose them,
as the HTTP/1.1 engine drops trailers. Flow control maps to the exchange's backpressure
both ways, as in tsproxy.http.h2server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
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

from tsproxy.http.h2wire import CONNECTION_SPECIFIC, trailer_fields
from tsproxy.http.headers import HOP_BY_HOP
from tsproxy.http.relay import PendingConnect, Relaying, cancel_call
from tsproxy.http.wire import (
    BodyDecoder,
    ChunkedDecoder,
    HTTPError,
    LengthDecoder,
    ResponseHead,
    find_head_end,
    parse_request_head,
)
from tsproxy.logs import get_logger
from tsproxy.nodelay import set_no_delay

if TYPE_CHECKING:
    from tsproxy.runtime.services import Server

log = get_logger(__name__)

#: Request bytes queued per stream (its send window closed) before the exchange pauses.
STREAM_BUFFER = 64 * 1024
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

    def __init__(self, pool: H2BackendPool, key: Tuple[str, str, int]) -> None:
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
            H2Configuration(client_side=True, header_encoding=None, validate_inbound_headers=True)
        )
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


class _StreamIO:
    """The transport an exchange writes its request to (and pauses, for backpressure)."""

    def __init__(self, stream: H2BackendStream) -> None:
        self.stream = stream
        self.producer: Any = None

    def write(self, data: bytes) -> None:
        self.stream.request_bytes(data)

    def writeSequence(self, data: Any) -> None:
        self.stream.request_bytes(b"".join(data))

    def loseConnection(self) -> None:
        self.stream.abandon()

    def abortConnection(self) -> None:
        self.stream.abandon()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def pauseProducing(self) -> None:
        self.stream.paused = True

    def resumeProducing(self) -> None:
        self.stream.paused = False
        self.stream.deliver_pending()

    def stopProducing(self) -> None:
        pass


class H2BackendStream(Relaying):
    """One exchange's stream to an HTTP/2 backend, shaped as a BackendConnection."""

    multiplexed = True

    def __init__(self, pool: H2BackendPool, conn: H2ClientConnection, server: Server) -> None:
        self.pool = pool
        self.conn = conn
        self.server = server
        self.key = conn.key
        self.sid = 0
        self.listener: Any = None
        self.method = b"GET"
        self.head_buf = b""
        self.decoder: Optional[BodyDecoder] = None
        self.out: List[bytes] = []
        self.out_bytes = 0
        self.out_end = False
        self.sent_end = False
        self.paused = False
        self.pending: List[Tuple[bytes, int]] = []
        self.pending_end = False
        self.trailers: List[Tuple[bytes, bytes]] = []
        self.got_bytes = False
        self.reused = False
        self.tunnel = False
        self.closed = False
        self.timer: Any = None
        self.head: Optional[ResponseHead] = None
        self.transport = _StreamIO(self)
        self.start_relaying()

    # -- the BackendConnection interface ---------------------------------------------------

    def begin(self, listener: Any, method: bytes) -> None:
        self.listener = listener
        self.method = method

    def arm_timeout(self, seconds: float) -> None:
        if seconds > 0 and self.head is None and not self.closed:
            self.timer = self.pool.clock.callLater(seconds, self._timed_out)

    def start_tunnel(self, rest: bytes) -> None:
        self.failed("protocol upgrades are not supported to HTTP/2 backends")

    def _timed_out(self) -> None:
        self.timer = None
        listener, self.listener = self.listener, None
        self._reset(ErrorCodes.CANCEL)
        if listener is not None:
            listener.backend_failed(504, "timeout awaiting response headers", self.got_bytes)

    # -- the request, written by the exchange as HTTP/1.1 -----------------------------------

    def request_bytes(self, data: bytes) -> None:
        if self.closed:
            return
        if self.sid == 0:
            buf = self.head_buf + data
            end, body_start = find_head_end(buf)
            if end < 0:
                self.head_buf = buf
                return
            self.head_buf = b""
            try:
                req = parse_request_head(buf[:end])
            except HTTPError as e:
                self.failed("unusable request head: " + e.reason)
                return
            headers = _request_headers(req, "https" if self.server.scheme == "https" else "http")
            end_stream = req.framing == "none"
            if req.framing == "length":
                self.decoder = LengthDecoder(req.content_length, self._request_data)
            elif req.framing == "chunked":
                self.decoder = ChunkedDecoder(self._request_data)
            try:
                self.sid = self.conn.open_stream(self, headers, end_stream)
            except H2Error as e:
                self.failed("cannot open a stream: %s" % (e,))
                return
            self.sent_end = end_stream
            data = buf[body_start:]
            if not data:
                return
        decoder = self.decoder
        if decoder is None:
            return
        try:
            leftover = decoder.feed(data)
        except HTTPError:
            self._reset(ErrorCodes.CANCEL)
            return
        if leftover is not None:
            self.decoder = None
            self.out_end = True
            self.send_queued()

    def _request_data(self, data: bytes) -> None:
        self.out.append(data)
        self.out_bytes += len(data)
        self.send_queued()

    def send_queued(self) -> None:
        if self.closed or self.sid == 0 or self.sent_end:
            return
        conn = self.conn.conn
        sid = self.sid
        try:
            while self.out and not self.conn.write_blocked:
                window = conn.local_flow_control_window(sid)
                if window <= 0:
                    break
                chunk = self.out[0]
                size = min(window, conn.max_outbound_frame_size)
                if len(chunk) > size:
                    self.out[0] = chunk[size:]
                    chunk = chunk[:size]
                else:
                    self.out.pop(0)
                conn.send_data(sid, chunk)
                self.out_bytes -= len(chunk)
            if self.out_end and not self.out:
                conn.end_stream(sid)
                self.sent_end = True
        except H2Error as e:
            self.failed("sending the request failed: %s" % (e,))
            return
        self.conn.flush()
        watcher = self.transport.producer
        if watcher is not None:
            if self.out_bytes > STREAM_BUFFER and not self.write_blocked:
                watcher.pauseProducing()
            elif self.out_bytes <= STREAM_BUFFER // 2 and self.write_blocked:
                watcher.resumeProducing()

    # -- the response ------------------------------------------------------------------------

    def got_response(self, headers: List[Tuple[bytes, bytes]], ended: bool) -> None:
        cancel_call(self.timer)
        self.timer = None
        self.got_bytes = True
        status = 502
        fields: List[Tuple[bytes, bytes]] = []
        length = None
        for name, value in headers:
            if name == b":status":
                status = int(value) if value.isdigit() else 502
            elif name[:1] != b":":
                if name == b"content-length" and value.isdigit():
                    length = int(value)
                fields.append((name, value))
        if ended or self.method == b"HEAD" or status in (204, 304):
            framing = "none"
        elif length is not None:
            framing = "length" if length else "none"
        else:
            framing = "chunked"
        head = self.head = ResponseHead(1, status, b"", fields, framing, length or 0)
        listener = self.listener
        if listener is not None:
            if ended:
                # A headers-only answer (gRPC's trailers-only errors): an HTTP/2 client gets
                # it as one HEADERS frame ending the stream, where grpc-status is read.
                client = getattr(listener, "transport", None)
                if client is not None and hasattr(client, "headers_only"):
                    client.headers_only = True
            listener.response_head(head, b"")

    def got_data(self, data: bytes, flow: int) -> None:
        if self.paused or self.pending:
            self.pending.append((data, flow))
            return
        self._pass_data(data, flow)

    def _pass_data(self, data: bytes, flow: int) -> None:
        listener = self.listener
        if listener is not None and data and self.head is not None and self.head.framing != "none":
            listener.response_data(data)
        if flow and not self.closed:
            try:
                self.conn.conn.acknowledge_received_data(flow, self.sid)
            except H2Error:
                pass
            self.conn.flush()

    def got_end(self) -> None:
        if self.paused or self.pending:
            self.pending_end = True
            return
        self._finish()

    def deliver_pending(self) -> None:
        while self.pending and not self.paused and not self.closed:
            data, flow = self.pending.pop(0)
            self._pass_data(data, flow)
        if self.pending_end and not self.pending and not self.paused:
            self.pending_end = False
            self._finish()

    def _finish(self) -> None:
        listener, self.listener = self.listener, None
        self.closed = True
        self.conn.stream_done(self.sid)
        if listener is None:
            return
        if self.head is None:
            listener.backend_failed(502, "stream ended without a response", True)
            return
        take = getattr(listener, "response_trailers", None)
        if self.trailers and not (take is not None and take(self.trailers)):
            client = getattr(listener, "transport", None)
            if client is not None and hasattr(client, "resp_trailers"):
                client.resp_trailers = self.trailers
        listener.response_end(True)

    def failed(self, reason: str, refused: bool = False) -> None:
        cancel_call(self.timer)
        self.timer = None
        listener, self.listener = self.listener, None
        if not self.closed:
            self.closed = True
            if self.sid:
                self._reset(ErrorCodes.CANCEL)
        if listener is not None:
            listener.backend_failed(502, reason, self.got_bytes and not refused)

    def _reset(self, code: int) -> None:
        self.closed = True
        if self.sid and self.sid in self.conn.streams:
            try:
                self.conn.conn.reset_stream(self.sid, code)
            except H2Error:
                pass
            self.conn.stream_done(self.sid)
            self.conn.flush()

    def abandon(self) -> None:
        """The exchange is done with this stream before its end (client gone, error)."""
        cancel_call(self.timer)
        self.timer = None
        self.listener = None
        if not self.closed:
            self._reset(ErrorCodes.CANCEL)


def _request_headers(req: Any, scheme: str) -> List[Tuple[bytes, bytes]]:
    """The HTTP/2 request header list for a request head the exchange wrote."""
    authority = b""
    fields: List[Tuple[bytes, bytes]] = []
    for name, value in req.headers:
        lname = name.lower()
        if lname == b"host":
            authority = value
        elif lname in HOP_BY_HOP or lname in CONNECTION_SPECIFIC:
            continue
        else:
            fields.append((lname, value))
    out = [
        (b":method", req.method),
        (b":scheme", scheme.encode("ascii")),
        (b":authority", authority),
        (b":path", req.target),
    ]
    # gRPC servers require it; it only says trailers are welcome.
    return out + fields + [(b"te", b"trailers")]


class _Dial(ClientFactory):
    noisy = False

    def __init__(self, pool: H2BackendPool, key: Tuple[str, str, int]) -> None:
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
        self.conns: Dict[Tuple[str, str, int], List[H2ClientConnection]] = {}
        self.dialing: Dict[Tuple[str, str, int], List[Tuple[Server, Any, Any, Any]]] = {}
        self.closing = False

    def connect(
        self,
        server: Server,
        on_ready: Callable[[Any], None],
        on_error: Callable[[int, str], None],
    ) -> PendingConnect:
        pending = PendingConnect()
        key = (server.scheme, server.host, server.port)
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

    def _hand(self, pending: PendingConnect, stream: H2BackendStream, on_ready: Any) -> None:
        if pending.cancelled:
            return
        if stream.conn.closed:
            stream.failed("backend closed the connection")
            return
        on_ready(stream)

    def connected(self, conn: H2ClientConnection) -> None:
        self.conns.setdefault(conn.key, []).append(conn)
        waiters = self.dialing.pop(conn.key, [])
        for server, pending, on_ready, _on_error in waiters:
            conn.idle_timeout = server.transport.idle_conn_timeout
            if not pending.cancelled:
                on_ready(H2BackendStream(self, conn, server))

    def dial_failed(self, key: Tuple[str, str, int], status: int, reason: str) -> None:
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
