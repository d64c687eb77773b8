"""One HTTP/2 stream served as an HTTP/1.1 exchange: StreamTransport, the transport a
StreamExchange (an HTTPServerConnection) answers through, turned into HEADERS and DATA frames
on the stream (tsproxy/http/h2server.py owns the connection).

The exchange is handed the stream's RequestHead as built (HTTPServerConnection.serve_request)
and hands a backend's response head over as such (StreamExchange._write_head), its body
unframed; what it writes as HTTP/1.1 text otherwise (answers of its own, of middlewares,
informational heads) is parsed back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, Tuple

from h2.errors import ErrorCodes
from h2.exceptions import H2Error
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from tsproxy.http.backend import cancel_call
from tsproxy.http.h2backend_stream import H2BackendStream
from tsproxy.http.h2streamfactory import stream_factory
from tsproxy.http.h2wire import (
    StreamRequest,
    exchange_response_headers,
    response_headers,
)
from tsproxy.http.headers import error_response, set_cookie_headers
from tsproxy.http.server import HTTPServerConnection
from tsproxy.http.wire import (
    LAST_CHUNK,
    BodyDecoder,
    ChunkedDecoder,
    CloseDecoder,
    HTTPError,
    LengthDecoder,
    ResponseHead,
    encode_chunk,
    find_head_end,
    parse_response_head,
)
from tsproxy.logs import get_logger

if TYPE_CHECKING:
    from tsproxy.http.h2owner import StreamOwner

log = get_logger(__name__)


# Where a stream is in reading the exchange's HTTP/1.1 answer back.
_HEAD, _BODY, _DONE = range(3)


#: The reason a stream's exchange is told its "connection" ended cleanly (one instance: a
#: Failure made per stream costs more than the rest of the stream's ending).
_STREAM_DONE = Failure(ConnectionDone())


class StreamExchange(HTTPServerConnection):
    """An HTTP/2 stream's exchange: a backend's response head goes to the stream as a header
    list, and its body unframed, instead of as HTTP/1.1 text parsed back."""

    transport: StreamTransport  # type: ignore[assignment]

    def _write_head(self, head: ResponseHead, hold: bool = False) -> None:
        pick = self.pick
        extra = (
            set_cookie_headers(pick.set_cookies) if pick is not None and pick.set_cookies else ()
        )
        framing = self.resp_framing
        headers = exchange_response_headers(head, framing, extra)
        if framing == "chunked":
            # HTTP/2 frames the body itself: the exchange writes it as it comes, and its end
            # is the exchange's (loseConnection).
            self.resp_framing = "close"
        self.resp_started = True
        if isinstance(self.backend, H2BackendStream):
            # An HTTP/2 server may send trailers after a length-framed body (gRPC's status):
            # the stream ends with the exchange, not on the body's last byte.
            framing = "close" if framing == "length" else framing
        self.transport.response_head(headers, framing, head.content_length)


@implementer(IPushProducer)
class StreamTransport:
    """The in-memory transport between one HTTP/2 stream and its HTTP/1.1 exchange."""

    def __init__(self, owner: StreamOwner, stream_id: int) -> None:
        self.owner = owner
        self.stream_id = stream_id
        self.opened_at = owner.factory.clock.seconds()
        self.exchange: Optional[HTTPServerConnection] = None
        self.producer: Any = None
        self.paused = False
        self.pending: List[Tuple[bytes, int]] = []
        self.drain_call: Any = None
        self.chunked = False
        self.request_done = False
        self.req_trailers: List[Tuple[bytes, bytes]] = []
        self.method = b"GET"
        # The response, parsed back from the exchange's HTTP/1.1 output.
        self.state = _HEAD
        self.buf = b""
        self.decoder: Optional[BodyDecoder] = None
        #: Body bytes still to come of a response head handed over as such (-1: until the
        #: exchange ends).
        self.remaining = -1
        self.out: List[bytes] = []
        self.out_bytes = 0
        self.resp_ended = False
        self.resp_trailers: List[Tuple[bytes, bytes]] = []
        #: Set by an HTTP/2 backend stream whose answer ended with its headers.
        self.headers_only = False
        self.producer_paused = False
        self.finished = False
        self.exchange_gone = False
        self.disconnecting = False

    # -- the stream's request ---------------------------------------------------------------

    def start(self, req: StreamRequest, ended: bool) -> None:
        head = req.head
        self.method = head.method
        self.chunked = req.chunked
        self.request_done = ended
        exchange = self.exchange = StreamExchange()
        exchange.factory = stream_factory(self.owner, self)  # type: ignore[assignment]
        exchange.makeConnection(self)  # type: ignore[arg-type]
        exchange.serve_request(head)

    def local_answer(self, status: int) -> None:
        """Answer a request that cannot be served without an exchange."""
        self.write(error_response(status, close=True))
        self.loseConnection()

    def request_data(self, data: bytes, flow: int) -> None:
        if self.paused or self.pending:
            self.pending.append((data, flow))
            return
        self._deliver(data, flow)

    def _deliver(self, data: bytes, flow: int) -> None:
        exchange = self.exchange
        if exchange is not None and not self.exchange_gone and data:
            exchange.dataReceived(b"".join(encode_chunk(data)) if self.chunked else data)
        if flow and not self.finished:
            try:
                self.owner.conn.acknowledge_received_data(flow, self.stream_id)
            except H2Error:
                pass

    def request_end(self) -> None:
        self.request_done = True
        if self.paused or self.pending:
            self.pending.append((b"", -1))
            return
        self._request_ended()

    def _request_ended(self) -> None:
        exchange = self.exchange
        if self.chunked and exchange is not None and not self.exchange_gone:
            exchange.dataReceived(LAST_CHUNK)

    def cut(self, reason: Failure) -> None:
        """The stream or the connection is gone: the exchange's client has left."""
        self.finished = True
        self.out = []
        self.pending = []
        cancel_call(self.drain_call)
        self.drain_call = None
        self._exchange_lost(reason)

    def _exchange_lost(self, reason: Failure) -> None:
        exchange = self.exchange
        if exchange is not None and not self.exchange_gone:
            self.exchange_gone = True
            exchange.connectionLost(reason)

    # -- ITransport, as the exchange uses it -------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.finished or not data:
            return
        if self.state == _HEAD:
            self._read_head(data)
        elif self.state == _BODY:
            decoder = self.decoder
            if decoder is None:
                self._response_data(data)
                return
            try:
                leftover = decoder.feed(data)
            except HTTPError:
                self._reset(ErrorCodes.INTERNAL_ERROR)
                return
            if leftover is not None:
                self._body_done()

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def _read_head(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while True:
            end, body_start = find_head_end(buf)
            if end < 0:
                self.buf = buf
                return
            try:
                head = parse_response_head(buf[:end], self.method)
            except HTTPError:
                self._reset(ErrorCodes.INTERNAL_ERROR)
                return
            buf = buf[body_start:]
            if 100 <= head.status < 200:
                # Informational answers (100 Continue, 103 Early Hints) pass as such; a
                # 101 cannot happen (the request never asks to upgrade).
                if head.status != 101:
                    self._send_headers(response_headers(head), False)
                continue
            self.buf = b""
            self._response_head(head, buf)
            return

    def response_head(self, headers: List[Tuple[bytes, bytes]], framing: str, length: int) -> None:
        """The exchange's final response head, as a header list; its body (``framing`` as
        the backend's: "none", "length" of ``length`` bytes, or until the exchange ends)
        comes through write() unframed."""
        if self.finished or self.state != _HEAD:
            return
        if framing == "none" or self.headers_only:
            self._send_headers(headers, True)
            self.state = _DONE
            self.resp_ended = True
            self._maybe_done()
            return
        self._send_headers(headers, False)
        self.state = _BODY
        self.remaining = length if framing == "length" else -1

    def _response_head(self, head: ResponseHead, rest: bytes) -> None:
        framing = head.framing
        if framing == "none" or self.headers_only:
            self._send_headers(response_headers(head), True)
            self.state = _DONE
            self.resp_ended = True
            self._maybe_done()
            return
        self._send_headers(response_headers(head), False)
        self.state = _BODY
        if framing == "length":
            self.decoder = LengthDecoder(head.content_length, self._response_data)
        elif framing == "chunked":
            self.decoder = ChunkedDecoder(self._response_data, error_status=502)
        else:
            self.decoder = CloseDecoder(self._response_data)
        if rest:
            self.write(rest)

    def _send_headers(self, headers: List[Tuple[bytes, bytes]], end: bool) -> None:
        try:
            self.owner.conn.send_headers(self.stream_id, headers, end_stream=end)
        except H2Error:
            self.cut(Failure(ConnectionLost("stream closed")))
            self.owner._forget(self)
            return
        self.owner.stream_output()

    def _response_data(self, data: bytes) -> None:
        decoder = self.decoder
        if decoder is None:
            if self.remaining > 0:
                self.remaining -= len(data)
                last = self.remaining <= 0
            else:
                last = False
        else:
            last = decoder.done
        if last:
            # The body's last piece (a length-framed body ends with it): END_STREAM rides on
            # its DATA frame instead of an empty one.
            self.state = _DONE
            self.resp_ended = True
        self.out.append(data)
        self.out_bytes += len(data)
        self.send_queued()
        if self.out_bytes > self.owner.limits.stream_buffer and not self.producer_paused:
            self.producer_paused = True
            if self.producer is not None:
                self.producer.pauseProducing()

    def _body_done(self) -> None:
        self.state = _DONE
        self.decoder = None
        self.resp_ended = True
        self.send_queued()

    def send_queued(self) -> None:
        """Send queued response data as far as the flow-control windows allow."""
        owner = self.owner
        if self.finished:
            return
        conn = owner.conn
        sid = self.stream_id
        if not owner.write_blocked:
            out = self.out
            try:
                while out:
                    window = conn.local_flow_control_window(sid)
                    if window <= 0:
                        break
                    chunk = out[0]
                    size = min(window, conn.max_outbound_frame_size)
                    if len(chunk) > size:
                        out[0] = chunk[size:]
                        chunk = chunk[:size]
                    else:
                        out.pop(0)
                    last = not out and self.resp_ended and not self.resp_trailers
                    conn.send_data(sid, chunk, end_stream=last)
                    self.out_bytes -= len(chunk)
                    if last:
                        self.finished = True
            except H2Error:
                self.cut(Failure(ConnectionLost("stream closed")))
                owner._forget(self)
                return
        if self.resp_ended and not self.out and not self.finished:
            try:
                if self.resp_trailers:
                    conn.send_headers(sid, self.resp_trailers, end_stream=True)
                else:
                    conn.end_stream(sid)
            except H2Error:
                pass
            self.finished = True
        owner.stream_output()
        if (
            self.producer_paused
            and self.out_bytes <= owner.limits.stream_buffer // 2
            and not owner.write_blocked
        ):
            self.producer_paused = False
            if self.producer is not None:
                self.producer.resumeProducing()
        if self.finished:
            self._maybe_done()

    def _maybe_done(self) -> None:
        if self.state == _DONE and self.resp_ended and not self.out:
            self.finished = True
            if not self.request_done:
                # The answer is complete; the rest of the request is not wanted (RFC 9113 §8.1).
                try:
                    self.owner.conn.reset_stream(self.stream_id, ErrorCodes.NO_ERROR)
                except H2Error:
                    pass
            self.owner._forget(self)
            self.owner.stream_output()
            if self.disconnecting:
                self._exchange_lost(_STREAM_DONE)

    def _reset(self, code: int) -> None:
        if not self.finished:
            try:
                self.owner.conn.reset_stream(self.stream_id, code)
            except H2Error:
                pass
        self.owner._forget(self)
        self.cut(Failure(ConnectionLost("stream reset")))
        self.owner.stream_output()

    def loseConnection(self) -> None:
        """The exchange is over (it asked for Connection: close)."""
        if self.disconnecting:
            return
        self.disconnecting = True
        if self.state == _BODY and (self.decoder is None or isinstance(self.decoder, CloseDecoder)):
            self._body_done()
        if self.state != _DONE:
            self._reset(ErrorCodes.INTERNAL_ERROR)
            return
        if self.finished:
            self._exchange_lost(_STREAM_DONE)
        # else: the queued data goes out first; _maybe_done ends the exchange.

    def abortConnection(self) -> None:
        self.disconnecting = True
        self._reset(ErrorCodes.INTERNAL_ERROR)

    def getPeer(self) -> Any:
        return self.owner.peer

    def getHost(self) -> Any:
        return self.owner.transport.getHost()  # type: ignore[union-attr]

    def getHandle(self) -> Any:
        handle = getattr(self.owner.transport, "getHandle", None)
        return handle() if handle is not None else None

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer
        if self.producer_paused:
            producer.pauseProducing()

    def unregisterProducer(self) -> None:
        self.producer = None

    # IPushProducer: the exchange pauses and resumes reading its "client".
    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if self.pending and self.drain_call is None:
            # As a socket would: what is pending comes after the caller has returned (the
            # exchange resumes reading before it sets up its body decoder).
            self.drain_call = self.owner.factory.clock.callLater(0, self._drain_pending)

    def _drain_pending(self) -> None:
        self.drain_call = None
        while self.pending and not self.paused and not self.exchange_gone:
            data, flow = self.pending.pop(0)
            if flow < 0:
                self._request_ended()
            else:
                self._deliver(data, flow)
        self.owner.stream_output()

    def stopProducing(self) -> None:
        pass
