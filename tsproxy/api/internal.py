"""The internal endpoints of an entrypoint: Traefik's API (``/api``), the dashboard
(``/dashboard/``), ``/ping`` and ``/metrics``, answered before the user's routers, as
Traefik's internal routers are (they have the highest priorities on their entrypoint).

No Twisted: ``respond`` takes a parsed request head and returns a whole response as bytes,
or None when the path is not internal and the request goes on to the routing table.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import tsproxy
from tsproxy.api.model import APIAnswer, APIContext, answer, not_found
from tsproxy.http.headers import http_date
from tsproxy.http.wire import RequestHead

__all__ = [
    "DASHBOARD_DIR",
    "InternalEndpoints",
    "encode_response",
    "internal_endpoints",
    "load_assets",
    "rfc3339_now",
    "routed_internal_endpoints",
    "status_text",
]

#: Where the dashboard's files are (shipped as package data, no build step).
DASHBOARD_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboard")
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# The dashboard loads nothing from elsewhere; its script only talks to this entrypoint.
_DASHBOARD_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'self'; base-uri 'none'",
    ),
)
# Traefik's dashboard_redirect middleware only redirects ``http://<host>/`` when the host
# looks like this (a name or bracketed IPv6 address, an optional port).
_REDIRECT_HOST = re.compile(r"(\[[\w:.]+\]|[\w._-]+)(:\d+)?\Z")


def load_assets(directory: str = DASHBOARD_DIR) -> Dict[str, Tuple[str, bytes]]:
    """The dashboard's files by name: (Content-Type, bytes). Read once, at startup."""
    assets = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        content_type = _CONTENT_TYPES.get(os.path.splitext(name)[1])
        if content_type is not None and os.path.isfile(path):
            with open(path, "rb") as f:
                assets[name] = (content_type, f.read())
    return assets


def status_text(status: int) -> str:
    """Go's http.StatusText: the reason phrase, "" for a code it does not know."""
    if status == 418:
        return "I'm a teapot"  # Go's spelling (Python's HTTPStatus says "I'm a Teapot")
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def encode_response(answer: APIAnswer, keep_alive: bool, http10: bool, head: bool) -> bytes:
    """A whole HTTP/1.1 response; ``head``: the request was HEAD (no body, same length)."""
    lines = ["HTTP/1.1 %d %s" % (answer.status, status_text(answer.status) or "Unknown")]
    if answer.content_type:
        lines.append("Content-Type: " + answer.content_type)
    lines.extend("%s: %s" % pair for pair in answer.headers)
    lines.append("Date: " + http_date().decode("ascii"))
    lines.append("Content-Length: %d" % len(answer.body))
    if not keep_alive:
        lines.append("Connection: close")
    elif http10:
        lines.append("Connection: keep-alive")
    head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head_bytes if head else head_bytes + answer.body


def _split_target(req: RequestHead) -> Optional[Tuple[str, str, str]]:
    """(path, query, host) of a request; None for a target with no path (``*``)."""
    target = req.target.decode("utf-8", "replace")
    host = ""
    if not target.startswith("/"):
        scheme, sep, rest = target.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            return None
        host, slash, rest = rest.partition("/")
        target = "/" + rest
    else:
        for name, value in req.headers:
            if name.lower() == b"host":
                host = value.decode("latin-1").strip()
                break
    path, _, query = target.partition("?")
    return path, query, host


