"""The HTTP/1.1 connection's answers from tsproxy itself and its reports: internal
endpoints (api, dashboard, ping, metrics, noop@internal), the observed exchange's record,
the passive health check's outcome. A mixin of HTTPServerConnection (tsproxy/http/server.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Tuple

from tsproxy.http.wire import LengthDecoder, RequestHead, ResponseHead
from tsproxy.logs import get_logger
from tsproxy.observe.record import Exchange
from tsproxy.runtime.internal import NOOP_STATUS, InternalService
from tsproxy.tls.options import connection_labels

if TYPE_CHECKING:
    from tsproxy.api.internal import InternalEndpoints
    from tsproxy.http.entrypoint import HTTPEntryPointFactory
    from tsproxy.runtime.services import Pick, Server

log = get_logger(__name__)

#: A request body an internal endpoint does not read is dropped up to this size (Go's
#: maxPostHandlerReadBytes); past it the connection closes after the answer.
DISCARD_LIMIT = 256 * 1024

IDLE, ACTIVE, TUNNEL, CLOSED = "idle", "active", "tunnel", "closed"


def _discard(data: bytes) -> None:
    """Drop a request body nothing reads."""


class ServerAnswers:
    """Internal answers and exchange reports of an HTTPServerConnection."""

    # Set by HTTPServerConnection (tsproxy/http/server.py).
    factory: HTTPEntryPointFactory
    transport: Any
    state: str
    tls_labels: Optional[Tuple[str, str]]
    buf: bytes
    peer_ip: str
    peer_port: int
    trusted: bool
    req: Optional[RequestHead]
    req_decoder: Any
    req_body_done: bool
    resp_started: bool
    keep_alive: bool
    pick: Optional[Pick]
    server: Optional[Server]
    failure_told: bool
    t0: Optional[float]
    t_origin: Optional[float]
    router: Any
    origin_head: Optional[ResponseHead]
    req_bytes: int
    resp_bytes: int

    if TYPE_CHECKING:

        def _local_response(self, status: int) -> None: ...

        def _complete(self) -> None: ...

        def _feed_request_body(self, data: bytes) -> None: ...

    def _answer_routed_internal(self, service: InternalService, req: RequestHead) -> None:
        """A router's service is an internal one: noop@internal answers 418 and nothing else
        (as Traefik's noop handler); the others answer their paths, 404 elsewhere."""
        from tsproxy.api.internal import APIAnswer, encode_response

        routed = self.factory.routed_internal
        endpoints = routed.get(service.serves) if routed is not None else None
        if endpoints is not None and self._answer_internal(endpoints, req):
            return
        if service.serves:
            self._local_response(404)
            return
        if not self.req_body_done:
            self.keep_alive = False
        answer = APIAnswer(NOOP_STATUS, b"", "")
        head = req.method == b"HEAD"
        self.transport.write(
            encode_response(answer, self.keep_alive, req.version == b"HTTP/1.0", head)
        )
        self.resp_started = True
        if self.t0 is not None:
            self._report(NOOP_STATUS)
        self._complete()

    def _answer_internal(self, internal: InternalEndpoints, req: RequestHead) -> bool:
        """Answer an internal path (api, dashboard, ping, metrics) here; False if not one.

        As Go's server does, a small request body is read and dropped so the connection
        stays usable; a larger one, or one the client waits for a 100 Continue to send,
        closes it after the answer.
        """
        drain = (
            req.framing == "length"
            and req.content_length <= DISCARD_LIMIT
            and not req.expect_continue
        )
        keep_alive = self.keep_alive and (self.req_body_done or drain)
        answer = internal.respond(req, keep_alive)
        if answer is None:
            return False
        self.keep_alive = keep_alive
        if isinstance(answer, bytes):
            self._internal_answered(answer, req)
        else:
            # Gathered from the other workers (tsproxy.workers): it comes on a later turn.
            answer.addCallback(self._internal_answered, req)
            answer.addErrback(lambda f: log.failure("internal answer", f))
        if self.state != ACTIVE or self.req is not req or self.req_body_done or not keep_alive:
            return True
        # _feed_request_body completes the exchange once the body is over.
        self.req_decoder = LengthDecoder(req.content_length, _discard)
        if self.buf:
            data, self.buf = self.buf, b""
            self._feed_request_body(data)
        return True

    def _internal_answered(self, answer: bytes, req: RequestHead) -> None:
        if self.state != ACTIVE or self.req is not req:
            return  # the client left meanwhile
        self.transport.write(answer)
        self.resp_started = True
        if self.req_body_done or not self.keep_alive:
            self._complete()

    def _sent_status(self) -> int:
        head = self.origin_head
        return head.status if head is not None else 0

    def _tls_labels(self) -> Tuple[str, str]:
        """Traefik's tls_version and tls_cipher of this TLS connection (read once)."""
        labels = self.tls_labels
        if labels is None or not labels[0]:
            handle = getattr(self.transport, "getHandle", None)
            connection = handle() if handle is not None else None
            labels = connection_labels(connection) if connection is not None else ("", "")
            self.tls_labels = labels
        return labels

    def _report(self, status: int) -> None:
        """Hand the exchange's record to the entrypoint's observer (once per exchange)."""
        t0 = self.t0
        self.t0 = None
        req = self.req
        if t0 is None or req is None:
            return
        factory = self.factory
        now = factory.clock.seconds()
        pick = self.pick
        server = self.server
        head = self.origin_head
        router = self.router
        t_origin = self.t_origin
        tls_version, tls_cipher = self._tls_labels() if factory.tls else ("", "")
        rec = Exchange(
            entrypoint=factory.name,
            router=router.name if router is not None else "",
            services=pick.services if pick is not None else (),
            server_url=server.url if server is not None else "",
            method=req.method,
            target=req.target,
            version=req.version,
            headers=req.headers,
            upgrade=req.upgrade,
            status=status,
            origin_status=head.status if head is not None else 0,
            request_bytes=self.req_bytes,
            response_bytes=self.resp_bytes,
            start=t0,
            duration=now - t0,
            origin_duration=now - t_origin if t_origin is not None else -1.0,
            client_ip=self.peer_ip,
            client_port=self.peer_port,
            trusted=self.trusted,
            tls=factory.tls,
            response_headers=head.headers if head is not None else (),
            tls_version=tls_version,
            tls_cipher=tls_cipher,
        )
        try:
            factory.observer.exchange(rec)  # type: ignore[union-attr]
        except Exception:
            log.failure("observing an exchange failed")

    def _outcome(self, ok: bool) -> None:
        """Tell the passive health check, if the service has one, how the server did; a
        failure at most once per exchange (a 500 whose body is then cut short is one failed
        request; a 200 whose body is cut short is one too)."""
        pick, server = self.pick, self.server
        if pick is not None and pick.report is not None and server is not None:
            if not self.failure_told:
                self.failure_told = not ok
                pick.report(server, ok)

    def _log_backend_error(self, status: int, reason: str) -> None:
        self._outcome(False)
        server = self.server
        log.warn(
            "{status} from {url}: {reason}",
            status=status,
            url=server.url if server is not None else "?",
            reason=reason,
        )
