"""A router's middleware chain for one request: the Request the steps see, running the steps
(some answer later, through a Deferred), the head sent on to the service, and the answers
the proxy gives itself with the steps' response hooks applied.

The connection (http/server.py) calls in here only for routers that have middlewares.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import attrs
from twisted.internet.defer import Deferred, maybeDeferred

from tsproxy.http.headers import MANAGED_FORWARDED, error_response, http_date
from tsproxy.http.wire import RequestHead, ResponseHead
from tsproxy.logs import get_logger
from tsproxy.middlewares.base import Answer, HeaderList, Request, Response

__all__ = [
    "answer_bytes",
    "client_certs_of",
    "forwarded_head",
    "hooked_head",
    "hooked_response",
    "local_answer",
    "make_request",
    "run_chain",
    "with_content_type",
]

log = get_logger(__name__)

Steps = Sequence[Tuple[str, Any]]
#: What running a chain gives: None (go on to the service), an Answer, or a Deferred of either.
ChainResult = Union[None, Answer, "Deferred[Optional[Answer]]"]
_FAILED = Answer(500, (("Content-Type", "text/plain; charset=utf-8"),), b"Internal Server Error")


def make_request(
    req: RequestHead,
    peer_ip: str,
    tls: bool,
    client_certs: Callable[[], Tuple[bytes, ...]],
    trusted: bool = False,
) -> Request:
    """The Request the steps see for ``req`` (headers as latin-1 text): the cleaned path it
    was routed on, Host the host it was routed on, and, unless the peer is trusted, none of
    the client's own X-Forwarded-* / X-Real-Ip headers (Traefik's entrypoint removes them
    before any middleware runs, so a step never trusts them and a header a step sets, such
    as X-Forwarded-Prefix, reaches the backend)."""
    target = req.path.decode("latin-1")
    path, mark, query = target.partition("?")
    items = []
    for name, value in req.headers:
        lname = name.lower()
        if lname == b"host" or (not trusted and lname in MANAGED_FORWARDED):
            continue
        items.append((name.decode("latin-1"), value.decode("latin-1")))
    headers = HeaderList(items)
    if req.host:
        headers.items.insert(0, ("Host", req.host.decode("latin-1")))
    return Request(
        method=req.method.decode("latin-1"),
        path=path,
        query=query if mark else None,
        headers=headers,
        client_ip=peer_ip,
        tls=tls,
        client_certs=client_certs,
        forwarded_trusted=trusted,
    )


def client_certs_of(transport: Any) -> Callable[[], Tuple[bytes, ...]]:
    """Read the client's certificate chain (DER, leaf first) of a TLS connection on demand."""

    def read() -> Tuple[bytes, ...]:
        handle = getattr(transport, "getHandle", None)
        connection = handle() if handle is not None else None
        leaf = getattr(connection, "get_peer_certificate", lambda: None)()
        if leaf is None:
            return ()
        from OpenSSL import crypto

        # On a server, OpenSSL's peer chain leaves out the leaf (SSL_get_peer_cert_chain):
        # the leaf first, then what else the client sent, as Go's PeerCertificates.
        chain = getattr(connection, "get_peer_cert_chain", lambda: None)() or []
        ders = [crypto.dump_certificate(crypto.FILETYPE_ASN1, c) for c in [leaf, *chain]]
        return tuple(der for i, der in enumerate(ders) if i == 0 or der != ders[0])

    return read


def run_chain(steps: Steps, request: Request) -> ChainResult:
    """Run ``steps`` in order until one answers. A step that raises (or whose Deferred
    fails) answers 500: a broken step never lets the request through."""
    for index, (name, step) in enumerate(steps):
        try:
            result = step.handle(request)
        except Exception:
            log.failure("middleware {name} failed", name=name)
            return _FAILED
        if result is None:
            continue
        if isinstance(result, Answer):
            return result
        if isinstance(result, Deferred):
            rest = steps[index + 1 :]
            later = result.addCallback(_after, rest, request)
            return later.addErrback(_step_failed, name)
        log.error("middleware {name} returned {result!r}", name=name, result=result)
        return _FAILED
    return None


def _after(result: Optional[Answer], rest: Steps, request: Request) -> Any:
    if result is not None:
        return result
    return maybeDeferred(run_chain, rest, request)


def _step_failed(failure: Any, name: str) -> Any:
    from twisted.internet.defer import CancelledError

    if failure.check(CancelledError):
        return failure  # the client left: nobody to answer
    log.failure("middleware {name} failed", failure, name=name)
    return _FAILED


