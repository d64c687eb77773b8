"""The HTTP/1.1 connection's backend side: sending the request to the server picked over
a pooled connection (with Expect: 100-continue), and relaying the backend's answer back
(the BackendListener). A mixin of HTTPServerConnection (tsproxy/http/server.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from tsproxy.balance.load import Lease
from tsproxy.http.backend import BackendConnection, BackendListener, PendingConnect, cancel_call
from tsproxy.http.headers import (
    client_response_head,
    forwarded_request_head,
    informational_head,
    set_cookie_headers,
    switching_protocols_head,
)
from tsproxy.http.pipeline import hooked_response, with_content_type
from tsproxy.http.relay import Relaying, send
from tsproxy.http.server_answers import ACTIVE, CLOSED, TUNNEL
from tsproxy.http.server_steps import CONTINUE, ServerSteps
from tsproxy.http.traffic import sink_response
from tsproxy.http.wire import (
    LAST_CHUNK,
    ChunkedDecoder,
    LengthDecoder,
    RequestHead,
    ResponseHead,
    encode_chunk,
)
from tsproxy.middlewares.base import HeaderList

#: With Expect: 100-continue, the proxy tells the client to send its body itself when the
#: backend has said nothing after this long (as Go's transport stops waiting after Traefik's
#: ExpectContinueTimeout of 1 s, and Go's server then sends 100 Continue on the first read).
CONTINUE_DELAY = 1.0


class ServerBackend(ServerSteps, Relaying, BackendListener):
    """The backend side of an HTTPServerConnection's exchanges."""

    # Set by HTTPServerConnection (tsproxy/http/server.py).
    backend: Optional[BackendConnection]
    pending: Optional[PendingConnect]
    out_head: bytes
    capture: Any
    continue_call: Any
    held_head: Any
    head_out: bytes
    resp_framing: str
    #: The Response the sinks were given for the current answer (its trailers go there).
    mw_response: Any = None
    #: The picked server's claim (p2c, leasttime): in flight from _send until _end_lease.
    lease: Optional[Lease] = None

    if TYPE_CHECKING:

        def _local_response(self, status: int) -> None: ...

    def _send(self, req: RequestHead) -> None:
        """Send ``req`` to the server picked."""
        factory = self.factory
        pick = self.pick
        assert pick is not None
        if pick.server is None:
            self._local_response(503)
            return
        server = self.server = pick.server
        if self.t0 is not None:
            self.t_origin = factory.clock.seconds()
        if self.lease is not None:
            self._end_lease()  # a retry's earlier attempt, if it was not ended yet
        if pick.lease is not None:
            self.lease = pick.lease(factory.clock.seconds())
        self.out_head = forwarded_request_head(
            req,
            peer_ip=self.peer_ip,
            # The steps saw the client's X-Forwarded-* only from a trusted peer (make_request
            # removed them otherwise): what is left is the steps' own, kept.
            trusted=self.trusted or self.mw_request is not None,
            tls=factory.tls,
            proxy_hostname=factory.hostname,
            host_override=None
            if pick.pass_host_header and (req.host or req.version != b"HTTP/1.0")
            else ("%s:%d" % (server.host, server.port)).encode("idna"),
            add_forwarded_for=self.mw_request is None
            or not self.mw_request.notes.get("no_x_forwarded_for"),
            target=server.forward_target(req.path) if server.preserve_path else None,
        )
        body = self.body_read
        if pick.mirrors and factory.mirrors is not None:
            self.capture = factory.mirrors.capture(pick.mirrors, req, self.out_head)
            if body is not None:
                for chunk in body.chunks():
                    self.capture.feed(chunk)
            if self.req_body_done:
                self.capture.body_done()
        if body is not None and body.size and not body.spilled:
            self.out_head += body.read_all()  # in memory: it goes with the head
        conn = factory.pool.take_idle(server) if req.upgrade is None else None
        if conn is not None:
            self._attach(conn)
        else:
            self._connect()

    def _connect(self) -> None:
        self.gate.pause("connect")  # type: ignore[union-attr]
        self.pending = self.factory.pool.connect(
            self.server,  # type: ignore[arg-type]
            self._attach,
            self._connect_failed,
            upgrade=self.req.upgrade is not None,  # type: ignore[union-attr]
        )

    def _attach(self, conn: BackendConnection) -> None:
        self.pending = None
        if self.state != ACTIVE:
            self.factory.pool.discard(conn)
            return
        req = self.req
        assert req is not None
        self.backend = conn
        conn.begin(self, req.method)
        conn.set_peer(self)
        self.set_peer(conn)
        send(conn.transport, self.out_head)
        self.gate.resume("connect")  # type: ignore[union-attr]
        if req.expect_continue and not self.req_body_done and not self.continued:
            self.continue_call = self.factory.clock.callLater(CONTINUE_DELAY, self._continue)
        if self.req_body_done:
            if self.body_read is not None and self.body_read.spilled:
                self._pump_body(conn)  # in pieces from the file, as the backend takes them
            else:
                self._request_sent()
            return
        if req.framing == "chunked":
            self.req_decoder = ChunkedDecoder(self._request_data)
        else:
            self.req_decoder = LengthDecoder(req.content_length, self._request_data)
        if self.buf:
            data, self.buf = self.buf, b""
            self._feed_request_body(data)

    def _connect_failed(self, status: int, reason: str) -> None:
        self.pending = None
        self.gate.resume("connect")  # type: ignore[union-attr]
        self._log_backend_error(status, reason)
        self.mw_network = True
        if self._retry(True, status):
            return
        self._local_response(status)

    def _continue(self) -> None:
        """The backend said nothing to an Expect: 100-continue: let the client send."""
        self.continue_call = None
        if self.state == ACTIVE and not self.resp_started and not self.continued:
            self.continued = True
            self.transport.write(CONTINUE)

    def _cancel_continue(self) -> None:
        call, self.continue_call = self.continue_call, None
        cancel_call(call)

    def _request_data(self, data: bytes) -> None:
        backend = self.backend
        if backend is not None:
            if self.req.framing == "chunked":  # type: ignore[union-attr]
                send(backend.transport, b"".join(encode_chunk(data)))
            else:
                send(backend.transport, data)
        if self.capture is not None:
            self.capture.feed(data)
        self.req_bytes += len(data)

    def _request_sent(self) -> None:
        """The whole request is on its way to the backend."""
        if self.resp_started:
            if self.state == ACTIVE and self.backend is None and not self.mw_open:
                self._complete()
            return
        if self.backend is not None and self.server is not None:
            self.backend.arm_timeout(self.server.transport.response_header_timeout)

    def _end_lease(self) -> None:
        """The exchange with the picked server is over, by whatever path: one in flight
        fewer (every path calls this; the first call counts)."""
        lease, self.lease = self.lease, None
        if lease is not None:
            lease.end()

    def _drop_backend(self) -> None:
        self._stop_pump()
        backend, self.backend = self.backend, None
        self.set_peer(None)
        if backend is not None:
            self.factory.pool.discard(backend)

    # -- BackendListener -----------------------------------------------------------------

    def response_head(self, head: ResponseHead, rest: bytes) -> None:
        req = self.req
        assert req is not None
        if self.lease is not None:
            self.lease.first_byte(self.factory.clock.seconds())  # leasttime's TTFB
        status = head.status
        self.origin_head = head
        if status < 200 and status != 101:
            if status == 100:
                if self.continued:
                    return  # the client was told to go on already: once is enough
                self.continued = True
                self._cancel_continue()
            if req.version == b"HTTP/1.1":
                self.transport.write(informational_head(head))
            return
        self._outcome(status < 500)
        if self.continue_call is not None:
            self._cancel_continue()
        if status == 101:
            if req.upgrade is None:
                self.backend_failed(502, "101 without an upgrade request", True)
                return
            self.transport.write(switching_protocols_head(head))
            self.resp_started = True
            self.state = TUNNEL
            backend = self.backend
            assert backend is not None
            if self.buf:
                data, self.buf = self.buf, b""
                backend.transport.write(data)
            backend.start_tunnel(rest)
            return
        if self.mw_request is not None and self._retry(False, status):
            self._drop_backend()  # the answer is dropped unread: the next attempt replaces it
            return
        if self.mw_request is not None and self.mw_request.sink_wrappers:
            if not self.req_body_done:
                self.keep_alive = False
            response = self.mw_response = sink_response(status, head.headers, self.mw_request)
            for hook in reversed(self.mw_request.response_hooks):
                hook(response)
            if self.mw_request.keep_trailers and getattr(self.transport, "headers_only", False):
                self.transport.headers_only = False  # the sinks write a body (grpcWeb)
            self._open_sinks().head(response)
            if rest:
                self.response_data(rest)
            return
        sniff = None
        if self.mw_request is not None and self.mw_request.response_hooks:
            head, sniff = hooked_response(head, self.mw_request)
            self.origin_head = head
        http10 = req.version == b"HTTP/1.0"
        framing = head.framing
        if framing in ("none", "length"):
            out = framing
        elif http10:
            out = "close"
            self.keep_alive = False
        else:
            out = "chunked"
        if not self.req_body_done:
            self.keep_alive = False
        self.resp_framing = out
        if sniff is not None and req.method != b"HEAD":
            # Written with the first body bytes (or as is at the end of an empty body).
            self.held_head = (head, sniff)
            return
        # An HTTP/1.1 backend calls response_flush once it has passed on what it read: until
        # then the head waits for the body bytes read with it, to go out in the same send.
        self._write_head(head, hold=isinstance(self.backend, BackendConnection))

    def _write_head(self, head: ResponseHead, hold: bool = False) -> None:
        pick = self.pick
        extra = (
            set_cookie_headers(pick.set_cookies) if pick is not None and pick.set_cookies else ()
        )
        out = client_response_head(
            head,
            framing_out=self.resp_framing,
            keep_alive=self.keep_alive,
            client_http10=self.req.version == b"HTTP/1.0",  # type: ignore[union-attr]
            extra=extra,
        )
        if hold:
            self.head_out = out
        else:
            send(self.transport, out)
        self.resp_started = True

    def response_flush(self) -> None:
        out = self.head_out
        if out:
            self.head_out = b""
            send(self.transport, out)

    def _release_head(self, data: bytes) -> None:
        """Write the held head, its Content-Type sniffed from ``data`` when there is any."""
        head, sniff = self.held_head
        self.held_head = None
        if data:
            head = self.origin_head = with_content_type(head, sniff(data[:512]))
        self._write_head(head, hold=True)  # written with ``data`` (or LAST_CHUNK)

    def response_data(self, data: bytes) -> None:
        if self.mw_sink is not None:
            self.mw_sink.data(data)
            return
        if self.held_head is not None:
            if not data:
                return
            self._release_head(data)
        out = self.head_out
        if out:
            self.head_out = b""
        if self.resp_framing == "chunked":
            send(self.transport, b"".join([out, *encode_chunk(data)]))
        else:
            send(self.transport, out + data if out else data)
        self.resp_bytes += len(data)

    def response_trailers(self, trailers: Any) -> bool:
        """An HTTP/2 backend's trailers, before `response_end`: True when a step takes them
        into the response (`Request.keep_trailers`), else the backend sends them on."""
        request, response = self.mw_request, self.mw_response
        if self.mw_sink is None or request is None or not request.keep_trailers:
            return False
        if response is None or response.request is not request:
            return False
        response.trailers = HeaderList(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in trailers
        )
        return True

    def response_end(self, reusable: bool) -> None:
        if self.held_head is not None:
            self._release_head(b"")
        sink = self.mw_sink
        if sink is None and self.resp_framing == "chunked":
            send(self.transport, self.head_out + LAST_CHUNK)
            self.head_out = b""
        else:
            self.response_flush()
        if self._stop_pump():
            reusable = False  # answered before the stored body was all sent
        backend, self.backend = self.backend, None
        self.set_peer(None)
        if backend is not None:
            if reusable and self.req_body_done:
                self.factory.pool.release(backend, self.server)  # type: ignore[arg-type]
            else:
                self.factory.pool.discard(backend)
        if sink is not None:
            sink.end()  # the client sink's end completes the exchange (sink_ended)
            return
        if self.req_body_done:
            self._complete()
        # else: the backend answered before the body ended; _request_sent completes it.

    def backend_failed(self, status: int, reason: str, got_bytes: bool) -> None:
        self._stop_pump()
        backend, self.backend = self.backend, None
        self.set_peer(None)
        if backend is not None:
            self.factory.pool.discard(backend)
        if self.resp_started:
            # Part of the response is out: only an abort tells the client it is cut short.
            self._log_backend_error(status, reason)
            self._end_hooks("backend failed")
            self.state = CLOSED
            self.transport.abortConnection()
            return
        req = self.req
        if (
            backend is not None
            and backend.reused
            and not got_bytes
            and req is not None
            and req.framing == "none"
            and not self.retried
        ):
            # A pooled connection the server had already closed: try once on a new one.
            self.retried = True
            self._connect()
            return
        self._log_backend_error(status, reason)
        self.mw_network = not got_bytes
        if self._retry(not got_bytes, status):
            return
        self._local_response(status)

    def tunnel_data(self, data: bytes) -> None:
        send(self.transport, data)

    def tunnel_closed(self) -> None:
        self.backend = None
        self.set_peer(None)
        self.transport.loseConnection()
