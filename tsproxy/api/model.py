"""Traefik's API for a routing table: the JSON documents ``/api/...`` answers, with Traefik's
field names, filters, sorting, paging and error messages (pkg/api of Traefik v3).

Pure: reads a RoutingTable (its HTTP and UDP routers and services, and the TCP ones when the
table has ``tcp_routers`` and ``tcp_services``; the routers and TraefikServices that failed,
shown "disabled", and routers with warnings, when it has ``failed_routers``,
``failed_services`` and ``router_warnings``) and the static configuration. No I/O.

The documents are built in ``document`` (shared values, encoding), ``routing`` (routers and
services) and ``overview`` (the rest); this module answers requests (filters, sorting,
paging) and re-exports the public names.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import parse_qs, unquote_to_bytes

import attrs

from tsproxy.api.document import (
    DEFAULT_PER_PAGE,
    JSON_TYPE,
    NEXT_PAGE,
    PROVIDER,
    TEXT_TYPE,
    APIAnswer,
    Document,
    Sorts,
    Stats,
    go_duration,
    go_json,
    qualified,
)
from tsproxy.api.overview import (
    _MIDDLEWARE_SORTS,
    entrypoints,
    http_middlewares,
    overview,
    rawdata,
    stats_document,
    tcp_middlewares,
    version_document,
)
from tsproxy.api.routing import (
    _built_routers,
    _failed_routers,
    http_routers,
    http_services,
    tcp_routers,
    tcp_services,
    udp_routers,
    udp_services,
)

__all__ = [
    "PROVIDER",
    "APIAnswer",
    "APIContext",
    "answer",
    "entrypoints",
    "go_duration",
    "go_json",
    "http_middlewares",
    "http_routers",
    "http_services",
    "not_found",
    "overview",
    "qualified",
    "rawdata",
    "stats_document",
    "tcp_middlewares",
    "tcp_routers",
    "tcp_services",
    "udp_routers",
    "udp_services",
    "version_document",
]


# -- requests: filters, sorting, paging ------------------------------------------------------


class _BadRequest(Exception):
    """A 400 with Traefik's message."""


def _first(query: Mapping[str, List[str]], key: str) -> str:
    values = query.get(key)
    return values[0] if values else ""


_INT = re.compile(r"[+-]?[0-9]+\Z")
_INT64 = 2**63 - 1


def _go_atoi(text: str) -> Tuple[int, bool]:
    """Go's strconv.Atoi: (value, ok); a syntax error gives 0, a range error the bound."""
    if not _INT.match(text):
        return 0, False
    value = int(text)
    if value > _INT64:
        return _INT64, False
    if value < -_INT64 - 1:
        return -_INT64 - 1, False
    return value, True


def _int_param(query: Mapping[str, List[str]], key: str, default: int) -> int:
    raw = _first(query, key)
    if raw == "":
        return default
    value, ok = _go_atoi(raw)
    if not ok or value <= 0:
        raise _BadRequest(f"invalid request: {key}: {value}")
    return value


def _page(query: Mapping[str, List[str]], total: int) -> Tuple[int, int, int]:
    """(start, end, next page) of the requested page; _BadRequest past the end."""
    per_page = _int_param(query, "per_page", DEFAULT_PER_PAGE)
    page = _int_param(query, "page", 1)
    start = (page - 1) * per_page
    if start != 0 and start >= total:
        raise _BadRequest(f"invalid request: page: {page}, per_page: {per_page}")
    end = min(start + per_page, total)
    return start, end, page + 1 if page * per_page < total else 1


@attrs.frozen
class _Criterion:
    """The list filters; an absent one keeps everything."""

    search: str
    status: str
    service_name: str
    middleware_name: str

    @classmethod
    def of(cls, query: Mapping[str, List[str]]) -> _Criterion:
        return cls(
            _first(query, "search"),
            _first(query, "status"),
            _first(query, "serviceName"),
            _first(query, "middlewareName"),
        )

    def with_status(self, status: str) -> bool:
        return not self.status or status.lower() == self.status.lower()

    def search_in(self, *values: str) -> bool:
        wanted = self.search.lower()
        return not wanted or any(wanted in value.lower() for value in values)

    def filter_service(self, name: str) -> bool:
        if not self.service_name:
            return True
        if "@" in name:
            return self.service_name == name
        return self.service_name.split("@", 1)[0] == name

    def filter_middleware(self, names: Sequence[str]) -> bool:
        return not self.middleware_name or self.middleware_name in names


