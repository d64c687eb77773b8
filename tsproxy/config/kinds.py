"""Reading one YAML document into a resource value, through a table keyed by apiVersion and kind.

Traefik kinds are checked field by field (unknown fields are errors, known-but-unsupported
ones are notices); core Kubernetes kinds are read leniently, since we use a small part of them.
The kinds' readers live in kinds_routes, kinds_services, kinds_tls and kinds_core; this module
reads Middleware(TCP) and dispatches through PARSERS.
"""

from __future__ import annotations

from typing import Callable, Optional, cast

import attrs

from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.kinds_core import (
    parse_config_map,
    parse_endpoint_slice,
    parse_endpoints,
    parse_node,
    parse_service,
)
from tsproxy.config.kinds_routes import (
    parse_ingress_route,
    parse_ingress_route_tcp,
    parse_ingress_route_udp,
)
from tsproxy.config.kinds_services import (
    _spec,
    middleware_refs,
    parse_servers_transport,
    parse_traefik_service,
    read_sticky,
    read_transport,
)
from tsproxy.config.kinds_tls import (
    parse_secret,
    parse_tls_option,
    parse_tls_store,
    read_tls_option,
)
from tsproxy.config.resources import (
    Meta,
    Middleware,
    MiddlewareRef,
    MiddlewareTCP,
    Resource,
)
from tsproxy.config.schema import FieldError, Fields
from tsproxy.config.transports_tcp import parse_servers_transport_tcp
from tsproxy.config.yamlio import Document, YAMLList, YAMLMap
from tsproxy.middlewares import registry

__all__ = [
    "HTTP_MIDDLEWARE_KINDS",
    "PARSERS",
    "TCP_MIDDLEWARE_KINDS",
    "ParsedDocument",
    "middleware_refs",
    "parse_document",
    "read_sticky",
    "read_tls_option",
    "read_transport",
]

Parser = Callable[[Fields, Meta], Resource]


#: Every middleware kind of Traefik's Middleware and MiddlewareTCP CRDs, implemented or not.
HTTP_MIDDLEWARE_KINDS = (
    "addPrefix",
    "basicAuth",
    "buffering",
    "chain",
    "circuitBreaker",
    "compress",
    "contentType",
    "digestAuth",
    "errors",
    "forwardAuth",
    "grpcWeb",
    "headers",
    "inFlightReq",
    "ipAllowList",
    "ipWhiteList",
    "passTLSClientCert",
    "plugin",
    "rateLimit",
    "redirectRegex",
    "redirectScheme",
    "replacePath",
    "replacePathRegex",
    "retry",
    "stripPrefix",
    "stripPrefixRegex",
)
TCP_MIDDLEWARE_KINDS = ("inFlightConn", "ipAllowList", "ipWhiteList")


def plain(value: object) -> object:
    """A YAML value as plain dicts, lists and scalars (for the API)."""
    if isinstance(value, YAMLMap):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, YAMLList):
        return [plain(item) for item in value]
    return value


def _chain_spec(fields: Fields, namespace: str) -> tuple[MiddlewareRef, ...]:
    refs = middleware_refs(fields, namespace)
    fields.done()
    return refs


def _parse_any_middleware(root: Fields, meta: Meta, tcp: bool) -> Middleware:
    """The one kind a Middleware's spec names, parsed by that kind's reader; a problem with
    the kind or its section makes a failed Middleware (located), not a document error."""
    spec = _spec(root)
    made = MiddlewareTCP if tcp else Middleware
    known = TCP_MIDDLEWARE_KINDS if tcp else HTTP_MIDDLEWARE_KINDS
    named = [key for key in spec.data if isinstance(key, str) and key]
    if len(named) != len(spec.data):
        spec.done()  # a key that is not text: the usual "unknown field"
    if len(named) != 1:
        message = (
            "names no middleware kind"
            if not named
            else "names several kinds (%s): a middleware has exactly one, declare one"
            " middleware per kind" % ", ".join(named)
        )
        return made(meta, "", error=f"spec: {message}", line=spec.named_at)
    kind = named[0]
    line = spec.line_of(kind)
    config = plain(spec.data[kind])
    implemented = registry.tcp_kinds() if tcp else registry.http_kinds()
    if kind not in known and kind not in implemented:
        return made(meta, kind, None, config, f"spec.{kind}: unknown middleware kind", line)
    if kind == "chain" and not tcp:
        parse = lambda fields: _chain_spec(fields, meta.namespace)  # noqa: E731
    elif kind in implemented:
        parse = implemented[kind].parse
    else:
        message = f"spec.{kind}: the {kind} middleware is not implemented by tsproxy"
        return made(meta, kind, None, config, message, line)
    try:
        fields = spec.mapping(kind)
        if fields is None:  # ``headers:`` written empty: an empty section
            empty = YAMLMap()
            empty.line, empty.key_lines = line, {}
            fields = Fields(empty, spec.path_of(kind), spec.notices, line)
        parsed = parse(fields)
    except FieldError as exc:
        return made(meta, kind, None, config, str(exc), exc.line)
    except Exception as exc:  # a kind's reader failing is this middleware's problem only
        return made(meta, kind, None, config, f"spec.{kind}: cannot be read: {exc}", line)
    return made(meta, kind, parsed, config, "", line)


