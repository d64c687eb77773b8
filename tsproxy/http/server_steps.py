"""The HTTP/1.1 connection's side of the routers' middlewares: running a chain of steps,
reading the request body for one, sending a step's answer through the response sinks, and
the retry step's new attempts. A mixin of HTTPServerConnection (tsproxy/http/server.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

import attrs
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.python.failure import Failure

from tsproxy.http.bodypump import BodyPump
from tsproxy.http.headers import set_cookie_headers
from tsproxy.http.pipeline import (
    answer_bytes,
    client_certs_of,
    forwarded_head,
    make_request,
    run_chain,
)
from tsproxy.http.relay import ReadGate
from tsproxy.http.server_answers import ACTIVE, IDLE, ServerAnswers
from tsproxy.http.traffic import ClientSink
from tsproxy.http.wire import ChunkedDecoder, LengthDecoder, RequestHead
from tsproxy.logs import get_logger
from tsproxy.middlewares.base import BodyTooLarge, HeaderList, Response
from tsproxy.middlewares.bodystore import BodyStore
from tsproxy.middlewares.exchange import ExchangeHooks
from tsproxy.rules import HTTPRequestInfo
from tsproxy.runtime.services import resolve

log = get_logger(__name__)

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ServerSteps(ServerAnswers):
    """The middleware steps of an HTTPServerConnection's exchanges."""

    # Set by HTTPServerConnection (tsproxy/http/server.py) and Relaying.
    gate: Optional[ReadGate]
    backend: Any
    continued: bool
    retried: bool
    mw_request: Any
    mw_pending: Optional[Deferred[Any]]
    mw_hooks: Optional[ExchangeHooks]
    mw_sink: Any
    mw_open: bool
    mw_again: Any
    mw_call: Any
    mw_status: int
    mw_network: bool
    body_wait: Optional[Deferred[Any]]
    body_store: Optional[BodyStore]
    body_memory: Optional[int]
    body_limit: int
    body_read: Optional[BodyStore]
    body_pump: Optional[BodyPump]
    write_blocked: bool
    drain_hook: Optional[Callable[[], None]]

    if TYPE_CHECKING:

        def _forward(self, req: RequestHead, info: HTTPRequestInfo) -> None: ...

        def _send(self, req: RequestHead) -> None: ...

        def _request_sent(self) -> None: ...

        def _end_lease(self) -> None: ...

    def _run_middlewares(
        self, chain: Any, req: RequestHead, info: HTTPRequestInfo, picked: bool = False
    ) -> None:
        """Run the router's steps, or (``picked``) those of the weighted children picked
        (tsproxy/http/pipeline.py). While a step answers later, what the client sends is
        buffered up to PIPELINE_LIMIT (then reading pauses), so a client that leaves is
        noticed and cancels the step."""
        request = self.mw_request
        if request is None:
            certs = client_certs_of(self.transport) if self.factory.tls else tuple
            request = self.mw_request = make_request(
                req, self.peer_ip, self.factory.tls, certs, self.trusted
            )
            self.mw_hooks = ExchangeHooks(request, self.factory.clock.seconds())
            request.read_body = self._read_body
            request.pace = self._pace
        result = run_chain(chain, request)
        if isinstance(result, Deferred):
            self.mw_pending = result
            result.addCallback(self._middlewares_done, req, info, picked)
            result.addErrback(_client_left)
            return
        self._middlewares_done(result, req, info, picked)

    def _middlewares_done(
        self, result: Any, req: RequestHead, info: HTTPRequestInfo, picked: bool
    ) -> None:
        self.mw_pending = None
        if self.state != ACTIVE:
            return
        if result is not None:
            self._answer(result)
            return
        if self.mw_request.new_body is not None:
            # A step's decoded body (grpcWeb) is sent on instead of the one it read.
            if self.body_read is not None:
                self.body_read.close()
            self.body_read = BodyStore()
            self.body_read.write(self.mw_request.new_body)
        out = forwarded_head(req, self.mw_request)
        if self.body_read is not None:
            # A step read the body: it is sent on from the buffer, with its length.
            out = attrs.evolve(out, framing="length", content_length=self.body_read.size)
        if self.mw_hooks is not None and self.mw_request.retry is not None and not picked:
            self.mw_hooks.attempts = 1
            self.mw_again = (out, info)  # what a retry dispatches again
        if picked:
            self._send(out)
        else:
            self._forward(out, info)
        if self.state == ACTIVE and self.gate is not None:
            # What was buffered meanwhile is the body's start (handed on now) or pipelined
            # requests: read again (PIPELINE_LIMIT pauses it anew if need be).
            self.gate.resume("pipeline")

    def _read_body(self, limit: int, memory: Optional[int] = None) -> Any:
        """Read the whole request body for a step (Request.read_body): a Deferred of it,
        failing with BodyTooLarge past ``limit`` bytes (-1: none). With ``memory`` (-1: no
        limit) it is the BodyStore itself, past ``memory`` bytes in a temporary file (the
        connection's to close when the exchange ends). It is then sent on from the store
        (a spilled one in pieces, as the backend takes them); a body left unread past the
        limit closes the connection after the answer."""
        req = self.req
        if self.req_body_done or req is None:
            store = self.body_read
            if store is not None and 0 <= limit < store.size:
                return fail(BodyTooLarge(f"request body over {limit} bytes"))
            if memory is not None:
                return succeed(store if store is not None else BodyStore())
            return succeed(store.read_all() if store is not None else b"")
        if self.body_wait is not None:
            return fail(RuntimeError("the request body is being read already"))
        if req.framing == "length" and 0 <= limit < req.content_length:
            return fail(BodyTooLarge(f"request body over {limit} bytes"))
        self.body_limit = limit
        self.body_memory = memory
        self.body_store = BodyStore(-1 if memory is None else memory)
        wait = self.body_wait = Deferred()
        if req.expect_continue and not self.continued:
            self.continued = True
            self.transport.write(CONTINUE)
        if req.framing == "chunked":
            self.req_decoder = ChunkedDecoder(self._body_data)
        else:
            self.req_decoder = LengthDecoder(req.content_length, self._body_data)
        if self.buf:
            data, self.buf = self.buf, b""
            self._feed_request_body(data)
        if self.gate is not None:
            self.gate.resume("pipeline")
        return wait

    def _body_data(self, data: bytes) -> None:
        store = self.body_store
        if self.body_wait is None or store is None:
            return  # over the limit (or unstorable) already: dropped
        self.req_bytes += len(data)
        error: Optional[Exception] = None
        if 0 <= self.body_limit < self.req_bytes:
            error = BodyTooLarge(f"request body over {self.body_limit} bytes")
        else:
            try:
                store.write(data)
            except OSError as e:  # the temporary file could not take it (disk full)
                log.error("storing a request body failed: {error}", error=e)
                error = e
        if error is not None:
            wait, self.body_wait = self.body_wait, None
            self.body_store = None
            store.close()
            wait.errback(error)

    def _body_complete(self) -> None:
        """The whole body a step asked for is in: hand it over (HTTPServerConnection)."""
        wait, self.body_wait = self.body_wait, None
        store, self.body_store = self.body_store, None
        if wait is None or store is None:
            return
        self.body_read = store
        wait.callback(store if self.body_memory is not None else store.read_all())

    def _pump_body(self, conn: Any) -> None:
        """Send the stored (spilled) body to the backend connection `conn` in pieces, its
        write buffer permitting; the request is sent once the last piece is written."""
        store = self.body_read
        assert store is not None

        def done() -> None:
            if self.body_pump is pump:
                self.body_pump = None
                if self.backend is conn:
                    conn.set_peer(self)
                    self._request_sent()

        # What fills the backend's write buffer now is the file, not the client: a full
        # buffer must not pause reading the client (its leaving would go unnoticed).
        conn.set_peer(None)
        pump = self.body_pump = BodyPump(conn, store.reader(), done)
        pump.start()

    def _pace(self, resume: Any) -> bool:
        """Request.pace: whether the client can take more response bytes now; else
        `resume` is called when it drains (the connection's drain hook, once)."""
        if self.state != ACTIVE:
            return False  # over: the sink's end hook lets go of what it holds
        if not self.write_blocked:
            return True

        def drained() -> None:
            self.drain_hook = None
            if self.state == ACTIVE:
                resume()

        self.drain_hook = drained
        return False

    def _stop_pump(self) -> bool:
        """Stop sending the stored body (the backend is let go): whether it was not all sent."""
        pump, self.body_pump = self.body_pump, None
        if pump is None:
            return False
        pump.stop()
        return not pump.finished

    def _close_body(self) -> None:
        """The exchange is over: the stored body goes (its temporary file closed, so gone)."""
        self._stop_pump()
        self.drain_hook = None  # a paced response waiting for room
        for store in (self.body_store, self.body_read):
            if store is not None:
                store.close()

    def _answer(self, answer: Any) -> None:
        """Send a step's answer (or a local one through the steps' response hooks)."""
        if not self.req_body_done:
            # The unread request body would be taken for the next request: close instead.
            self.keep_alive = False
        req = self.req
        assert req is not None
        self.mw_status = answer.status
        if self.mw_request is not None and self.mw_request.sink_wrappers:
            self._answer_through_sinks(answer)
            return
        status, data, size = answer_bytes(
            answer,
            self.mw_request,
            self.keep_alive,
            req.method == b"HEAD",
            req.version == b"HTTP/1.0",
        )
        self.transport.write(data)
        self.resp_started = True
        if self.t0 is not None:
            self.resp_bytes = size
            self._report(status)
        self._complete()

    def _answer_through_sinks(self, answer: Any) -> None:
        """An answer on its way through the steps' response sinks (head hooks first)."""
        request = self.mw_request
        headers = [(n, v) for n, v in answer.headers if n.lower() != "content-length"]
        response = Response(answer.status, HeaderList(headers), request)
        for hook in reversed(request.response_hooks):
            hook(response)
        if response.status not in (204, 304) and not 100 <= response.status < 200:
            response.headers.set("Content-Length", str(len(answer.body)))
        sink = self._open_sinks()
        sink.head(response)
        if answer.body and self.req.method != b"HEAD":  # type: ignore[union-attr]
            sink.data(answer.body)
        sink.end()

    def _open_sinks(self) -> Any:
        """The steps' sink chain over the client; the exchange is open until it ends."""
        req = self.req
        assert req is not None and self.mw_hooks is not None
        pick = self.pick
        extra = (
            set_cookie_headers(pick.set_cookies) if pick is not None and pick.set_cookies else ()
        )
        client = ClientSink(self, req.method == b"HEAD", req.version == b"HTTP/1.0", extra)
        self.mw_open = True
        self.resp_started = True  # a head is in the sinks: no retry, failures abort
        self.mw_sink = self.mw_hooks.sink(client)
        return self.mw_sink

    def sink_head(self, data: bytes, status: int) -> None:
        """The client sink's head, as it goes out."""
        if self.state not in (ACTIVE, IDLE):
            return
        self.mw_status = status
        self.transport.write(data)

    def sink_ended(self) -> None:
        """The client sink saw the end: the exchange completes once the request is in."""
        self.mw_open = False
        self.mw_sink = None
        if self.state != ACTIVE:
            return
        if self.req_body_done or self.req_decoder is None:
            # A body nobody reads (a step answered before it, as buffering's 413 for an
            # announced length): closed after the answer, as _answer does.
            self._complete()
        # else: _request_sent completes it once the request body is in.

    def _end_hooks(self, error: str = "") -> None:
        """Tell the steps' end hooks how the exchange ended (once); let go of its body."""
        self._close_body()
        hooks = self.mw_hooks
        if hooks is not None and not hooks.finished:
            status = self.mw_status or self._sent_status()
            hooks.finish(status, self.factory.clock.seconds(), self.mw_network, error)

    def _retry(self, network_error: bool, status: int) -> bool:
        """Dispatch the request again when the retry step's policy says so (nothing of the
        response has reached the client; a body only when a step read it whole (buffering,
        forwardBody): _send sends that buffer again)."""
        hooks, again, req = self.mw_hooks, self.mw_again, self.req
        if hooks is None or again is None or req is None or self.resp_started:
            return False
        if (req.framing != "none" and self.body_read is None) or req.upgrade is not None:
            return False
        policy = self.mw_request.retry if self.mw_request is not None else None
        body = self.body_read
        if not network_error and policy is not None and body is not None:
            # Traefik 3.7 buffers up to the retry's maxRequestBodyBytes for status retries;
            # past it they are off (a network error is still retried).
            if 0 <= policy.body_limit < body.size:
                return False
        delay = hooks.retry_delay(network_error, status, self.factory.clock.seconds())
        if delay is None:
            return False
        hooks.attempts += 1
        self.retried = False
        self._end_lease()  # this attempt is over: no longer in flight while the retry waits
        self.mw_call = self.factory.clock.callLater(delay, self._dispatch_again, again)
        return True

    def _dispatch_again(self, again: Any) -> None:
        """The next attempt: a server picked again (a weighted child's own middlewares are
        not run again), the head the steps left sent to it."""
        self.mw_call = None
        if self.state != ACTIVE:
            return
        out, info = again
        self.pick = resolve(self.router.service, info)
        self._send(out)


def _client_left(failure: Failure) -> None:
    """A step's answer was cancelled because its client left; anything else is a bug."""
    if not failure.check(CancelledError):
        log.failure("serving a middleware's result failed", failure)