def _keep_router(item: Document, criterion: _Criterion) -> bool:
    return (
        criterion.with_status(item.get("status", ""))
        and criterion.search_in(item.get("rule", ""), item["name"])
        and criterion.filter_service(item.get("service", ""))
        and criterion.filter_middleware(item.get("middlewares", ()))
    )


def _keep_udp_router(item: Document, criterion: _Criterion) -> bool:
    return (
        criterion.with_status(item.get("status", ""))
        and criterion.search_in(item["name"])
        and criterion.filter_service(item.get("service", ""))
    )


def _keep_named(item: Document, criterion: _Criterion) -> bool:
    return criterion.with_status(item.get("status", "")) and criterion.search_in(item["name"])


def _servers_count(item: Document) -> int:
    balancer = item.get("loadBalancer")
    return len(balancer.get("servers", ())) if balancer is not None else 0


def _router_sorts(table: Any, protocol: str) -> Sorts:
    """Traefik sorts routers by their effective priority (the rule length when unset)."""
    effective = {
        qualified(r.name): int(getattr(r, "priority", 0)) for r in _built_routers(table, protocol)
    }
    for failed in _failed_routers(table, protocol):
        effective.setdefault(qualified(failed.name), failed.priority or len(failed.rule))
    return {
        "provider": lambda item: item["provider"],
        "priority": lambda item: effective.get(item["name"], 0),
        "status": lambda item: item.get("status", ""),
        "rule": lambda item: item.get("rule", ""),
        "service": lambda item: item.get("service", ""),
        "entryPoints": lambda item: len(item.get("entryPoints", ())),
    }


_SERVICE_SORTS: Sorts = {
    "type": lambda item: item.get("type", ""),
    "servers": _servers_count,
    "provider": lambda item: item["provider"],
    "status": lambda item: item.get("status", ""),
}


def _sorted(items: List[Document], query: Mapping[str, List[str]], sorts: Sorts) -> List[Document]:
    """Traefik's sortBy/direction: by name unless another known key is asked for (ties by
    name); any direction but ``asc`` (the default) is descending."""
    key = sorts.get(_first(query, "sortBy"))
    descending = (_first(query, "direction") or "asc") != "asc"
    if key is None:
        return sorted(items, key=lambda item: item["name"], reverse=descending)
    return sorted(items, key=lambda item: (key(item), item["name"]), reverse=descending)


def _json(document: Any, headers: Tuple[Tuple[str, str], ...] = ()) -> APIAnswer:
    return APIAnswer(200, go_json(document), JSON_TYPE, headers)


def _error(message: str, status: int) -> APIAnswer:
    """Traefik's writeError: the JSON message sent through Go's http.Error (text/plain)."""
    return APIAnswer(status, go_json({"message": message}), TEXT_TYPE, _NOSNIFF)


_NOSNIFF = (("X-Content-Type-Options", "nosniff"),)


def not_found() -> APIAnswer:
    """Go's http.NotFound, as gorilla/mux answers a path no API route has."""
    return APIAnswer(404, b"404 page not found\n", TEXT_TYPE, _NOSNIFF)


@attrs.frozen
class _Kind:
    """One listed kind: its items by name, what a missing one is called, the route variable,
    the filter (None: no filters, as for entrypoints) and the sort keys (None: by name)."""

    items: Callable[[Any], Dict[str, Document]]
    what: str
    variable: str
    keep: Optional[Callable[[Document, _Criterion], bool]]
    sorts: Optional[Callable[[Any], Sorts]]

    def listing(self, table: Any, query: Mapping[str, List[str]]) -> APIAnswer:
        criterion = _Criterion.of(query)
        keep = self.keep
        chosen = [
            item for item in self.items(table).values() if keep is None or keep(item, criterion)
        ]
        sorts = self.sorts(table) if self.sorts is not None else {}
        ordered = (
            _sorted(chosen, query, sorts)
            if self.sorts is not None
            else sorted(chosen, key=lambda item: item["name"])
        )
        try:
            start, end, next_page = _page(query, len(ordered))
        except _BadRequest as exc:
            return _error(str(exc), 400)
        return _json(ordered[start:end], ((NEXT_PAGE, str(next_page)),))

    def single(self, table: Any, name: str) -> APIAnswer:
        item = self.items(table).get(name)
        if item is None:
            return _error(f"{self.what} not found: {name}", 404)
        return _json(item)


