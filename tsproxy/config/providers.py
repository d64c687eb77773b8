"""The ``providers`` section of the static configuration: which providers run, with their
options and Traefik's defaults.

Pure: reads located fields, raises FieldError. The Kubernetes CRD provider reads its resources
from the configuration directory; the options that only mean something against an API server
(``endpoint``, ``token``, ``certAuthFilePath``) are errors until that mode exists.
"""

from __future__ import annotations

import re
from typing import List, Mapping, Optional, Tuple

import attrs

from tsproxy.config.errors import Location
from tsproxy.config.schema import Fields

__all__ = [
    "CRDProviderConfig",
    "ClientTLS",
    "APIServer",
    "FileProviderConfig",
    "IngressProviderConfig",
    "KVProviderConfig",
    "LabelSelector",
    "ProvidersConfig",
    "parse_label_selector",
    "parse_providers",
    "selector_matches",
]

_NOT_YET = "not supported yet, ignored"
#: Providers Traefik has and tsproxy does not run yet: written, they are an error (the routes
#: they would bring must not silently go missing).
_OTHER_PROVIDERS = (
    "docker",
    "swarm",
    "kubernetesIngressNGINX",
    "kubernetesGateway",
    "consulCatalog",
    "nomad",
    "ecs",
    "consul",
    "zooKeeper",
    "http",
    "plugin",
)


@attrs.frozen
class APIServer:
    """``endpoint``, ``token`` and ``certAuthFilePath`` of a Kubernetes provider, as written
    (all empty: inside a cluster, the service account's; outside, the configuration
    directory is read instead)."""

    endpoint: str = ""
    token: str = ""
    cert_auth_file_path: str = ""


def _api_server(fields: Fields) -> APIServer:
    endpoint = fields.string("endpoint")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise fields.fail("endpoint", "must be an http:// or https:// URL")
    return APIServer(endpoint, fields.string("token"), fields.string("certAuthFilePath"))


@attrs.frozen
class FileProviderConfig:
    """``providers.file``: exactly one of ``filename`` and ``directory`` (relative paths are
    relative to the configuration directory); ``watch`` (Traefik's default: on) reloads on
    changes."""

    filename: str = ""
    directory: str = ""
    watch: bool = True
    location: Location = Location("", 1)


@attrs.frozen
class ClientTLS:
    """``tls`` of a key-value provider: ``ca`` to verify the server with (none: the system's
    roots), ``cert``/``key`` to present, ``insecureSkipVerify``. Paths as written (relative
    to the configuration directory)."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    insecure_skip_verify: bool = False


@attrs.frozen
class KVProviderConfig:
    """``providers.etcd`` or ``providers.redis`` (``kind``): the store's ``endpoints``
    (host:port; the first that answers is used), ``rootKey``, credentials, ``tls``, and
    Redis' ``db``."""

    kind: str
    endpoints: Tuple[str, ...]
    root_key: str = "traefik"
    username: str = ""
    password: str = ""
    tls: Optional[ClientTLS] = None
    db: int = 0
    location: Location = Location("", 1)


_KV_DEFAULT_ENDPOINTS = {"etcd": ("127.0.0.1:2379",), "redis": ("127.0.0.1:6379",)}


def _kv(kind: str, fields: Optional[Fields], location: Location) -> KVProviderConfig:
    if fields is None:
        return KVProviderConfig(kind, _KV_DEFAULT_ENDPOINTS[kind], location=location)
    endpoints = fields.strings("endpoints") or _KV_DEFAULT_ENDPOINTS[kind]
    for index, endpoint in enumerate(endpoints):
        host, colon, port = endpoint.rpartition(":")
        if "://" in endpoint:
            host, colon, port = endpoint.partition("://")[2].rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise fields.fail(
                f"endpoints[{index}]" if fields.has("endpoints") else "endpoints",
                f"{endpoint!r}: must be host:port (like 127.0.0.1:2379)",
            )
    tls = None
    present, tls_fields = fields.section("tls")
    if present:
        tls = ClientTLS()
        if tls_fields is not None:
            tls = ClientTLS(
                ca=tls_fields.string("ca"),
                cert=tls_fields.string("cert"),
                key=tls_fields.string("key"),
                insecure_skip_verify=tls_fields.boolean("insecureSkipVerify", False),
            )
            if bool(tls.cert) != bool(tls.key):
                raise tls_fields.whole("cert and key go together")
            tls_fields.done()
    root_key = fields.string("rootKey", "traefik").strip("/")
    if not root_key:
        raise fields.fail("rootKey", "must not be empty")
    config = KVProviderConfig(
        kind=kind,
        endpoints=tuple(e.partition("://")[2] if "://" in e else e for e in endpoints),
        root_key=root_key,
        username=fields.string("username"),
        password=fields.string("password"),
        tls=tls,
        db=fields.integer("db", 0, minimum=0) if kind == "redis" else 0,
        location=location,
    )
    if kind == "redis" and fields.has("sentinel"):
        raise fields.fail("sentinel", "Redis Sentinel is not supported yet")
    fields.done()
    return config


