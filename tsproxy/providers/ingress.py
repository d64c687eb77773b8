"""The Kubernetes Ingress provider: ``networking.k8s.io/v1`` Ingress (with IngressClass and
Traefik's ``traefik.ingress.kubernetes.io/router.*`` annotations) as routers and services
named ``@kubernetes``, read from the configuration directory or the API server.

Each path of each rule becomes a router named as Traefik names it (``<namespace>-<ingress>-
<host>-<path>``, every run of characters other than letters and digits made one ``-``) with
the rule ``Host(`h`) && PathPrefix(`/p`)`` (``Path`` for ``pathType: Exact``, the
``router.pathmatcher`` annotation otherwise), and its backend a load balancer named
``<namespace>-<service>-<port>`` over the Service's endpoints. The result is a configuration
in the file provider's format, built by the same code (tsproxy.providers.file).

Pure: given the located documents and the Services, EndpointSlices, Endpoints and Secrets.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import attrs

from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.fileformat import parse_dynamic_tree
from tsproxy.config.fileformat_values import FILE_SECRETS, FileConfiguration
from tsproxy.config.providers import CRDProviderConfig, IngressProviderConfig, selector_matches
from tsproxy.config.resources import Resource, Secret, ServiceRef
from tsproxy.config.yamlio import YAMLList, YAMLMap
from tsproxy.runtime.endpoints import BuildError, ServiceDirectory
from tsproxy.runtime.services import TransportSettings

__all__ = [
    "CONTROLLER",
    "INGRESS",
    "IngressDocument",
    "as_yaml",
    "ingress_configuration",
    "normalize",
]

INGRESS = "kubernetes"
CONTROLLER = "traefik.io/ingress-controller"
_PREFIX = "traefik.ingress.kubernetes.io/"
_ROUTER_ANNOTATIONS = (
    "router.entrypoints",
    "router.middlewares",
    "router.priority",
    "router.pathmatcher",
    "router.rulesyntax",
    "router.tls",
    "router.tls.options",
)
_PATH_MATCHERS = ("Path", "PathPrefix", "PathRegexp")


@attrs.frozen
class IngressDocument:
    """An Ingress or IngressClass as read (a located mapping), and where it is."""

    data: Any
    location: Location

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    @property
    def meta(self) -> Any:
        return self.data.get("metadata") or {}


def as_yaml(value: Any) -> Any:
    """An API object (JSON) as the located mappings the readers take (no lines: 0)."""
    if isinstance(value, dict):
        made = YAMLMap()
        made.line = 0
        made.key_lines = {}
        for key, item in value.items():
            made[key] = as_yaml(item)
            made.key_lines[key] = 0
        return made
    if isinstance(value, list):
        items = YAMLList()
        items.line = 0
        items.item_lines = []
        for item in value:
            items.append(as_yaml(item))
            items.item_lines.append(0)
        return items
    return value


def normalize(text: str) -> str:
    """Traefik's provider.Normalize: runs of characters other than letters and digits
    become one ``-``, none at either end."""
    return "-".join(part for part in re.split(r"[^0-9A-Za-z]+", text) if part)


def _selected(
    document: IngressDocument, classes: Sequence[str], options: IngressProviderConfig
) -> bool:
    meta = document.meta
    annotations = meta.get("annotations") or {}
    if options.namespaces and meta.get("namespace", "default") not in options.namespaces:
        return False
    if options.label_selector and not selector_matches(
        options.label_selector, dict(meta.get("labels") or {})
    ):
        return False
    class_name = (document.data.get("spec") or {}).get("ingressClassName") or ""
    annotation = annotations.get("kubernetes.io/ingress.class", "")
    if options.ingress_class:
        return options.ingress_class in (class_name, annotation)
    if not class_name and not annotation:
        return True
    return annotation == "traefik" or class_name in classes


class _Builder:
    def __init__(self, resources: Sequence[Resource], options: IngressProviderConfig) -> None:
        self.directory = ServiceDirectory(
            resources,
            CRDProviderConfig(
                allow_external_name_services=options.allow_external_name_services,
                allow_empty_services=options.allow_empty_services,
                native_lb_by_default=options.native_lb_by_default,
            ),
        )
        self.secrets = {
            (r.meta.namespace, r.meta.name): r for r in resources if isinstance(r, Secret)
        }
        self.routers: Dict[str, Any] = {}
        self.services: Dict[str, Any] = {}
        self.locations: List[Location] = []
        self.where: Dict[Tuple[str, str], int] = {}
        self.errors: List[ConfigError] = []
        self.tls_secrets: List[Resource] = []
        self.certificates: List[Tuple[str, str, Location]] = []

    def service(self, namespace: str, backend: Any, location: Location, line: int) -> str:
        if not isinstance(backend, dict) or backend.get("resource"):
            raise BuildError("backend.resource is not supported (a Service backend only)")
        service = backend.get("service") or {}
        name = service.get("name") or ""
        port_spec = service.get("port") or {}
        port = port_spec.get("number") or port_spec.get("name")
        if not name or not port:
            raise BuildError("backend.service needs a name and a port (number or name)")
        key = normalize(f"{namespace}-{name}-{port}")
        if key in self.services:
            return key
        svc = self.directory.services.get((namespace, name))
        annotations = dict(svc.meta.annotations) if svc is not None else {}
        scheme = annotations.pop(_PREFIX + "service.serversscheme", "")
        pass_host = annotations.pop(_PREFIX + "service.passhostheader", "true")
        unknown = sorted(a for a in annotations if a.startswith(_PREFIX))
        if unknown:
            raise BuildError(
                f"service {namespace}/{name}: annotation {unknown[0]} is not supported yet"
            )
        ref = ServiceRef(name, namespace, 0, "backend", port=port, scheme=scheme)
        servers = self.directory.servers(ref, TransportSettings())
        self.services[key] = {
            "loadBalancer": {
                "servers": [{"url": server.url} for server in servers],
                "passHostHeader": pass_host.lower() != "false",
            }
        }
        self.where[("services", key)] = line
        return key

    def ingress(self, document: IngressDocument) -> None:
        data, location = document.data, document.location
        meta = document.meta
        namespace = meta.get("namespace") or "default"
        name = meta.get("name") or ""
        annotations = {
            key[len(_PREFIX) :]: str(value)
            for key, value in (meta.get("annotations") or {}).items()
            if key.startswith(_PREFIX)
        }
        for key in annotations:
            if key not in _ROUTER_ANNOTATIONS and not key.startswith("router.observability."):
                self.errors.append(
                    location.error(f"annotation {_PREFIX}{key} is not supported yet: not read")
                )
                return
        spec = data.get("spec") or {}
        self.locations.append(location)
        line = len(self.locations)
        router: Dict[str, Any] = {}
        if annotations.get("router.entrypoints"):
            router["entryPoints"] = [
                e.strip() for e in annotations["router.entrypoints"].split(",") if e.strip()
            ]
        if annotations.get("router.middlewares"):
            router["middlewares"] = [
                m.strip() for m in annotations["router.middlewares"].split(",") if m.strip()
            ]
        if annotations.get("router.priority"):
            router["priority"] = annotations["router.priority"]
        if annotations.get("router.rulesyntax"):
            router["ruleSyntax"] = annotations["router.rulesyntax"]
        tls = bool(spec.get("tls")) or annotations.get("router.tls", "").lower() == "true"
        if tls:
            router["tls"] = {}
            if annotations.get("router.tls.options"):
                router["tls"]["options"] = annotations["router.tls.options"]
        for item in spec.get("tls") or []:
            secret = self.secrets.get((namespace, item.get("secretName") or ""))
            if secret is None:
                self.errors.append(
                    location.error(f"tls secret {namespace}/{item.get('secretName')} not found")
                )
                continue
            copy = attrs.evolve(
                secret, meta=attrs.evolve(secret.meta, namespace=f"{FILE_SECRETS}-{INGRESS}")
            )
            if copy not in self.tls_secrets:
                self.tls_secrets.append(copy)
                self.certificates.append((copy.meta.namespace, copy.meta.name, location))
        matcher = annotations.get("router.pathmatcher", "")
        if matcher and matcher not in _PATH_MATCHERS:
            self.errors.append(
                location.error(
                    f"router.pathmatcher {matcher}: must be one of Path, PathPrefix, PathRegexp"
                )
            )
            return
        if spec.get("defaultBackend"):
            try:
                service = self.service(namespace, spec["defaultBackend"], location, line)
            except BuildError as exc:
                self.errors.append(location.error(f"defaultBackend: {exc}"))
            else:
                self.routers["default-router"] = dict(
                    router, rule="PathPrefix(`/`)", priority="-2147483648", service=service
                )
                self.where[("routers", "default-router")] = line
        for rule in spec.get("rules") or []:
            host = rule.get("host") or ""
            for path in (rule.get("http") or {}).get("paths") or []:
                self.path(namespace, name, host, path, router, matcher, location, line)

    def path(
        self,
        namespace: str,
        name: str,
        host: str,
        path: Any,
        router: Dict[str, Any],
        matcher: str,
        location: Location,
        line: int,
    ) -> None:
        value = path.get("path") or ""
        kind = path.get("pathType") or "ImplementationSpecific"
        parts = []
        if host:
            function = "HostRegexp" if "*" in host else "Host"
            if function == "HostRegexp":
                pattern = "^" + re.escape(host).replace(r"\*", "[a-z0-9-]+") + "$"
                parts.append(f"HostRegexp(`{pattern}`)")
            else:
                parts.append(f"Host(`{host}`)")
        if value:
            use = matcher or ("Path" if kind == "Exact" else "PathPrefix")
            parts.append(f"{use}(`{value}`)")
        rule = " && ".join(parts) or "PathPrefix(`/`)"
        key = normalize(f"{namespace}-{name}-{host}-{value}")
        try:
            service = self.service(namespace, path.get("backend"), location, line)
        except BuildError as exc:
            self.errors.append(location.error(f"rule {host}{value}: {exc}"))
            return
        self.routers[key] = dict(router, rule=rule, service=service)
        self.where[("routers", key)] = line

    def tree(self) -> Optional[YAMLMap]:
        if not self.routers and not self.services:
            return None

        def located(value: Any, line: int) -> Any:
            if isinstance(value, dict):
                made = YAMLMap()
                made.line = line
                made.key_lines = {}
                for key, item in value.items():
                    made[key] = located(item, line)
                    made.key_lines[key] = line
                return made
            if isinstance(value, list):
                items = YAMLList()
                items.line = line
                items.item_lines = [line] * len(value)
                items.extend(located(item, line) for item in value)
                return items
            if isinstance(value, str) and value.lstrip("-").isdigit():
                return int(value)
            return value

        http = YAMLMap()
        http.line = 1
        http.key_lines = {}
        for section, entries in (("routers", self.routers), ("services", self.services)):
            part = YAMLMap()
            part.line = 1
            part.key_lines = {}
            for key, value in entries.items():
                where = self.where[(section, key)]
                part[key] = located(value, where)
                part.key_lines[key] = where
            http[section] = part
            http.key_lines[section] = 1
        root = YAMLMap()
        root.line = 1
        root.key_lines = {"http": 1}
        root["http"] = http
        return root


def ingress_configuration(
    documents: Sequence[IngressDocument],
    resources: Sequence[Resource],
    options: IngressProviderConfig,
) -> Tuple[FileConfiguration, Tuple[ConfigError, ...], Tuple[str, ...]]:
    """The routers and services of the selected Ingresses (``@kubernetes``), the errors
    (at the Ingress) and notices."""
    classes = [
        str((d.meta or {}).get("name", ""))
        for d in documents
        if d.kind == "IngressClass" and (d.data.get("spec") or {}).get("controller") == CONTROLLER
    ]
    builder = _Builder(resources, options)
    for document in documents:
        if document.kind == "Ingress" and _selected(document, classes, options):
            builder.ingress(document)
    tree = builder.tree()
    config = FileConfiguration()
    errors: Tuple[ConfigError, ...] = ()
    notices: Tuple[str, ...] = ()
    if tree is not None:

        def place(file: str, line: int) -> Tuple[str, int]:
            if 0 < line <= len(builder.locations):
                where = builder.locations[line - 1]
                return where.file, where.line
            return file, 0

        config, errors, notices = parse_dynamic_tree(tree, INGRESS, place)
    if builder.certificates:
        tls = attrs.evolve(
            config.tls,
            resources=config.tls.resources + tuple(builder.tls_secrets),
            certificates=config.tls.certificates + tuple(builder.certificates),
        )
        config = attrs.evolve(config, tls=tls)
    return config, tuple(builder.errors) + errors, notices