def forwarded_head(req: RequestHead, request: Request) -> RequestHead:
    """``req`` with the method, target and headers the steps left (Host included: a step
    may set it, as the headers middleware does)."""
    target = request.target.encode("latin-1")
    host = request.headers.get("Host")
    headers = [
        (n.encode("latin-1"), v.encode("latin-1"))
        for n, v in request.headers
        if n.lower() != "host"
    ]
    return RequestHead(
        method=request.method.encode("latin-1"),
        target=target,
        version=req.version,
        headers=headers,
        framing=req.framing,
        content_length=req.content_length,
        keep_alive=req.keep_alive,
        connection_tokens=req.connection_tokens,
        upgrade=req.upgrade,
        expect_continue=req.expect_continue,
        host=host.encode("latin-1") if host is not None else req.host,
        path=target,
    )


_FRAMING = ("content-length", "transfer-encoding")


def _hooked(request: Request, status: int, headers: List[Tuple[str, str]]) -> Response:
    """The response head after the request's hooks, innermost (last added) first."""
    response = Response(status, HeaderList(headers), request)
    for hook in reversed(request.response_hooks):
        hook(response)
    return response


def _sniffer(response: Response) -> Optional[Callable[[bytes], str]]:
    """The hooks' `Response.sniff` when it applies, as Go's ResponseWriter sniffs: no
    Content-Type, no Content-Encoding, a status that allows a body (the body must not be
    empty either: the caller's part)."""
    sniff = response.sniff
    if sniff is None or response.status in (204, 304) or response.status < 200:
        return None
    headers = response.headers
    if "Content-Type" in headers or "Content-Encoding" in headers:
        return None
    return sniff


def with_content_type(head: ResponseHead, content_type: str) -> ResponseHead:
    """``head`` with a Content-Type line added (what sniffing found)."""
    headers = list(head.headers) + [(b"Content-Type", content_type.encode("latin-1"))]
    return attrs.evolve(head, headers=headers)


def hooked_head(head: ResponseHead, request: Request) -> ResponseHead:
    """A service's response head changed by the hooks; its framing headers stay as the
    service sent them (the body is relayed as it comes)."""
    return hooked_response(head, request)[0]


def hooked_response(
    head: ResponseHead, request: Request
) -> Tuple[ResponseHead, Optional[Callable[[bytes], str]]]:
    """`hooked_head`, and the sniffer to fill its Content-Type from the first body bytes
    (None: nothing to sniff)."""
    text = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in head.headers]
    response = _hooked(request, head.status, text)
    headers = [
        (n.encode("latin-1"), v.encode("latin-1"))
        for n, v in response.headers
        if n.lower() not in _FRAMING
    ]
    headers += [(n, v) for n, v in head.headers if n.lower().decode("latin-1") in _FRAMING]
    reason = head.reason if response.status == head.status else _reason(response.status)
    sniff = _sniffer(response)
    if head.framing == "none" or (head.framing == "length" and head.content_length == 0):
        sniff = None  # no body: nothing to sniff
    hooked = ResponseHead(
        version_minor=head.version_minor,
        status=response.status,
        reason=reason,
        headers=headers,
        framing=head.framing,
        content_length=head.content_length,
        keep_alive=head.keep_alive,
        connection_tokens=head.connection_tokens,
    )
    return hooked, sniff


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def local_answer(status: int) -> Answer:
    """The answer the proxy gives itself for ``status`` (404, 502, 503…), as an Answer."""
    response = error_response(status)
    head, _, body = response.partition(b"\r\n\r\n")
    headers = []
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b": ")
        if name.lower() not in (b"date", b"content-length", b"connection"):
            headers.append((name.decode("latin-1"), value.decode("latin-1")))
    return Answer(status, tuple(headers), body)


def answer_bytes(
    answer: Answer, request: Request, keep_alive: bool, head_only: bool, http10: bool = False
) -> Tuple[int, bytes, int]:
    """The response for ``answer`` after the hooks: (status, bytes to write, body size);
    an HTTP/1.0 client kept alive is told so, as for a service's answers."""
    headers = [(n, v) for n, v in answer.headers if n.lower() not in _FRAMING]
    response = _hooked(request, answer.status, headers)
    body = answer.body
    sniff = _sniffer(response) if body else None
    if sniff is not None:
        response.headers.add("Content-Type", sniff(body[:512]))
    lines = [b"HTTP/1.1 %d %s\r\n" % (response.status, _reason(response.status))]
    has_date = False
    for name, value in response.headers:
        lname = name.lower()
        if lname in _FRAMING or lname == "connection":
            continue
        has_date = has_date or lname == "date"
        lines.append(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")))
    if not has_date:
        lines.append(b"Date: %s\r\n" % http_date())
    no_body = response.status in (204, 304) or 100 <= response.status < 200
    if not no_body:
        lines.append(b"Content-Length: %d\r\n" % len(body))
    if not keep_alive:
        lines.append(b"Connection: close\r\n")
    elif http10:
        lines.append(b"Connection: keep-alive\r\n")
    lines.append(b"\r\n")
    if head_only or no_body:
        return response.status, b"".join(lines), 0
    return response.status, b"".join(lines) + body, len(body)