# A requirement of a label selector: (key, operator, values); operators are Kubernetes':
# "=", "!=", "in", "notin", "exists", "!".
Requirement = Tuple[str, str, Tuple[str, ...]]
LabelSelector = Tuple[Requirement, ...]

_SELECTOR_SET = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_SELECTOR_EQ = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)\s*$")


def parse_label_selector(text: str) -> LabelSelector:
    """A Kubernetes label selector (``app=web,tier!=db,env in (a,b),!legacy``); ValueError
    says which requirement is wrong."""
    requirements: List[Tuple[str, str, Tuple[str, ...]]] = []
    for part in re.split(r",(?![^()]*\))", text):
        if not part.strip():
            if text.strip():
                raise ValueError("empty requirement")
            continue
        equal = _SELECTOR_EQ.match(part)
        if equal is not None:
            operator = "!=" if equal.group(2) == "!=" else "="
            requirements.append((equal.group(1), operator, (equal.group(3),)))
            continue
        found = _SELECTOR_SET.match(part)
        if found is None or (found.group(1) and found.group(3)):
            raise ValueError(f"cannot read requirement {part.strip()!r}")
        if found.group(3):
            values = tuple(v.strip() for v in found.group(4).split(",") if v.strip())
            requirements.append((found.group(2), found.group(3), values))
        else:
            requirements.append((found.group(2), "!" if found.group(1) else "exists", ()))
    return tuple(requirements)


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy every requirement, with Kubernetes' meaning."""
    for key, operator, values in selector:
        present = key in labels
        value = labels.get(key)
        if operator == "=" and value != values[0]:
            return False
        if operator == "!=" and present and value == values[0]:
            return False
        if operator == "in" and value not in values:
            return False
        if operator == "notin" and present and value in values:
            return False
        if operator == "exists" and not present:
            return False
        if operator == "!" and present:
            return False
    return True


@attrs.frozen
class CRDProviderConfig:
    """``providers.kubernetesCRD`` with Traefik's defaults. Durations in seconds.

    ``namespaces`` empty means every namespace; ``label_selector`` filters the Traefik
    resources (not Services, Endpoints or Secrets), ``ingress_class`` the routes (their
    ``kubernetes.io/ingress.class`` annotation), as Traefik does.
    """

    allow_cross_namespace: bool = False
    allow_external_name_services: bool = False
    allow_empty_services: bool = False
    native_lb_by_default: bool = False
    namespaces: Tuple[str, ...] = ()
    label_selector: LabelSelector = ()
    label_selector_text: str = ""
    ingress_class: str = ""
    throttle_duration: float = 0.0
    location: Location = Location("", 1)
    api: APIServer = APIServer()


@attrs.frozen
class IngressProviderConfig:
    """``providers.kubernetesIngress``: which Ingresses are read (``namespaces``,
    ``labelSelector``, ``ingressClass``) and how their Services are (Traefik's defaults)."""

    namespaces: Tuple[str, ...] = ()
    label_selector: LabelSelector = ()
    ingress_class: str = ""
    allow_empty_services: bool = False
    allow_external_name_services: bool = False
    native_lb_by_default: bool = False
    throttle_duration: float = 0.0
    location: Location = Location("", 1)
    api: APIServer = APIServer()


@attrs.frozen
class ProvidersConfig:
    """``providers``. ``written`` is False when the static configuration has no ``providers``
    section: then the Kubernetes CRD provider reads the configuration directory with its
    defaults, as tsproxy always did; with a section, only the providers it names run."""

    written: bool = False
    throttle_duration: float = 2.0
    file: Optional[FileProviderConfig] = None
    crd: Optional[CRDProviderConfig] = CRDProviderConfig()
    etcd: Optional[KVProviderConfig] = None
    redis: Optional[KVProviderConfig] = None
    ingress: Optional[IngressProviderConfig] = None

    @property
    def kv(self) -> Tuple[KVProviderConfig, ...]:
        """The key-value providers configured (etcd, redis)."""
        return tuple(c for c in (self.etcd, self.redis) if c is not None)

    @property
    def reload_throttle(self) -> float:
        """Seconds between two watcher reloads: providersThrottleDuration (or the CRD
        provider's throttleDuration, the longer) with a ``providers`` section, else none."""
        if not self.written:
            return 0.0
        crd = self.crd.throttle_duration if self.crd is not None else 0.0
        ingress = self.ingress.throttle_duration if self.ingress is not None else 0.0
        return max(self.throttle_duration, crd, ingress)

    @property
    def names(self) -> Tuple[str, ...]:
        """The active providers as ``/api/overview`` lists them."""
        names = []
        if self.crd is not None:
            names.append("KubernetesCRD")
        if self.ingress is not None:
            names.append("KubernetesIngress")
        if self.file is not None:
            names.append("File")
        if self.etcd is not None:
            names.append("Etcd")
        if self.redis is not None:
            names.append("Redis")
        return tuple(names)


