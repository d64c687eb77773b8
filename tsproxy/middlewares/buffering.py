"""Traefik's buffering middleware (oxy's buffer): the whole request body is read before the
service is asked (413 past maxRequestBodyBytes) and the whole response before the client is
answered (500 past maxResponseBodyBytes); past memRequestBodyBytes / memResponseBodyBytes
each goes on in an unlinked temporary file (tsproxy/middlewares/bodystore.py); a
retryExpression replays the buffered request on another attempt."""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

import attrs

from tsproxy.config.schema import Fields
from tsproxy.middlewares.base import (
    Answer,
    BodyTooLarge,
    BuildContext,
    BuildError,
    HeaderList,
    MiddlewareKind,
    Request,
    Response,
    ResponseSink,
    StepResult,
)
from tsproxy.middlewares.bodystore import CHUNK, BodyStore
from tsproxy.middlewares.breaker import ExpressionError, parse_expression

__all__ = ["KINDS", "Buffering", "BufferingSink", "BufferingSpec", "parse_retry_expression"]

_TEXT = (("Content-Type", "text/plain; charset=utf-8"),)

_RETRY_FUNCTIONS: Dict[str, Tuple[Tuple[str, ...], str]] = {
    "IsNetworkError": ((), "bool"),
    "Attempts": ((), "int"),
    "ResponseCode": ((), "int"),
    "RequestMethod": ((), "string"),
}


@attrs.frozen
class Attempt:
    """What a retry expression sees of the attempt that just ended."""

    attempts: int
    network_error: bool
    status: int
    method: str


def _retry_value(name: str, args: List[Any]) -> Callable[[Attempt], Any]:
    if name == "IsNetworkError":
        return lambda a: a.network_error or a.status in (502, 504)
    if name == "Attempts":
        return lambda a: a.attempts
    if name == "ResponseCode":
        return lambda a: a.status
    return lambda a: a.method


def parse_retry_expression(text: str) -> Callable[[Attempt], bool]:
    """oxy's retry predicate: IsNetworkError(), Attempts(), ResponseCode(), RequestMethod()
    with && || == != < > <= >= (ExpressionError when it is not one)."""
    return parse_expression(text, _RETRY_FUNCTIONS, _retry_value)


@attrs.frozen
class BufferingSpec:
    max_request: int = 0
    mem_request: int = 1048576
    max_response: int = 0
    mem_response: int = 1048576
    retry_expression: str = ""


def parse(fields: Fields) -> BufferingSpec:
    expression = fields.string("retryExpression")
    if expression:
        try:
            parse_retry_expression(expression)
        except ExpressionError as error:
            raise fields.fail("retryExpression", f"{error}: {expression!r}") from None
    spec = BufferingSpec(
        fields.integer("maxRequestBodyBytes", 0, minimum=0),
        fields.integer("memRequestBodyBytes", 0, minimum=0) or 1048576,
        fields.integer("maxResponseBodyBytes", 0, minimum=0),
        fields.integer("memResponseBodyBytes", 0, minimum=0) or 1048576,
        expression,
    )
    fields.done()
    return spec


@attrs.define(eq=False)
class BufferingSink:
    """Holds the whole response (in memory up to `memory` bytes, then in an unlinked
    temporary file); past `limit` (0: none) answers 500 instead."""

    downstream: ResponseSink
    limit: int
    memory: int
    response: Optional[Response] = None
    spool: Optional[BodyStore] = None
    reader: Any = None
    size: int = 0
    too_large: bool = False
    failed: bool = False

    def head(self, response: Response) -> None:
        self.response = response
        self.spool = BodyStore(self.memory)
        response.request.on_end(self._ended)

    def _ended(self, end: Any) -> None:
        """However the exchange ends, the held response goes (its file closed)."""
        if self.spool is not None:
            self.spool.close()

    def data(self, chunk: bytes) -> None:
        if self.too_large or self.failed:
            return
        assert self.spool is not None
        self.size += len(chunk)
        if self.limit and self.size > self.limit:
            self.too_large = True
            self.spool.close()
            return
        try:
            self.spool.write(chunk)
        except OSError:  # the temporary file could not take it (disk full)
            self.failed = True
            self.spool.close()

    def flush(self) -> None:
        """Nothing goes out before the whole response is in."""

    def end(self) -> None:
        assert self.response is not None and self.spool is not None
        if self.too_large or self.failed:
            body = b"Internal Server Error"
            headers = HeaderList(_TEXT + (("Content-Length", str(len(body))),))
            self.downstream.head(Response(500, headers, self.response.request))
            self.downstream.data(body)
            self.downstream.end()
            return
        self.response.headers.remove("Transfer-Encoding")
        if self.size or self.response.status not in (204, 304):
            self.response.headers.set("Content-Length", str(self.size))
        self.downstream.head(self.response)
        self.reader = self.spool.reader()
        self._send()

    def _send(self) -> None:
        """The held body in pieces, as fast as the client takes them (Request.pace)."""
        spool = self.spool
        assert spool is not None and self.response is not None
        pace = self.response.request.pace
        while not spool.closed:
            if pace is not None and not pace(self._send):
                return  # called again when the client has room
            chunk = self.reader.read(CHUNK)
            if not chunk:
                spool.close()
                self.downstream.end()
                return
            self.downstream.data(chunk)


@attrs.define(eq=False)
class BufferRetry:
    """The retry policy of a retryExpression (`base.RetryPolicy`): no wait between tries."""

    condition: Callable[[Attempt], bool]
    method: str
    body_limit: int = sys.maxsize

    def next_delay(self, attempt: int, network_error: bool, status: int, elapsed: float) -> Any:
        if self.condition(Attempt(attempt, network_error, status, self.method)):
            return 0.0
        return None


@attrs.define(eq=False)
class Buffering:
    """One built buffering step."""

    name: str
    spec: BufferingSpec
    retry: Optional[Callable[[Attempt], bool]] = None

    def handle(self, request: Request) -> StepResult:
        spec = self.spec

        def wrap(downstream: ResponseSink) -> ResponseSink:
            return BufferingSink(downstream, spec.max_response, spec.mem_response)

        request.wrap_response(wrap)
        if self.retry is not None:
            request.retry = BufferRetry(self.retry, request.method)
        if request.read_body is None:
            return Answer(500, _TEXT, b"Internal Server Error")
        # Past memRequestBodyBytes the engine keeps the body in a temporary file, and
        # sends (and replays) it from there.
        reading = request.read_body(spec.max_request or -1, spec.mem_request)
        return reading.addCallbacks(lambda body: None, self._refused)

    def _refused(self, failure: Any) -> Any:
        if failure.check(BodyTooLarge):
            return Answer(413, _TEXT, b"Request Entity Too Large")
        if failure.check(OSError):  # the body could not be stored (disk full)
            return Answer(500, _TEXT, b"Internal Server Error")
        return failure


def build(spec: BufferingSpec, name: str, context: BuildContext) -> Buffering:
    if not getattr(context, "traffic_hooks", False) or not getattr(
        context, "request_bodies", False
    ):
        raise BuildError(
            "buffering needs the engine's body reading and response sinks, not wired yet"
        )
    condition = parse_retry_expression(spec.retry_expression) if spec.retry_expression else None
    return Buffering(name, spec, condition)


KINDS = (MiddlewareKind("buffering", parse, build),)
