"""One exchange's stream to an HTTP/2 backend, shaped as the HTTP/1.1 backend connection.

An exchange (tsproxy.http.server) talks to a backend through the BackendConnection
interface: it writes the HTTP/1.1 request to the connection's transport and hears the
response through the BackendListener methods. `H2BackendStream` is that interface over
one stream of a shared HTTP/2 client connection (tsproxy.http.h2backend): the request bytes
are parsed back into HEADERS and DATA, the response events become ``response_head``/
``response_data``/``response_end``. Response trailers (gRPC's ``grpc-status``) go to the
client stream when the client speaks HTTP/2 (its transport takes ``resp_trailers``);
HTTP/1.1 clients lose them, as the HTTP/1.1 engine drops trailers. Flow control maps to the
exchange's backpressure both ways, as in tsproxy.http.h2server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Protocol, Tuple

from h2.errors import ErrorCodes
from h2.exceptions import H2Error

from tsproxy.http.h2wire import CONNECTION_SPECIFIC
from tsproxy.http.headers import HOP_BY_HOP
from tsproxy.http.relay import Relaying, cancel_call
from tsproxy.http.wire import (
    BodyDecoder,
    ChunkedDecoder,
    HTTPError,
    LengthDecoder,
    ResponseHead,
    find_head_end,
    parse_request_head,
)

if TYPE_CHECKING:
    from h2.connection import H2Connection

    from tsproxy.runtime.services import Server


class StreamPool(Protocol):
    """What a stream uses of its pool (tsproxy.http.h2backend.H2BackendPool)."""

    clock: Any


class StreamConnection(Protocol):
    """What a stream uses of its connection (tsproxy.http.h2backend.H2ClientConnection),
    typed here so that the two modules do not import each other."""

    conn: H2Connection
    key: Tuple[Any, ...]
    streams: Dict[int, H2BackendStream]
    write_blocked: bool
    closed: bool

    def flush(self) -> None: ...

    def open_stream(
        self, stream: H2BackendStream, headers: List[Tuple[bytes, bytes]], end: bool
    ) -> int: ...

    def stream_done(self, sid: int) -> None: ...


#: Request bytes queued per stream (its send window closed) before the exchange pauses.
STREAM_BUFFER = 64 * 1024


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

    def __init__(self, pool: StreamPool, conn: StreamConnection, server: Server) -> None:
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
