"""HTTP/2 to clients: ALPN ``h2`` on TLS, h2c (prior knowledge or ``Upgrade: h2c``) in clear.

The h2 library is the protocol engine. Each request stream is served by the same exchange
machinery as an HTTP/1.1 request (tsproxy.http.server.HTTPServerConnection): the stream's
request head, built from its header list (tsproxy/http/h2wire.py), is handed to an exchange
whose transport is the stream (`StreamTransport`, tsproxy/http/h2stream.py), and what it
answers becomes HTTP/2 HEADERS and DATA. Routing, balancing, sticky cookies, mirroring,
middlewares and observation are therefore the very code HTTP/1.1 requests go through.
Backpressure maps both ways: a stream's exchange pausing its "transport" withholds the
stream's WINDOW_UPDATEs; a stream whose send window or the client's socket is full pauses
its exchange (and so the backend's reading).

`HTTPSwitch` (tsproxy/http/h2switch.py) is what an HTTP entrypoint's connection starts as:
it picks HTTP/2 or HTTP/1.1 from the negotiated ALPN protocol or the first bytes.
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
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from tsproxy.http.backend import cancel_call
from tsproxy.http.h2stream import StreamTransport
from tsproxy.http.h2wire import (
    StreamRequestError,
    hpack_block,
    request_header_error,
    stream_request,
)
from tsproxy.http.relay import send
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


# -- the HTTP/2 connection -------------------------------------------------------------------


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
        self.failed = False  # a connection error: the rest of what was read is ignored
        self.closed = False
        self.timer: Any = None
        self.peer: Any = None
        self.peer_ip = ""
        self.in_receive = False
        self.flush_call: Any = None
        self.shared_stream_factory: Any = None
        conn = self.conn = H2Connection(server_config())
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
        peer = self.peer = self.transport.getPeer()  # type: ignore[union-attr]
        self.peer_ip = getattr(peer, "host", "")
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
        cancel_call(self.flush_call)
        self.flush_call = None
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
        self.failed = True
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
                if self.closed or self.failed:
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
            why = request_header_error(event.headers, False)
            if why is not None:
                self._fail(ErrorCodes.PROTOCOL_ERROR, why)
                return
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
            why = request_header_error(event.headers, True)
            if why is not None:
                self._fail(ErrorCodes.PROTOCOL_ERROR, why)
                return
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
            req = stream_request(headers, ended, self.factory.limits.policy)
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
        # As the HTTP/1.1 engine's writes: at the end of the batch of events, or at once.
        send(self.transport, data)

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
        """A stream queued frames: they go out after the batch of events being read, or once
        per reactor turn (what every stream answered meanwhile, in one write)."""
        if self.in_receive or self.flush_call is not None or self.closed:
            return
        self.flush_call = self.factory.clock.callLater(0, self._turn_flush)

    def _turn_flush(self) -> None:
        self.flush_call = None
        if not self.closed:
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


def server_config() -> H2Configuration:
    """How h2 is set up for a client connection (also bench/h2_library_cost.py's)."""
    return H2Configuration(
        client_side=False,
        header_encoding=None,
        # Checked by h2wire.request_header_error in one pass (the same checks).
        validate_inbound_headers=False,
        normalize_inbound_headers=True,
        # What is sent comes from a parsed HTTP/1.1 head, names lower-cased and connection
        # fields dropped by response_headers: checked already.
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )


def _plain_hpack(conn: H2Connection) -> None:
    """Encode header blocks without the dynamic table and without Huffman coding (h2wire's
    hpack_block): a little larger, much cheaper in Python. A block after the client changed
    SETTINGS_HEADER_TABLE_SIZE goes through hpack's own encoder, which signals the change."""
    encoder = conn.encoder
    encode = encoder.encode
    table = encoder.header_table

    def plain(headers: Any, huffman: bool = True) -> bytes:
        if table.resized:
            return encode(headers, huffman=False)
        return hpack_block(headers)

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
