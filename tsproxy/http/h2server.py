"""HTTP/2 to clients: ALPN ``h2`` on TLS, h2c (prior knowledge or ``Upgrade: h2c``) in clear.

The h2 library is the protocol engine. Each request stream is served by the same exchange
machinery as an HTTP/1.1 request (tsproxy.http.server.HTTPServerConnection): the stream's
request is written to an exchange as HTTP/1.1 bytes through an in-memory transport
(`StreamTransport`) whose output is parsed back into HTTP/2 HEADERS and DATA. Routing,
balancing, sticky cookies, mirroring, middlewares and observation are therefore the very
code HTTP/1.1 requests go through. Backpressure maps both ways: a stream's exchange pausing
its "transport" withholds the stream's WINDOW_UPDATEs; a stream whose send window or the
client's socket is full pauses its exchange (and so the backend's reading).

`HTTPSwitch` is what an HTTP entrypoint's connection starts as: it picks HTTP/2 or HTTP/1.1
from the negotiated ALPN protocol or the first bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import attrs
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import DenialOfServiceError, FlowControlError, H2Error, ProtocolError
from h2.settings import SettingCodes, Settings
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from tsproxy.http.backend import cancel_call
from tsproxy.http.h2wire import (
    PREFACE,
    StreamRequest,
    StreamRequestError,
    response_headers,
    stream_request,
)
from tsproxy.http.headers import error_response
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
    parse_request_head,
    parse_response_head,
)
from tsproxy.logs import get_logger

if TYPE_CHECKING:
    from tsproxy.http.entrypoint import HTTPEntryPointFactory

log = get_logger(__name__)


@attrs.frozen
class H2Limits:
    """An HTTP/2 connection's limits: Envoy's edge defaults, and the attack bounds."""

    max_concurrent_streams: int = 100
    initial_stream_window: int = 64 * 1024
    connection_window: int = 1 << 20
    #: SETTINGS_MAX_HEADER_LIST_SIZE, enforced on the decoded list (HPACK bombs).
    max_header_list_size: int = 60 * 1024
    #: A header block's encoded size across HEADERS and CONTINUATION frames.
    max_header_block: int = 64 * 1024
    #: Control-frame answers (PING and SETTINGS ACKs) queued while the client does not read.
    max_queued_control_frames: int = 1000
    #: Bytes queued for a client that does not read before the connection is dropped.
    max_queued_bytes: int = 4 << 20
    #: Rapid reset (CVE-2023-44487): a stream the client resets within this many seconds
    #: of opening it is premature; past `premature_reset_limit` of them, and once they are
    #: half the streams opened, the connection gets GOAWAY.
    premature_reset_seconds: float = 1.0
    premature_reset_limit: int = 100
    #: Response bytes queued per stream (send window closed) before its exchange pauses.
    stream_buffer: int = 64 * 1024


DEFAULT_LIMITS = H2Limits()
#: How long a connection may take to choose its protocol (send its first request bytes).
SNIFF_LIMIT = 16 * 1024


# -- the protocol switch --------------------------------------------------------------------


@implementer(IHalfCloseableProtocol)
class HTTPSwitch(Protocol):
    """A new connection of an HTTP entrypoint: becomes HTTP/2 or stays HTTP/1.1.

    ``h2`` negotiated by ALPN, or the HTTP/2 connection preface, make it HTTP/2; a first
    request ``Upgrade: h2c`` without a body is upgraded (RFC 7540 §3.2). The HTTP/1.1
    connection is made at once (it is what is counted, drained and timed out while the first
    bytes are awaited); once the protocol is known the switch steps out of the transport's
    way, so HTTP/1.1 pays nothing after the first read.
    """

    def __init__(self, factory: HTTPEntryPointFactory, limits: H2Limits = DEFAULT_LIMITS) -> None:
        self.factory = factory
        self.limits = limits
        self.http1 = HTTPServerConnection()
        self.http1.factory = factory
        self.inner: Any = None
        self.buf = b""

    def connectionMade(self) -> None:
        self.http1.makeConnection(self.transport)

    def dataReceived(self, data: bytes) -> None:
        inner = self.inner
        if inner is not None:
            inner.dataReceived(data)
            return
        buf = self.buf = self.buf + data
        if getattr(self.transport, "negotiatedProtocol", None) == b"h2":
            self._choose_h2(None)
            return
        if buf[: len(PREFACE)] == PREFACE:
            self._choose_h2(None)
            return
        if PREFACE.startswith(buf):
            return  # maybe the preface: wait for more
        if self.factory.tls or b"h2c" not in buf[:SNIFF_LIMIT].lower():
            self._choose(self.http1)
            return
        end, body_start = find_head_end(buf)
        if end < 0:
            if len(buf) > SNIFF_LIMIT:
                self._choose(self.http1)
            return
        try:
            req = parse_request_head(buf[:end])
        except HTTPError:
            self._choose(self.http1)
            return
        settings = _upgrade_settings(req.headers, req.connection_tokens)
        if (
            req.upgrade is None
            or req.upgrade.strip().lower() != b"h2c"
            or settings is None
            or req.framing != "none"
        ):
            self._choose(self.http1)
            return
        self.buf = buf[body_start:]
        self.transport.write(  # type: ignore[union-attr]
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        )
        self._choose_h2((settings, req))

    def _choose_h2(self, upgrade: Any) -> None:
        """Retire the HTTP/1.1 connection (it has read nothing) for an HTTP/2 one, which
        takes over its place in the connection count."""
        http1 = self.http1
        http1.state = "closed"
        http1._cancel_timer()
        self.transport.unregisterProducer()  # type: ignore[union-attr]
        self.factory.connections.discard(http1)
        self._choose(H2ServerConnection(self.factory, self.limits, upgrade=upgrade))

    def _choose(self, inner: Any) -> None:
        self.inner = inner
        transport: Any = self.transport
        # Step out of the way: the transport delivers to the chosen protocol directly.
        if getattr(transport, "protocol", None) is self:
            transport.protocol = inner
        elif getattr(transport, "wrappedProtocol", None) is self:
            transport.wrappedProtocol = inner
        if inner is not self.http1:
            inner.makeConnection(transport)
        data, self.buf = self.buf, b""
        if data:
            inner.dataReceived(data)

    def readConnectionLost(self) -> None:
        if self.inner is None:
            self._choose(self.http1)
        inner = self.inner
        if hasattr(inner, "readConnectionLost"):
            inner.readConnectionLost()
        else:
            self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        inner = self.inner if self.inner is not None else self.http1
        inner.writeConnectionLost()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        inner = self.inner if self.inner is not None else self.http1
        inner.connectionLost(reason)


def _upgrade_settings(headers: Any, tokens: Tuple[bytes, ...]) -> Optional[bytes]:
    """The single HTTP2-Settings value of an h2c upgrade request, if it is well formed."""
    if b"http2-settings" not in tokens:
        return None
    values = [v for n, v in headers if n.lower() == b"http2-settings"]
    if len(values) != 1:
        return None
    return values[0].strip()


# -- the HTTP/2 connection -------------------------------------------------------------------


class _StreamObserver:
    """The entrypoint's observer as a stream's exchange sees it: no connection counts (the
    TCP connection is counted once), exchanges reported as HTTP/2.0 with their trailers."""

    def __init__(self, real: Any, stream: StreamTransport) -> None:
        self.real = real
        self.stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def connection_opened(self, entrypoint: str, protocol: str) -> None:
        pass

    def connection_closed(self, entrypoint: str, protocol: str) -> None:
        pass

    def exchange(self, rec: Any) -> None:
        rec.version = b"HTTP/2.0"
        trailers = self.stream.resp_trailers
        if trailers:
            rec.response_headers = list(rec.response_headers) + list(trailers)
        self.real.exchange(rec)


class _NoConnections:
    """A stream's exchange is not a connection to drain: the HTTP/2 connection is."""

    def add(self, conn: Any) -> None:
        pass

    def discard(self, conn: Any) -> None:
        pass