_KINDS: Dict[str, _Kind] = {
    "entrypoints": _Kind(
        lambda t: entrypoints(t.static), "entry point", "entryPointID", None, None
    ),
    "http/routers": _Kind(
        http_routers, "router", "routerID", _keep_router, lambda t: _router_sorts(t, "http")
    ),
    "http/services": _Kind(
        http_services, "service", "serviceID", _keep_named, lambda t: _SERVICE_SORTS
    ),
    "http/middlewares": _Kind(
        http_middlewares, "middleware", "middlewareID", _keep_named, lambda t: _MIDDLEWARE_SORTS
    ),
    "tcp/routers": _Kind(
        tcp_routers,
        "router",
        "routerID",
        _keep_router,
        lambda t: _router_sorts(t, "tcp"),
    ),
    "tcp/services": _Kind(
        tcp_services, "service", "serviceID", _keep_named, lambda t: _SERVICE_SORTS
    ),
    "tcp/middlewares": _Kind(
        tcp_middlewares, "middleware", "middlewareID", _keep_named, lambda t: _MIDDLEWARE_SORTS
    ),
    "udp/routers": _Kind(
        udp_routers, "router", "routerID", _keep_udp_router, lambda t: _router_sorts(t, "udp")
    ),
    "udp/services": _Kind(
        udp_services, "service", "serviceID", _keep_named, lambda t: _SERVICE_SORTS
    ),
}

_ESCAPE_BAD = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _unescape(value: str) -> Optional[str]:
    """Go's url.PathUnescape; None for a malformed escape."""
    if _ESCAPE_BAD.search(value):
        return None
    # Go keeps the bytes and shows invalid UTF-8 as U+FFFD when encoding JSON.
    return unquote_to_bytes(value).decode("utf-8", "replace")


@attrs.frozen
class APIContext:
    """What the API answers from besides the table: the version, the start date (RFC 3339)
    and the request counts per service (None when nothing counts them)."""

    version: str
    start_date: str
    stats: Optional[Stats] = None


_DOCUMENTS: Dict[str, Callable[[Any, APIContext], Document]] = {
    "overview": lambda table, context: overview(table),
    "rawdata": lambda table, context: rawdata(table),
    "version": lambda table, context: version_document(context.version, context.start_date),
    "tsproxy/stats": lambda table, context: stats_document(context.stats, table),
}


def answer(method: str, path: str, query_string: str, table: Any, context: APIContext) -> APIAnswer:
    """The API's answer to ``method path?query_string`` (``path`` as sent, still escaped).

    GET only: another method on an API path is 405 with no body, as gorilla/mux answers;
    a path that is no API route is 404.
    """
    segments = path.split("/")
    if len(segments) < 3 or segments[0] != "" or segments[1] != "api":
        return not_found()
    rest = segments[2:]
    key = "/".join(rest)
    document = _DOCUMENTS.get(key)
    kind = _KINDS.get(key)
    single = _KINDS.get("/".join(rest[:-1])) if len(rest) >= 2 and rest[-1] else None
    if document is None and kind is None and single is None:
        return not_found()
    if method != "GET":
        return APIAnswer(405, b"", "")
    if document is not None:
        return _json(document(table, context))
    query = parse_qs(query_string, keep_blank_values=True)
    if kind is not None:
        return kind.listing(table, query)
    assert single is not None
    name = _unescape(rest[-1])
    if name is None:
        return _error(f"unable to decode {single.variable}: {rest[-1]}", 400)
    return single.single(table, name)
