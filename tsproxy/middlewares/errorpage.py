"""Traefik's errors middleware (custom error pages): a service answer whose status is in the
configured ranges is replaced by a page fetched from another service of the configuration,
sent with the caught status (or its statusRewrites value)."""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union
from urllib.parse import quote_plus

import attrs

from tsproxy.config.schema import Fields
from tsproxy.logs import get_logger
from tsproxy.middlewares.base import (
    BuildContext,
    BuildError,
    HeaderList,
    MiddlewareKind,
    Request,
    Response,
    ResponseSink,
    StepResult,
)
from tsproxy.middlewares.ipallowlist import go_status_text
from tsproxy.middlewares.statusrange import StatusRanges, parse_status_ranges, status_in

__all__ = ["KINDS", "ErrorPage", "ErrorPageSink", "ErrorsSpec", "ServiceRef", "page_target"]

log = get_logger(__name__)


@attrs.frozen
class ServiceRef:
    """The error page's service: a Kubernetes Service (name, port; namespace "" = the
    middleware's) as the CRD writes it, or a TraefikService name (port None)."""

    name: str
    port: Union[int, str, None] = None
    namespace: str = ""


@attrs.frozen
class ErrorsSpec:
    status: StatusRanges
    service: ServiceRef
    query: str = ""
    rewrites: Tuple[Tuple[Tuple[int, int], int], ...] = ()
    #: None: every request header goes to the error service; () none.
    request_headers: Optional[Tuple[str, ...]] = None


def _ranges(fields: Fields, key: str, texts: Tuple[str, ...]) -> StatusRanges:
    try:
        return parse_status_ranges(texts)
    except ValueError as error:
        raise fields.fail(key, f"creating HTTP code ranges: {error}") from None


def _service(fields: Fields) -> ServiceRef:
    if not fields.has("service"):
        raise fields.fail("service", "is required")
    section = fields.mapping("service")
    if section is None:
        raise fields.fail("service", "is required")
    name = section.string("name", required=True)
    port = section.port("port")
    namespace = section.string("namespace")
    kind = section.string("kind", "Service", choices=("Service", "TraefikService"))
    section.done()
    if kind == "Service" and port is None:
        raise section.fail("port", "is required for a Kubernetes Service")
    return ServiceRef(name, port if kind == "Service" else None, namespace)


def parse(fields: Fields) -> ErrorsSpec:
    texts = fields.strings("status")
    status = _ranges(fields, "status", texts)
    service = _service(fields)
    query = fields.string("query")
    rewrites = []
    section = fields.mapping("statusRewrites")
    if section is not None:
        for key in list(section.data):
            value = section.integer(str(key), 0, minimum=100, maximum=999)
            try:
                (low_high,) = parse_status_ranges([str(key)])
            except ValueError as error:
                raise section.fail(str(key), f"parsing status rewrite: {error}") from None
            rewrites.append((low_high, value))
        section.done()
    headers: Optional[Tuple[str, ...]] = None
    if fields.has("errorRequestHeaders"):
        headers = fields.strings("errorRequestHeaders")
    fields.done()
    return ErrorsSpec(status, service, query, tuple(rewrites), headers)


def page_target(query: str, status: int, original: int, request: Request) -> str:
    """The error page's request target: {status} {originalStatus} {url} replaced, with a
    leading "/"."""
    scheme = "https" if request.tls else "http"
    url = f"{scheme}://{request.host}{request.target}"
    target = (
        query.replace("{status}", str(status))
        .replace("{originalStatus}", str(original))
        .replace("{url}", quote_plus(url, safe=""))
    )
    return target if target.startswith("/") else "/" + target


#: (status, headers, body) of the error service, as `service_client` gives it.
Page = Tuple[int, HeaderList, bytes]
Fetch = Callable[[Request], Any]


@attrs.define(eq=False)
class ErrorPageSink:
    """Passes an answer through, or swallows it and writes the error page instead."""

    downstream: ResponseSink
    spec: ErrorsSpec
    request: Request
    fetch: Fetch
    page: Any = None
    caught: bool = False
    ended: bool = False
    status: int = 0

    def head(self, response: Response) -> None:
        if not status_in(response.status, self.spec.status):
            self.downstream.head(response)
            return
        self.caught = True
        self.status = response.status
        for (low, high), new in self.spec.rewrites:
            if low <= response.status <= high:
                self.status = new
                break
        self.page = self.fetch(self.page_request(response.status))

    def page_request(self, original: int) -> Request:
        headers = HeaderList()
        allowed = self.spec.request_headers
        wanted = None if allowed is None else {name.lower() for name in allowed}
        for name, value in self.request.headers:
            if name.lower() == "host" or wanted is None or name.lower() in wanted:
                headers.add(name, value) if name.lower() != "host" else headers.set(name, value)
        target = page_target(self.spec.query, self.status, original, self.request)
        path, mark, query = target.partition("?")
        return Request(
            method="GET",
            path=path,
            query=query if mark else None,
            headers=headers,
            client_ip=self.request.client_ip,
            tls=self.request.tls,
        )

    def data(self, chunk: bytes) -> None:
        if not self.caught:
            self.downstream.data(chunk)

    def flush(self) -> None:
        if not self.caught:
            self.downstream.flush()

    def end(self) -> None:
        if not self.caught:
            self.downstream.end()
            return
        self.page.addCallbacks(self._write, self._failed).addErrback(
            lambda failure: log.failure("errors: writing the page failed", failure)
        )

    def _write(self, page: Page) -> None:
        _, headers, body = page
        out = HeaderList(
            (name, value)
            for name, value in headers
            if name.lower() not in ("content-length", "transfer-encoding", "connection")
        )
        self.downstream.head(Response(self.status, out, self.request))
        if body:
            self.downstream.data(body)
        self.downstream.end()

    def _failed(self, failure: Any) -> None:
        log.error(
            "errors: the error page could not be fetched: {why}", why=failure.getErrorMessage()
        )
        text = go_status_text(self.status).encode("ascii")
        self._write(
            (self.status, HeaderList([("Content-Type", "text/plain; charset=utf-8")]), text)
        )


@attrs.define(eq=False)
class ErrorPage:
    """One built errors step."""

    name: str
    spec: ErrorsSpec
    fetch: Fetch

    def handle(self, request: Request) -> StepResult:
        spec, fetch = self.spec, self.fetch

        def wrap(downstream: ResponseSink) -> ResponseSink:
            return ErrorPageSink(downstream, spec, request, fetch)

        request.wrap_response(wrap)
        return None


def build(spec: ErrorsSpec, name: str, context: BuildContext) -> ErrorPage:
    client = getattr(context, "service_client", None)
    if not getattr(context, "traffic_hooks", False) or client is None:
        raise BuildError(
            "errors needs the engine's response sinks and service client, not wired yet"
        )
    ref = spec.service
    if not ref.namespace:
        ref = attrs.evolve(ref, namespace=context.namespace)
    fetch = client(ref)
    if fetch is None:
        where = f"{ref.namespace}/{ref.name}" + (f":{ref.port}" if ref.port is not None else "")
        raise BuildError(f"service: {where} not found")
    return ErrorPage(name, spec, fetch)


KINDS = (MiddlewareKind("errors", parse, build),)