_NO_CONNECTIONS = _NoConnections()


class _StreamFactory:
    """The entrypoint's factory as a stream's exchange sees it."""

    def __init__(self, real: HTTPEntryPointFactory, stream: StreamTransport) -> None:
        self.__dict__.update(real.__dict__)
        self._real = real
        self.connections = _NO_CONNECTIONS
        if real.observer is not None:
            self.observer = _StreamObserver(real.observer, stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@implementer(IPushProducer)
class _TransportWatch:
    """Registered on the client's transport: its write buffer full or drained."""

    def __init__(self, owner: H2ServerConnection) -> None:
        self.owner = owner

    def pauseProducing(self) -> None:
        self.owner.write_blocked = True

    def resumeProducing(self) -> None:
        self.owner.write_drained()

    def stopProducing(self) -> None:
        pass


class H2ServerConnection(Protocol):
    """One client HTTP/2 connection; its streams are exchanges of the entrypoint."""

    def __init__(
        self,
        factory: HTTPEntryPointFactory,
        limits: H2Limits = DEFAULT_LIMITS,
        upgrade: Optional[Tuple[bytes, Any]] = None,
    ) -> None:
        self.factory = factory
        self.limits = limits
        self.upgrade = upgrade
        self.streams: Dict[int, StreamTransport] = {}
        self.write_blocked = False
        self.held: List[bytes] = []
        self.held_bytes = 0
        self.held_control = 0
        self.opened = 0
        self.premature_resets = 0
        self.closing = False
        self.closed = False
        self.timer: Any = None
        self.peer_ip = ""
        self.in_receive = False
        self.flush_wanted = False
        config = H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=True,
            normalize_inbound_headers=True,
            # What is sent comes from a parsed HTTP/1.1 head, names lower-cased and
            # connection fields dropped by response_headers: checked already.
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        conn = self.conn = H2Connection(config)
        conn.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: limits.max_concurrent_streams,
                SettingCodes.INITIAL_WINDOW_SIZE: limits.initial_stream_window,
                SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_list_size,
            },
        )
        conn.decoder.max_header_list_size = limits.max_header_list_size
        _plain_hpack(conn)
        _bound_header_blocks(conn, limits.max_header_block)

    # -- connection lifecycle ---------------------------------------------------------------

    def connectionMade(self) -> None:
        factory = self.factory
        self.peer_ip = getattr(self.transport.getPeer(), "host", "")  # type: ignore[union-attr]
        # Counted as opened by the HTTP/1.1 connection it replaces (HTTPSwitch).
        factory.connections.add(self)
        self.transport.registerProducer(_TransportWatch(self), True)  # type: ignore[union-attr]
        conn = self.conn
        upgrade = self.upgrade
        if upgrade is not None:
            settings, req = upgrade
            try:
                conn.initiate_upgrade_connection(settings)
            except (H2Error, ValueError):
                self.transport.loseConnection()  # type: ignore[union-attr]
                return
        else:
            conn.initiate_connection()
        extra = self.limits.connection_window - 65535
        if extra > 0:
            conn.increment_flow_control_window(extra)
        if upgrade is not None:
            # The upgrading request is stream 1, its request already complete.
            self._open_stream(1, _upgraded_headers(req, self.factory.tls), True)
        self._flush()
        self._arm_idle()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed = True
        cancel_call(self.timer)
        self.timer = None
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.cut(reason or Failure(ConnectionLost()))
        factory = self.factory
        factory.connections.discard(self)
        if factory.observer is not None:
            factory.observer.connection_closed(factory.name, "TCP")

    def readConnectionLost(self) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]

    def close(self) -> None:
        """At shutdown: GOAWAY, and close once the streams in progress are done."""
        if self.closed or self.closing:
            return
        self.closing = True
        self.conn.close_connection(ErrorCodes.NO_ERROR)
        self._flush()
        if not self.streams:
            self.transport.loseConnection()  # type: ignore[union-attr]

    def abort(self) -> None:
        self.transport.abortConnection()  # type: ignore[union-attr]

    def _arm_idle(self) -> None:
        cancel_call(self.timer)
        self.timer = None
        timeout = self.factory.entrypoint.idle_timeout
        if timeout > 0 and not self.streams and not self.closed:
            self.timer = self.factory.clock.callLater(timeout, self._idle)

    def _idle(self) -> None:
        self.timer = None
        if not self.streams:
            self.closing = True
            self.conn.close_connection(ErrorCodes.NO_ERROR)
            self._flush()
            self.transport.loseConnection()  # type: ignore[union-attr]

    def _fail(self, code: int, why: str) -> None:
        """A connection error: GOAWAY with ``code`` and close."""
        log.info("HTTP/2 connection from {peer} closed: {why}", peer=self.peer_ip, why=why)
        try:
            self.conn.close_connection(code)
        except H2Error:
            pass
        self.closing = True
        self.write_blocked = False  # send the GOAWAY if the socket takes it
        self._flush()
        self.transport.loseConnection()  # type: ignore[union-attr]

    # -- reading ----------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.closed:
            return
        self.in_receive = True
        try:
            try:
                events = self.conn.receive_data(data)
            except DenialOfServiceError as e:
                self._fail(ErrorCodes.ENHANCE_YOUR_CALM, str(e) or "denial of service")
                return
            except FlowControlError as e:
                self._fail(ErrorCodes.FLOW_CONTROL_ERROR, str(e))
                return
            except ProtocolError as e:
                self._fail(ErrorCodes.PROTOCOL_ERROR, str(e) or "protocol error")
                return
            for event in events:
                self._event(event)
                if self.closed:
                    return
        finally:
            self.in_receive = False
        self._flush()

    def _event(self, event: Any) -> None:
        if isinstance(event, DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.request_data(event.data, event.flow_controlled_length)
            elif event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, RequestReceived):
            self._open_stream(event.stream_id, event.headers, event.stream_ended is not None)
        elif isinstance(event, StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.request_end()
        elif isinstance(event, StreamReset):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                if event.remote_reset:
                    self._count_reset(stream)
                self._forget(stream)
                stream.cut(Failure(ConnectionLost("stream reset by the client")))
        elif isinstance(event, (WindowUpdated, RemoteSettingsChanged)):
            self._flush_streams()
        elif isinstance(event, PingReceived):
            self._count_control()
        elif isinstance(event, TrailersReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.req_trailers = list(event.headers)
                if event.stream_ended is not None:
                    stream.request_end()
        elif isinstance(event, ConnectionTerminated):
            self.closing = True
            if not self.streams:
                self.transport.loseConnection()  # type: ignore[union-attr]
        if isinstance(event, RemoteSettingsChanged):
            self._count_control()

    def _count_control(self) -> None:
        """A control frame was answered: bounded while the client does not read (floods)."""
        if self.write_blocked:
            self.held_control += 1
            if self.held_control > self.limits.max_queued_control_frames:
                self._fail(ErrorCodes.ENHANCE_YOUR_CALM, "control frame flood")

    def _count_reset(self, stream: StreamTransport) -> None:
        limits = self.limits
        if self.factory.clock.seconds() - stream.opened_at < limits.premature_reset_seconds:
            self.premature_resets += 1
            if (
                self.premature_resets >= limits.premature_reset_limit
                and self.premature_resets * 2 >= self.opened
            ):
                self._fail(ErrorCodes.ENHANCE_YOUR_CALM, "too many streams reset (rapid reset)")

    def _open_stream(self, stream_id: int, headers: Any, ended: bool) -> None:
        if self.closing:
            try:
                self.conn.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            except H2Error:
                pass
            return
        cancel_call(self.timer)
        self.timer = None
        self.opened += 1
        stream = StreamTransport(self, stream_id)
        self.streams[stream_id] = stream
        try:
            req = stream_request(headers, ended)
        except StreamRequestError as e:
            stream.local_answer(e.status)
            return
        stream.start(req, ended)

    def _forget(self, stream: StreamTransport) -> None:
        if self.streams.pop(stream.stream_id, None) is not None and not self.streams:
            if self.closing:
                self._flush()
                self.transport.loseConnection()  # type: ignore[union-attr]
            else:
                self._arm_idle()

    # -- writing ----------------------------------------------------------------------------

    def _flush(self) -> None:
        """Send what the h2 state machine has queued; hold it while the client is not reading."""
        data = self.conn.data_to_send()
        if not data:
            return
        if self.write_blocked and not self.closing:
            self.held.append(data)
            self.held_bytes += len(data)
            if self.held_bytes > self.limits.max_queued_bytes:
                self.held = []
                self.closed = True
                self.transport.abortConnection()  # type: ignore[union-attr]
            return
        if self.held:
            self.held.append(data)
            data = b"".join(self.held)
            self.held = []
            self.held_bytes = 0
        self.transport.write(data)  # type: ignore[union-attr]

    def write_drained(self) -> None:
        self.write_blocked = False
        self.held_control = 0
        if self.held:
            data = b"".join(self.held)
            self.held = []
            self.held_bytes = 0
            self.transport.write(data)  # type: ignore[union-attr]
        self._flush_streams()
        self._flush()

    def _flush_streams(self) -> None:
        for stream in list(self.streams.values()):
            if stream.out or stream.producer_paused:
                stream.send_queued()

    def stream_output(self) -> None:
        """A stream queued frames: send them unless a batch of events is being read."""
        if not self.in_receive:
            self._flush()


def _upgraded_headers(req: Any, tls: bool) -> List[Tuple[bytes, bytes]]:
    """The HTTP/2 header list of the request that asked for the h2c upgrade."""
    authority = b""
    out: List[Tuple[bytes, bytes]] = []
    drop = {b"connection", b"upgrade", b"http2-settings", b"keep-alive", b"te"}
    drop.update(req.connection_tokens)
    for name, value in req.headers:
        lname = name.lower()
        if lname == b"host":
            authority = value
        elif lname not in drop:
            out.append((lname, value))
    return [
        (b":method", req.method),
        (b":scheme", b"https" if tls else b"http"),
        (b":authority", authority),
        (b":path", req.target),
    ] + out


def _plain_hpack(conn: H2Connection) -> None:
    """Encode header blocks without Huffman coding: a little larger, much cheaper in Python."""
    encoder = conn.encoder
    encode = encoder.encode

    def plain(headers: Any, huffman: bool = True) -> bytes:
        return encode(headers, huffman=False)

    encoder.encode = plain  # type: ignore[method-assign]


def _bound_header_blocks(conn: H2Connection, limit: int) -> None:
    """Refuse a header block (HEADERS plus CONTINUATIONs) larger than ``limit`` encoded
    bytes as it arrives: a CONTINUATION flood never gets buffered whole."""
    buf = conn.incoming_buffer
    update = getattr(buf, "_update_header_buffer", None)
    if update is None or not hasattr(buf, "_headers_buffer"):
        return

    def bounded(frame: Any) -> Any:
        out = update(frame)
        pending = buf._headers_buffer
        if pending and sum(len(f.data) for f in pending) > limit:
            raise DenialOfServiceError("header block too large")
        return out

    buf._update_header_buffer = bounded  # type: ignore[method-assign]


# -- one stream --------------------------------------------------------------------------------

_HEAD, _BODY, _DONE = range(3)


class StreamTransport:
    """The in-memory transport between one HTTP/2 stream and its HTTP/1.1 exchange."""

    def __init__(self, owner: H2ServerConnection, stream_id: int) -> None:
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
        self.method = req.method
        self.chunked = req.chunked
        self.request_done = ended
        exchange = self.exchange = HTTPServerConnection()
        exchange.factory = _StreamFactory(self.owner.factory, self)  # type: ignore[assignment]
        exchange.makeConnection(self)  # type: ignore[arg-type]
        exchange.dataReceived(req.head)

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
            try:
                leftover = self.decoder.feed(data)  # type: ignore[union-attr]
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
        if decoder is not None and decoder.done:
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
                self._exchange_lost(Failure(ConnectionDone()))

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
        if isinstance(self.decoder, CloseDecoder):
            self._body_done()
        if self.state != _DONE:
            self._reset(ErrorCodes.INTERNAL_ERROR)
            return
        if self.finished:
            self._exchange_lost(Failure(ConnectionDone()))
        # else: the queued data goes out first; _maybe_done ends the exchange.

    def abortConnection(self) -> None:
        self.disconnecting = True
        self._reset(ErrorCodes.INTERNAL_ERROR)

    def getPeer(self) -> Any:
        return self.owner.transport.getPeer()  # type: ignore[union-attr]

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
