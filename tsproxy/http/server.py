"""The HTTP/1.1 entrypoint: one protocol instance per client connection.

It reads requests, routes each through the routing table current at the request's start,
forwards it over a pooled backend connection and streams both bodies with backpressure.
Requests on a connection are served one at a time, so pipelined answers keep their order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from tsproxy.http.backend import (
    BackendConnection,
    PendingConnect,
    cancel_call,
)
from tsproxy.http.headers import (
    HeaderText,
    error_response,
)
from tsproxy.http.pipeline import (
    local_answer,
)
from tsproxy.http.relay import send
from tsproxy.http.server_answers import ACTIVE, CLOSED, IDLE, TUNNEL
from tsproxy.http.server_backend import ServerBackend
from tsproxy.http.wire import (
    LAST_CHUNK,
    BodyDecoder,
    HTTPError,
    RequestHead,
    ResponseHead,
    find_head_end,
    parse_request_head,
)
from tsproxy.logs import get_logger
from tsproxy.middlewares.exchange import ExchangeHooks
from tsproxy.rules import HTTPRequestInfo
from tsproxy.runtime.internal import InternalService
from tsproxy.runtime.services import resolve

if TYPE_CHECKING:
    from tsproxy.http.entrypoint import HTTPEntryPointFactory
    from tsproxy.runtime.services import Pick, Server

log = get_logger(__name__)

#: Pipelined input buffered beyond this while a response is pending pauses reading.
PIPELINE_LIMIT = 64 * 1024


@implementer(IHalfCloseableProtocol)
class HTTPServerConnection(ServerBackend):
    """A client connection to an HTTP entrypoint."""

    factory: HTTPEntryPointFactory

    def __init__(self) -> None:
        self.state = IDLE
        self.tls_labels: Optional[Tuple[str, str]] = None
        self.buf = b""
        self.peer_ip = ""
        self.peer_port = 0
        self.trusted = False
        self.client_eof = False
        self.wheel_slot: Optional[int] = None  # the entrypoint's TimerWheel: readTimeout, idle
        self.processing = False
        self.head_timer = False
        self.continue_call: Any = None
        self._reset_exchange()

    def _reset_exchange(self) -> None:
        if self.lease is not None:
            self._end_lease()
        self.req: Optional[RequestHead] = None
        self.req_decoder: Optional[BodyDecoder] = None
        self.req_body_done = False
        self.resp_started = False
        self.resp_framing = "none"
        self.keep_alive = True
        self.pick: Optional[Pick] = None
        self.server: Optional[Server] = None
        self.failure_told = False  # the passive health check heard this exchange failed
        self.backend: Optional[BackendConnection] = None
        self.pending: Optional[PendingConnect] = None
        self.out_head = b""
        # The client response head held back to go out with the first body bytes.
        self.head_out = b""
        self.retried = False
        self.continued = False
        self.capture: Any = None
        # What an observed exchange reports (t0 None: not observed, or reported already).
        self.t0: Optional[float] = None
        self.t_origin: Optional[float] = None
        self.router: Any = None
        self.origin_head: Optional[ResponseHead] = None
        self.req_bytes = 0
        self.resp_bytes = 0
        # The middlewares' view of the request (None: the router has none), and a step's
        # answer still to come.
        self.mw_request: Any = None
        self.mw_pending: Optional[Deferred[Any]] = None
        # The traffic middlewares' hooks (tsproxy/middlewares/exchange.py): the response
        # sink chain in use, what a retry dispatches again, the status sent, network error.
        self.mw_hooks: Optional[ExchangeHooks] = None
        self.mw_sink: Any = None
        self.mw_open = False
        self.mw_again: Any = None
        self.mw_call: Any = None
        self.mw_status = 0
        self.mw_network = False
        # A response head held until the first body bytes fill its Content-Type (sniffing).
        self.held_head: Any = None
        # The request body a step asked for (forwardAuth forwardBody, buffering): being
        # read, read (BodyStores, tsproxy/middlewares/bodystore.py), being sent from the store.
        self.body_wait: Optional[Deferred[Any]] = None
        self.body_store: Any = None
        self.body_memory: Optional[int] = None
        self.body_limit = -1
        self.body_read: Any = None
        self.body_pump: Any = None

    # -- connection lifecycle -------------------------------------------------------------

    def connectionMade(self) -> None:
        self.start_relaying()
        peer = self.transport.getPeer()
        self.peer_ip = getattr(peer, "host", "")
        self.trusted = self.factory.trusted(self.peer_ip)
        self.factory.connections.add(self)
        observer = self.factory.observer
        if observer is not None:
            self.peer_port = getattr(peer, "port", 0)
            observer.connection_opened(self.factory.name, "TCP")
        self._arm_timer(self.factory.entrypoint.idle_timeout)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.state = CLOSED
        self._end_lease()
        self._cancel_timer()
        self._cancel_continue()
        observer = self.factory.observer
        if observer is not None:
            if self.t0 is not None:
                # Cut while in progress: the client left (499, as Traefik logs a canceled
                # request) or, once answering, the backend or client broke off.
                self._report(self._sent_status() if self.resp_started else 499)
            observer.connection_closed(self.factory.name, "TCP")
        # Last: a shutdown waiting for the connections to be gone closes the observers then.
        self.factory.connections.discard(self)
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None
        if self.mw_pending is not None:
            self.mw_pending.cancel()
        if self.mw_call is not None:
            cancel_call(self.mw_call)
            self.mw_call = None
        self._end_hooks("client closed")
        backend, self.backend = self.backend, None
        if backend is not None:
            self.set_peer(None)
            if backend.tunnel:
                backend.listener = None
                backend.transport.loseConnection()
            else:
                self.factory.pool.discard(backend)
        if self.capture is not None:
            self.capture.abandon()
            self.capture = None

    def readConnectionLost(self) -> None:
        """The client closed its side: it has gone (as Go's server and nginx take it). The
        exchange in progress is aborted at once, backend included, and counted as 499;
        requests it pipelined before are not started."""
        self.client_eof = True
        state = self.state
        if state == ACTIVE:
            self._abort_exchange("client closed before the response ended")
        elif state == IDLE:
            self.state = CLOSED
            self.transport.loseConnection()
        elif state == TUNNEL:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        self.transport.loseConnection()

    def _arm_timer(self, seconds: float) -> None:
        if seconds > 0:
            self.factory.timers.arm(self, seconds)
        else:
            self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self.wheel_slot is not None:
            self.factory.timers.cancel(self)

    def timed_out(self) -> None:
        """The entrypoint's TimerWheel: readTimeout or the idle timeout ran out."""
        state = self.state
        if state == IDLE:
            if self.buf:
                self._reject(408)  # a request head that never finished within readTimeout
            else:
                self.transport.loseConnection()  # idle keep-alive
        elif state == ACTIVE and not self.req_body_done:
            # readTimeout covers the whole request, body included (Go's ReadTimeout).
            if self.resp_started:
                self._abort_exchange("request not read within readTimeout")
            else:
                if self.pending is not None:
                    self.pending.cancel()
                    self.pending = None
                self._drop_backend()
                self._reject(408)

    def close(self) -> None:
        """Close once the exchange in progress (if any) is over: used at shutdown."""
        if self.state == IDLE:
            self.transport.loseConnection()
        else:
            self.keep_alive = False

    def abort(self) -> None:
        """Close now, whatever is in progress: the shutdown grace time is over."""
        self.transport.abortConnection()

    # -- reading requests ----------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        state = self.state
        if state == TUNNEL:
            if self.backend is not None:
                send(self.backend.transport, data)
            return
        if self.req_decoder is not None:
            self._feed_request_body(data)
            return
        if state == CLOSED:
            return
        self.buf = self.buf + data if self.buf else data
        if state == IDLE:
            self._process()
        elif len(self.buf) > PIPELINE_LIMIT:
            self.gate.pause("pipeline")  # type: ignore[union-attr]

    def _process(self) -> None:
        """Serve the buffered requests, one at a time, for as long as they complete now."""
        if self.processing:
            return
        self.processing = True
        try:
            while self.state == IDLE:
                buf = self.buf
                if not buf:
                    if self.client_eof:
                        self.state = CLOSED
                        self.transport.loseConnection()
                    return
                if self.write_blocked:
                    # The client is not reading its answers: serve no more of its pipelined
                    # requests (local answers would pile up in memory) and stop reading until
                    # the write buffer drains (write_drained). Like Go, no timeout meanwhile.
                    self.gate.pause("answers")  # type: ignore[union-attr]
                    self._cancel_timer()
                    self.head_timer = False
                    return
                end, body_start = find_head_end(buf)
                limits = self.factory.limits
                if end < 0:
                    if self.client_eof:
                        self.state = CLOSED
                        self.transport.loseConnection()
                    elif len(buf) > limits.max_head_bytes:
                        self._reject(431)
                    elif not self.head_timer:
                        # A started head must finish within readTimeout (slowloris guard).
                        self.head_timer = True
                        self._arm_timer(self.factory.entrypoint.read_timeout)
                    return
                if end > limits.max_head_bytes:
                    self._reject(431)
                    return
                head = buf[:end]
                self.buf = buf[body_start:]
                try:
                    req = parse_request_head(head, limits.policy)
                except HTTPError as e:
                    self._reject(e.status)
                    return
                if req.framing == "none":
                    self._cancel_timer()
                elif not self.head_timer:
                    # readTimeout runs on until the body is read (Go's ReadTimeout).
                    self._arm_timer(self.factory.entrypoint.read_timeout)
                self.head_timer = False
                self._start_exchange(req)
        finally:
            self.processing = False

    def serve_request(self, req: RequestHead) -> None:
        """Serve a request whose head was read elsewhere (an HTTP/2 stream's, built by
        tsproxy/http/h2wire.py) as a head read from this connection is served; its body,
        if any, follows through dataReceived."""
        if req.framing == "none":
            self._cancel_timer()
        else:
            self._arm_timer(self.factory.entrypoint.read_timeout)
        self._start_exchange(req)

    def write_drained(self) -> None:
        """The client read enough of its answers: serve its next pipelined requests."""
        super().write_drained()  # a paced response's next pieces (ServerSteps._pace)
        gate = self.gate
        if gate is None or "answers" not in gate.reasons:
            return
        gate.resume("answers")
        if self.state == IDLE:
            self._arm_timer(self.factory.entrypoint.idle_timeout)
            self._process()

    def _reject(self, status: int) -> None:
        """Answer a request that could not be read, and close: the stream is lost."""
        self.state = CLOSED
        self._cancel_timer()
        response = error_response(status, close=True)
        self.transport.write(response)
        if self.t0 is not None:
            # A request whose body turned out malformed: it was an exchange, report it.
            self.resp_bytes = _body_length(response)
            self._report(status)
        self.transport.loseConnection()

    # -- one exchange --------------------------------------------------------------------

    def _start_exchange(self, req: RequestHead) -> None:
        self.state = ACTIVE
        self.req = req
        self.req_body_done = req.framing == "none"
        self.keep_alive = req.keep_alive
        factory = self.factory
        internal = factory.internal
        if internal is not None and self._answer_internal(internal, req):
            return  # not observed: Traefik leaves its internal routers out (addInternals)
        if factory.observer is not None:
            self.t0 = factory.clock.seconds()
        info = HTTPRequestInfo.from_request(
            req.method.decode("latin-1"),
            # The cleaned path, and the host it is forwarded with (an absolute-form target's
            # authority wins over Host): what is routed on is what the backend gets.
            routing_target(req),
            HeaderText(req.headers),
            self.peer_ip,
            # Found by the parser already (None: the target's authority is routed on).
            host=None if req.host_in_target else req.host.decode("utf-8", "surrogateescape"),
        )
        router = self.router = factory.get_table().http_route(factory.name, info, factory.tls)
        if router is None:
            self._local_response(404)
            return
        if router.chain:
            self._run_middlewares(router.chain, req, info)
            return
        self._forward(req, info)

    def _forward(self, req: RequestHead, info: HTTPRequestInfo) -> None:
        """Send ``req`` (as the steps left it) on to the router's service."""
        service = self.router.service
        if isinstance(service, InternalService):
            self._answer_routed_internal(service, req)
            return
        pick = self.pick = resolve(service, info)
        self.failure_told = False
        if pick.steps:
            self._run_middlewares(pick.steps, req, info, picked=True)
            return
        self._send(req)

    def _feed_request_body(self, data: bytes) -> None:
        if self.continue_call is not None:
            self._cancel_continue()
        try:
            leftover = self.req_decoder.feed(data)  # type: ignore[union-attr]
        except HTTPError as e:
            if self.resp_started:
                self._abort_exchange("malformed request body: " + e.reason)
            else:
                self._drop_backend()
                self._reject(e.status)
            return
        if leftover is not None:
            self.req_decoder = None
            self._cancel_timer()  # the readTimeout of this request
            if leftover:
                self.buf = leftover
                if len(leftover) > PIPELINE_LIMIT:
                    self.gate.pause("pipeline")  # type: ignore[union-attr]
            self.req_body_done = True
            if self.capture is not None:
                self.capture.body_done()
            if self.backend is not None and self.req is not None:
                if self.req.framing == "chunked":
                    send(self.backend.transport, LAST_CHUNK)
            self._request_sent()
            if self.body_wait is not None:
                self._body_complete()

    def _local_response(self, status: int) -> None:
        """Answer from the proxy itself (404, 503, 502, 504)."""
        self.mw_status = status
        if self.mw_request is not None and (
            self.mw_request.response_hooks or self.mw_request.sink_wrappers
        ):
            self._answer(local_answer(status))
            return
        if not self.req_body_done:
            # The unread request body would be taken for the next request: close instead.
            self.keep_alive = False
        response = error_response(status, close=not self.keep_alive)
        req = self.req
        if req is not None and req.method == b"HEAD":
            # The head only (Content-Length kept): a body would be read as the next answer.
            send(self.transport, response[: response.index(b"\r\n\r\n") + 4])
        else:
            send(self.transport, response)
        self.resp_started = True
        if self.t0 is not None:
            self.resp_bytes = _body_length(response)
            self._report(status)
        self._complete()

    def _abort_exchange(self, why: str) -> None:
        log.debug("aborting exchange with {peer}: {why}", peer=self.peer_ip, why=why)
        self._end_hooks(why)
        if self.t0 is not None:
            self._report(self._sent_status() if self.resp_started else 499)
        self._drop_backend()
        self.state = CLOSED
        self.transport.abortConnection()

    def _complete(self) -> None:
        """The response is written: send the mirrors, then serve the next request or close."""
        if self.continue_call is not None:
            self._cancel_continue()
        capture, self.capture = self.capture, None
        if capture is not None:
            capture.send()
        if self.t0 is not None:
            self._report(self._sent_status())
        self._end_hooks()
        keep_alive = self.keep_alive and self.req_body_done
        self._reset_exchange()
        if not keep_alive:
            self.state = CLOSED
            self.transport.loseConnection()
            return
        self.state = IDLE
        self.gate.resume("pipeline")  # type: ignore[union-attr]
        self._arm_timer(self.factory.entrypoint.idle_timeout)
        if self.buf or self.client_eof:
            self._process()


def routing_target(req: RequestHead) -> str:
    """The target the router sees: the forwarded path, in absolute form when the host came
    from the request line. Go compares paths as UTF-8 bytes; surrogateescape keeps any
    other byte distinct."""
    target = req.path
    if req.host_in_target and req.method != b"CONNECT":
        target = b"http://" + req.host + target
    return target.decode("utf-8", "surrogateescape")


def _body_length(response: bytes) -> int:
    """The body size of a complete response tsproxy wrote itself."""
    return len(response) - response.index(b"\r\n\r\n") - 4