class InternalEndpoints:
    """What one entrypoint serves of ``api``, ``dashboard``, ``ping`` and ``metrics``.

    Every answer reads the state it shows at the time: ``get_table()`` (so the API shows a
    reload at once), ``get_metrics()`` (None, or an object with ``exposition()`` ->
    (content type, bytes) and ``dashboard_stats()`` -> the counts the dashboard shows)
    and ``is_terminating()`` (a shutdown has begun: ``/ping`` answers ``ping_status``).
    """

    def __init__(
        self,
        serves: Iterable[str],
        get_table: Callable[[], Any],
        get_metrics: Callable[[], Any],
        is_terminating: Callable[[], bool],
        start_date: str,
        ping_status: int = 503,
        dashboard_dir: str = DASHBOARD_DIR,
        aggregate: Any = None,
    ) -> None:
        #: Under a supervisor (tsproxy.workers): an object whose ``metrics()`` and
        #: ``stats()`` return Deferreds of the whole proxy's exposition (content type, bytes)
        #: and per-service counts; /metrics and /api then answer on a later turn.
        self.aggregate = aggregate
        self.serves = frozenset(serves)
        self.get_table = get_table
        self.get_metrics = get_metrics
        self.is_terminating = is_terminating
        self.start_date = start_date
        self.ping_status = ping_status
        self.assets = load_assets(dashboard_dir) if "dashboard" in self.serves else {}

    def respond(self, req: RequestHead, keep_alive: bool) -> Any:
        """The whole response to ``req`` if its path is internal here, else None; with
        ``aggregate``, a Deferred of it for /metrics and /api.

        ``keep_alive``: the connection stays open after this response.
        """
        split = _split_target(req)
        if split is None:
            return None
        method = req.method.decode("latin-1")
        found = self.answer(method, *split)
        if found is None:
            return None
        http10, head = req.version == b"HTTP/1.0", method == "HEAD"
        if isinstance(found, APIAnswer):
            return encode_response(found, keep_alive, http10, head)
        return found.addCallback(encode_response, keep_alive, http10, head)

    def _gathered(self, method: str, path: str, query: str) -> Any:
        """The Deferred answer of /metrics or /api over every worker; 503 if that fails."""
        aggregate = self.aggregate
        if path.startswith("/metrics"):
            d = aggregate.metrics()
            d.addCallback(lambda exposition: APIAnswer(200, exposition[1], exposition[0]))
        else:
            d = aggregate.stats()
            d.addCallback(
                lambda stats: answer(
                    method,
                    path,
                    query,
                    self.get_table(),
                    APIContext(tsproxy.__version__, self.start_date, stats),
                )
            )
        d.addErrback(lambda failure: APIAnswer(503, b"Service Unavailable\n", "text/plain"))
        return d

    def answer(self, method: str, path: str, query: str, host: str) -> Any:
        """The answer to an internal path, in Traefik's priority order; None if not one (a
        Deferred of it for what ``aggregate`` gathers)."""
        serves = self.serves
        if "ping" in serves and path.startswith("/ping"):
            return self._ping()
        if "metrics" in serves and path.startswith("/metrics"):
            metrics = self.get_metrics()
            if metrics is not None and self.aggregate is not None:
                return self._gathered(method, path, query)
            if metrics is not None:
                content_type, body = metrics.exposition()
                return APIAnswer(200, body, content_type)
        if "api" in serves and path.startswith("/api"):
            if self.aggregate is not None and self.get_metrics() is not None:
                return self._gathered(method, path, query)
            return answer(method, path, query, self.get_table(), self._context())
        if "dashboard" in serves:
            return self._dashboard(method, path, query, host)
        return None

    def _context(self) -> APIContext:
        metrics = self.get_metrics()
        stats = metrics.dashboard_stats() if metrics is not None else None
        return APIContext(tsproxy.__version__, self.start_date, stats)

    def _ping(self) -> APIAnswer:
        """Traefik's ping handler: the status text as body, any method."""
        status = self.ping_status if self.is_terminating() else 200
        return APIAnswer(status, status_text(status).encode("ascii"), "")

    def _dashboard(self, method: str, path: str, query: str, host: str) -> Optional[APIAnswer]:
        if path == "/" and not query and _REDIRECT_HOST.match(host):
            # Traefik's dashboard_redirect: permanent, 308 for methods other than GET.
            status = 301 if method == "GET" else 308
            location = (("Location", f"http://{host}/dashboard/"),)
            return APIAnswer(status, status_text(status).encode("ascii"), "", location)
        if path == "/dashboard":
            # Go's http.Redirect, so that the page's relative URLs resolve under /dashboard/.
            target = "/dashboard/" + ("?" + query if query else "")
            body = b'<a href="/dashboard/">Found</a>.\n\n' if method in ("GET", "HEAD") else b""
            content_type = "text/html; charset=utf-8" if body else ""
            return APIAnswer(302, body, content_type, (("Location", target),))
        if path == "/":
            name = "index.html"
        elif path.startswith("/dashboard/"):
            name = path[len("/dashboard/") :] or "index.html"
        else:
            return None
        asset = self.assets.get(name)
        if asset is None:
            return not_found()
        content_type, body = asset
        return APIAnswer(200, body, content_type, _DASHBOARD_HEADERS)


def rfc3339_now() -> str:
    """The current time as Go marshals a time.Time in JSON (RFC 3339, UTC here)."""
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def routed_internal_endpoints(service: Any) -> Dict[str, InternalEndpoints]:
    """What api@internal, dashboard@internal, ping@internal and prometheus@internal answer
    when a router on any entrypoint sends a request there (by "api", "dashboard", "ping",
    "metrics"); the build only lets a router use those the static configuration enables."""
    static = service.current_table().static
    ping_status = static.ping.terminating_status_code if static.ping is not None else 503
    enabled = {
        "api": static.api is not None,
        "dashboard": static.api is not None and static.api.dashboard,
        "ping": static.ping is not None,
        "metrics": static.prometheus is not None,
    }
    return {
        serves: InternalEndpoints(
            (serves,),
            service.current_table,
            lambda: getattr(service, "metrics", None),
            lambda: bool(service.terminating),
            service.start_date,
            ping_status,
        )
        for serves, on in enabled.items()
        if on
    }


def internal_endpoints(service: Any, entrypoint: str) -> Optional[InternalEndpoints]:
    """The internal endpoints of ``entrypoint`` in a running proxy (a ProxyService), or None
    when its static configuration serves none there.

    Reads the proxy as it goes: ``current_table()``, its ``metrics`` (None until a
    metrics object is set), ``terminating`` and ``start_date``.
    """
    static = service.current_table().static
    serves = static.internal_entrypoints().get(entrypoint)
    if not serves:
        return None
    ping_status = static.ping.terminating_status_code if static.ping is not None else 503
    return InternalEndpoints(
        serves,
        service.current_table,
        lambda: getattr(service, "metrics", None),
        lambda: bool(service.terminating),
        service.start_date,
        ping_status,
        aggregate=getattr(service, "aggregate", None),
    )