def _file(fields: Fields, location: Location) -> FileProviderConfig:
    filename = fields.string("filename")
    directory = fields.string("directory")
    if bool(filename) == bool(directory):
        raise fields.whole("exactly one of filename or directory is required")
    config = FileProviderConfig(filename, directory, fields.boolean("watch", True), location)
    if fields.has("debugLogGeneratedTemplate"):
        raise fields.fail(
            "debugLogGeneratedTemplate", "Go templates are not supported (see docs/providers.md)"
        )
    fields.done()
    return config


def _crd(fields: Optional[Fields], location: Location) -> CRDProviderConfig:
    if fields is None:
        return CRDProviderConfig(location=location)
    selector_text = fields.string("labelSelector")
    try:
        selector = parse_label_selector(selector_text)
    except ValueError as exc:
        raise fields.fail("labelSelector", f"not a label selector: {exc}") from None
    config = CRDProviderConfig(
        allow_cross_namespace=fields.boolean("allowCrossNamespace", False),
        allow_external_name_services=fields.boolean("allowExternalNameServices", False),
        allow_empty_services=fields.boolean("allowEmptyServices", False),
        native_lb_by_default=fields.boolean("nativeLBByDefault", False),
        namespaces=fields.strings("namespaces"),
        label_selector=selector,
        label_selector_text=selector_text,
        ingress_class=fields.string("ingressClass"),
        throttle_duration=fields.duration("throttleDuration", 0.0),
        location=location,
        api=_api_server(fields),
    )
    fields.done({"disableClusterScopeResources": ""})
    return config


def _ingress(fields: Optional[Fields], location: Location) -> IngressProviderConfig:
    if fields is None:
        return IngressProviderConfig(location=location)
    try:
        selector = parse_label_selector(fields.string("labelSelector"))
    except ValueError as exc:
        raise fields.fail("labelSelector", f"not a label selector: {exc}") from None
    config = IngressProviderConfig(
        namespaces=fields.strings("namespaces"),
        label_selector=selector,
        ingress_class=fields.string("ingressClass"),
        allow_empty_services=fields.boolean("allowEmptyServices", False),
        allow_external_name_services=fields.boolean("allowExternalNameServices", False),
        native_lb_by_default=fields.boolean("nativeLBByDefault", False),
        throttle_duration=fields.duration("throttleDuration", 0.0),
        location=location,
        api=_api_server(fields),
    )
    for name in ("ingressEndpoint", "strictPrefixMatching", "disableIngressClassLookup"):
        if fields.has(name):
            raise fields.fail(name, "not supported yet")
    fields.done({"disableClusterScopeResources": ""})
    return config


def parse_providers(root: Fields, file: str) -> ProvidersConfig:
    """The ``providers`` section of ``root`` (defaults when absent)."""
    present, section = root.section("providers")
    if not present:
        return ProvidersConfig()
    if section is None:
        return ProvidersConfig(written=True, crd=None)
    for name in _OTHER_PROVIDERS:
        if section.has(name):
            raise section.fail(name, "this provider is not supported yet")
    file_fields = section.mapping("file")
    file_config = None
    if file_fields is not None:
        file_config = _file(file_fields, Location(file, section.line_of("file"), "providers.file"))
    crd_present, crd_fields = section.section("kubernetesCRD")
    crd = None
    if crd_present:
        crd_location = Location(file, section.line_of("kubernetesCRD"), "providers.kubernetesCRD")
        crd = _crd(crd_fields, crd_location)
    kv = {}
    for kind in ("etcd", "redis"):
        kv_present, kv_fields = section.section(kind)
        if kv_present:
            kv_location = Location(file, section.line_of(kind), f"providers.{kind}")
            kv[kind] = _kv(kind, kv_fields, kv_location)
    ingress = None
    ingress_present, ingress_fields = section.section("kubernetesIngress")
    if ingress_present:
        where = Location(file, section.line_of("kubernetesIngress"), "providers.kubernetesIngress")
        ingress = _ingress(ingress_fields, where)
    config = ProvidersConfig(
        written=True,
        throttle_duration=section.duration("providersThrottleDuration", 2.0),
        file=file_config,
        crd=crd,
        etcd=kv.get("etcd"),
        redis=kv.get("redis"),
        ingress=ingress,
    )
    section.done()
    return config