def parse_middleware(root: Fields, meta: Meta) -> Middleware:
    return _parse_any_middleware(root, meta, tcp=False)


def parse_middleware_tcp(root: Fields, meta: Meta) -> Middleware:
    return _parse_any_middleware(root, meta, tcp=True)


TRAEFIK_GROUPS = ("traefik.io/v1alpha1", "traefik.containo.us/v1alpha1")
PARSERS: dict[tuple[str, str], Parser] = {
    **{(group, "IngressRoute"): parse_ingress_route for group in TRAEFIK_GROUPS},
    **{(group, "IngressRouteTCP"): parse_ingress_route_tcp for group in TRAEFIK_GROUPS},
    **{(group, "TLSOption"): parse_tls_option for group in TRAEFIK_GROUPS},
    **{(group, "TLSStore"): parse_tls_store for group in TRAEFIK_GROUPS},
    ("v1", "Secret"): parse_secret,
    **{(group, "IngressRouteUDP"): parse_ingress_route_udp for group in TRAEFIK_GROUPS},
    **{(group, "TraefikService"): parse_traefik_service for group in TRAEFIK_GROUPS},
    **{(group, "ServersTransport"): parse_servers_transport for group in TRAEFIK_GROUPS},
    # Traefik v3 only (traefik.containo.us never had it); lives outside Resource, as ConfigMap.
    ("traefik.io/v1alpha1", "ServersTransportTCP"): cast(Parser, parse_servers_transport_tcp),
    ("v1", "Service"): parse_service,
    ("v1", "Node"): parse_node,
    # ConfigMap lives in kinds_core (resources.py is at its size limit), outside Resource.
    ("v1", "ConfigMap"): cast(Parser, parse_config_map),
    ("v1", "Endpoints"): parse_endpoints,
    ("discovery.k8s.io/v1", "EndpointSlice"): parse_endpoint_slice,
    **{(group, "Middleware"): parse_middleware for group in TRAEFIK_GROUPS},
    **{(group, "MiddlewareTCP"): parse_middleware_tcp for group in TRAEFIK_GROUPS},
}
_HANDLED_KINDS = {kind for _, kind in PARSERS}


@attrs.frozen
class ParsedDocument:
    """What became of one document: a resource, or an error, plus notices (full strings)."""

    resource: Optional[Resource] = None
    error: Optional[ConfigError] = None
    notices: tuple[str, ...] = ()


def _metadata(data: YAMLMap) -> tuple[str, str]:
    """Namespace and name for labels, tolerating documents that will be rejected."""
    metadata = data.get("metadata")
    if not isinstance(metadata, YAMLMap):
        return "default", ""
    namespace = metadata.get("namespace")
    name = metadata.get("name")
    return (
        namespace if isinstance(namespace, str) and namespace else "default",
        name if isinstance(name, str) else "",
    )


def _string_maps(metadata: Fields) -> tuple[tuple[tuple[str, str], ...], ...]:
    """``metadata.labels`` and ``metadata.annotations`` as (key, value) pairs, leniently."""
    found = []
    for key in ("labels", "annotations"):
        section = metadata.data.get(key)
        pairs = section.items() if isinstance(section, YAMLMap) else ()
        found.append(tuple((str(k), str(v)) for k, v in pairs if isinstance(v, str)))
    return found[0], found[1]


def parse_document(document: Document, file: str) -> ParsedDocument:
    """Turn one document into a resource, a skip notice, or a located error."""
    data = document.data
    if not isinstance(data, YAMLMap):
        return ParsedDocument(error=ConfigError(file, document.line, "", "not a mapping"))
    api_version, kind = data.get("apiVersion"), data.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str) or not kind:
        message = "apiVersion and kind are required (strings)"
        return ParsedDocument(error=ConfigError(file, document.line, "", message))
    namespace, name = _metadata(data)
    label = f"{kind} {namespace}/{name}" if name else kind
    parser = PARSERS.get((api_version, kind))
    if parser is None:
        reason = (
            f"apiVersion {api_version} not handled"
            if kind in _HANDLED_KINDS
            else "kind not handled"
        )
        return ParsedDocument(notices=(f"{file}:{document.line}: skipping {label} ({reason})",))
    notices: list[tuple[int, str]] = []
    try:
        root = Fields(data, "", notices)
        metadata = root.mapping("metadata", required=True)
        assert metadata is not None
        metadata.string("name", required=True)
        metadata.string("namespace")
        location = Location(file, document.line, label)
        labels, annotations = _string_maps(metadata)
        resource = parser(root, Meta(kind, namespace, name, location, labels, annotations))
    except FieldError as exc:
        return ParsedDocument(error=ConfigError(file, exc.line, label, str(exc)))
    texts = tuple(f"{file}:{line}: {label}: {text}" for line, text in notices)
    return ParsedDocument(resource=resource, notices=texts)
