"""The contract between the HTTP engine and its middlewares, and nothing else.

A middleware is a step over the request head: it lets the request continue (perhaps changed)
or answers it in the proxy's name. A step that must ask another server (forwardAuth) returns a
Deferred of the same result. No reactor import here: time and I/O come in through `Services`.
"""

from __future__ import annotations

from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Protocol,
    Tuple,
    Union,
)

import attrs

__all__ = [
    "Answer",
    "BodyTooLarge",
    "BuildContext",
    "BuildError",
    "ExchangeEnd",
    "HeaderList",
    "Middleware",
    "MiddlewareKind",
    "Request",
    "Response",
    "ResponseHook",
    "ResponseSink",
    "RetryPolicy",
    "SinkWrapper",
    "StepResult",
    "canonical_name",
]


def canonical_name(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey: the spelling Traefik gives headers it adds."""
    if not name or any(c in name for c in " \t") or not name.isascii():
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


class HeaderList:
    """An ordered header list, names matched case-insensitively, values as latin-1 text.

    Added headers get Go's canonical spelling (as Traefik sends them); received ones keep
    theirs.
    """

    __slots__ = ("items",)

    def __init__(self, items: Iterable[Tuple[str, str]] = ()) -> None:
        self.items: List[Tuple[str, str]] = list(items)

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __repr__(self) -> str:
        return f"HeaderList({self.items!r})"

    def get(self, name: str) -> Optional[str]:
        """The first value of `name`, or None."""
        lname = name.lower()
        for key, value in self.items:
            if key.lower() == lname:
                return value
        return None

    def get_all(self, name: str) -> List[str]:
        """Every value of `name`, in order."""
        lname = name.lower()
        return [value for key, value in self.items if key.lower() == lname]

    def set(self, name: str, value: str) -> None:
        """Replace every `name` line by one, where the first one stood (else at the end)."""
        lname = name.lower()
        out: List[Tuple[str, str]] = []
        placed = False
        for key, old in self.items:
            if key.lower() == lname:
                if not placed:
                    out.append((key, value))
                    placed = True
                continue
            out.append((key, old))
        if not placed:
            out.append((canonical_name(name), value))
        self.items = out

    def add(self, name: str, value: str) -> None:
        """Append one more `name` line."""
        self.items.append((canonical_name(name), value))

    def remove(self, name: str) -> None:
        """Drop every `name` line."""
        lname = name.lower()
        self.items = [(key, value) for key, value in self.items if key.lower() != lname]


@attrs.frozen
class Answer:
    """A response the proxy gives itself instead of asking the service (401, 403, 302…)."""

    status: int
    headers: Tuple[Tuple[str, str], ...] = ()
    body: bytes = b""


@attrs.define(eq=False)
class Response:
    """The head of an answer on its way back to the client, as response hooks change it.

    `request` is the request as the service (or the answering step) saw it.
    """

    status: int
    headers: HeaderList
    request: Request
    #: Set by a hook (the contentType middleware) to have the engine fill a missing
    #: Content-Type from the first body bytes, as Go's ResponseWriter does: the engine calls
    #: it with the first (up to 512) body bytes when, after every hook, the head has no
    #: Content-Type and no Content-Encoding, the status allows a body and the body is not empty.
    sniff: Optional[Callable[[bytes], str]] = None
    #: The service's trailers (an HTTP/2 backend's), set by the engine before the sinks'
    #: `end` when the request's `keep_trailers` is set; None when there were none.
    trailers: Optional[HeaderList] = None


ResponseHook = Callable[[Response], None]


class ResponseSink(Protocol):
    """Where a response goes on its way to the client, as Go's ResponseWriter: one `head`,
    any `data`, then one `end`. A step that must see or replace the body (compress,
    buffering, errors, circuitBreaker) wraps the sink the engine would write to with its own
    (`Request.wrap_response`); the engine writes the service's (or an answer's) response
    into the outermost wrapper. Calls come from the reactor thread, in order."""

    def head(self, response: Response) -> None:
        """The status and headers (framing headers are the sink's own business)."""

    def data(self, chunk: bytes) -> None:
        """Some body bytes (never empty)."""

    def flush(self) -> None:
        """The service flushed: push out what is held (Go's http.Flusher)."""

    def end(self) -> None:
        """The body is complete."""


#: Made by a step for each exchange: given the sink toward the client, the sink to write to.
SinkWrapper = Callable[[ResponseSink], ResponseSink]


@attrs.frozen
class ExchangeEnd:
    """How one exchange ended, for steps that keep score (inFlightReq, circuitBreaker)."""

    #: The status the client was sent (0: none, the exchange failed before a head).
    status: int
    #: Seconds from the head's arrival to the end.
    duration: float
    #: The service could not be reached or failed before answering (the 502/504 the proxy
    #: writes itself): what Traefik's NetworkErrorRatio and retry count.
    network_error: bool = False
    #: Why the exchange stopped early ("client closed", "backend reset"…), or "" when the
    #: response was delivered whole.
    error: str = ""


class RetryPolicy(Protocol):
    """What the retry step leaves on a Request for the engine to dispatch it again.

    Before any byte of a response reached the client, the engine asks `next_delay` after an
    attempt failed (`network_error`: nothing was sent to the service or it answered nothing)
    or answered `status`; a float is the delay before the next attempt (the steps after the
    retry step run again and a server is picked again), None delivers this attempt's outcome.
    `body_limit` is how many request body bytes the engine keeps to replay (-1: none kept,
    so a body that has started to go out makes the request not retryable).
    """

    @property
    def body_limit(self) -> int:
        """Request body bytes the engine keeps to replay."""

    def next_delay(self, attempt: int, network_error: bool, status: int, elapsed: float) -> Any:
        """None, or seconds to wait before attempt `attempt + 1` (attempts count from 1)."""


@attrs.define(eq=False)
class Request:
    """The request head as the middlewares see it; steps change it in place.

    `path` is the path as received (percent-encoded, after the entrypoint's sanitizing) and
    `query` the raw query without "?" (None when the target has no "?"). The Host header
    is in `headers` like any other; `host` reads it. The engine forwards what is here after
    the last step: method, path + query, headers.
    """

    method: str
    path: str
    query: Optional[str]
    headers: HeaderList
    #: The TCP peer's address (the entrypoint's forwardedHeaders decide nothing here).
    client_ip: str
    #: The connection to the proxy is TLS.
    tls: bool = False
    #: The client's certificate chain, DER, leaf first; read only when asked (mTLS).
    client_certs: Callable[[], Tuple[bytes, ...]] = lambda: ()
    #: Hooks that change the response head, called innermost first (Go's wrapped writers).
    response_hooks: List[ResponseHook] = attrs.Factory(list)
    #: Values a step leaves for a later one or for observation (e.g. "auth_user").
    notes: Dict[str, Any] = attrs.Factory(dict)
    #: The entrypoint trusts this client's X-Forwarded-* headers (forwardedHeaders.insecure or
    #: trustedIPs). forwardAuth's trustForwardHeader only keeps them when this is true too,
    #: since Traefik's entrypoint would have replaced untrusted ones before any middleware.
    forwarded_trusted: bool = False
    #: Reads the request body for a step that needs it (forwardAuth forwardBody, buffering):
    #: called with a size limit (-1: none), returns a Deferred of the whole body, failing
    #: with `BodyTooLarge` past the limit; the engine then sends the same bytes on. Called as
    #: ``read_body(limit, memory)``, the Deferred gives the engine's
    #: `tsproxy.middlewares.bodystore.BodyStore` instead, past `memory` bytes in a temporary
    #: file (the engine closes it when the exchange ends). None when the engine cannot
    #: buffer bodies (then a kind needing one refuses to build, see `BuildContext`).
    read_body: Optional[Callable[..., Any]] = None
    #: Paces a sink that sends a large held body (buffering's spooled response): called
    #: with a `resume` callback before each piece, True when the client can take more now;
    #: False when it cannot, and `resume` is called once when it can (never, if the exchange
    #: ends first: the sink's end hook cleans up). None: write at once.
    pace: Optional[Callable[[Callable[[], None]], bool]] = None
    #: Response wrappers, in the order steps added them (`wrap_response`).
    sink_wrappers: List[SinkWrapper] = attrs.Factory(list)
    #: Called once when the exchange ends, however it ends (`on_end`).
    end_hooks: List[Callable[[ExchangeEnd], None]] = attrs.Factory(list)
    #: Set by the retry step: the engine dispatches again while it says so.
    retry: Optional[RetryPolicy] = None
    #: Set by a step that carries the response trailers itself (grpcWeb writes them into
    #: the body): the engine hands them to the sinks on `Response.trailers` instead of
    #: sending them as HTTP/2 trailers, and an HTTP/2 client is sent the body the sinks
    #: write even after a headers-only answer.
    keep_trailers: bool = False
    #: Set by a step that read the body (`read_body`) to have other bytes sent on instead
    #: (grpcWeb's base64 decoding), with their own length.
    new_body: Optional[bytes] = None

    @property
    def host(self) -> str:
        return self.headers.get("Host") or ""

    @property
    def target(self) -> str:
        """The request target sent on: path, then "?" and the query when there is one.

        An empty path (stripPrefix took all of it; Go's URL.RequestURI) is sent as "/".
        """
        path = self.path or "/"
        return path if self.query is None else f"{path}?{self.query}"

    def on_response(self, hook: ResponseHook) -> None:
        """Have `hook` change the head of whatever answer comes back through this step."""
        self.response_hooks.append(hook)

    def wrap_response(self, wrapper: SinkWrapper) -> None:
        """Have the response (head and body) pass through the sink `wrapper` makes.

        The first step's wrapper is nearest the client: the engine builds
        ``sink = wrapper(sink)`` for each wrapper in order, then writes into the last one.
        Response hooks (`on_response`) run on the head before any wrapper sees it.
        """
        self.sink_wrappers.append(wrapper)

    def on_end(self, hook: Callable[[ExchangeEnd], None]) -> None:
        """Have `hook` called once when the exchange ends (delivered, failed or abandoned)."""
        self.end_hooks.append(hook)


#: What a step returns: None to continue, an Answer to stop, or a Deferred of either.
StepResult = Union[None, Answer, Any]


class Middleware(Protocol):
    """One built HTTP middleware, as the router's chain runs it."""

    #: The middleware's qualified name (``default-auth@kubernetescrd``), for logs and errors.
    name: str

    def handle(self, request: Request) -> StepResult:
        """Continue (None, maybe after changing `request`), answer, or a Deferred of either."""


@attrs.frozen
class MiddlewareKind:
    """How one of Traefik's middleware kinds is read and built.

    `parse` reads the kind's section with `tsproxy.config.schema.Fields` (located errors,
    unknown fields refused) into a frozen spec value; `build` makes the runtime step from the
    spec and the name, with `context` giving what a step may need from outside (secrets,
    services, a clock, an HTTP client): see `tsproxy.middlewares.registry`.
    """

    name: str
    parse: Callable[..., Any]
    build: Callable[..., Middleware]


class BuildError(Exception):
    """A middleware's spec cannot be built (a missing Secret, a bad regexp…); the message
    says what, the caller adds where."""


class BodyTooLarge(Exception):
    """The request body is longer than the limit a step gave `Request.read_body`."""


class BuildContext(Protocol):
    """What building a step may need from outside the middleware's own spec.

    Optional members, read with getattr so older contexts still work:
    ``traffic_hooks: bool``, the engine honours `Request.wrap_response`, `Request.on_end`
    and `Request.retry` (the traffic kinds refuse to build without it: fail closed);
    ``service_client(ref) -> Optional[Callable[[Request], Deferred]]``, a client for another
    service of the configuration (the errors middleware's page service; the Deferred gives
    ``(status, HeaderList, body)``), None when `ref` names no service;
    ``secret_type(name) -> Optional[str]``, the Secret's ``type`` (basicAuth reads a
    ``kubernetes.io/basic-auth`` Secret differently; without it the type is inferred from
    the keys); ``request_bodies: bool``, the engine fills `Request.read_body` (forwardAuth
    with forwardBody refuses to build without it).
    """

    #: The namespace the middleware lives in (its Secrets are looked up there).
    namespace: str
    #: The reactor (a Clock in tests) for steps that keep time or talk to servers.
    reactor: Any

    def secret(self, name: str) -> Optional[Dict[str, bytes]]:
        """The data of Secret `name` in `namespace`, or None when there is none."""
