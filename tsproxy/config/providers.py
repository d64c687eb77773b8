"""The ``providers`` section of the static configuration: which providers run, with their
options and Traefik's defaults.

Pure: reads located fields, raises FieldError. The Kubernetes CRD provider reads its resources
from the configuration directory; the options that only mean something against an API server
(``endpoint``, ``token``, ``certAuthFilePath``) are errors until that mode exists.
"""

from __future__ import annotations

import re
from typing import Mapping, Optional, Tuple

import attrs

from tsproxy.config.errors import Location
from tsproxy.config.schema import Fields

__all__ = [
    "CRDProviderConfig",
    "FileProviderConfig",
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
    "kubernetesIngress",
    "kubernetesIngressNGINX",
    "kubernetesGateway",
    "consulCatalog",
    "nomad",
    "ecs",
    "consul",
    "etcd",
    "zooKeeper",
    "redis",
    "http",
    "plugin",
)
_API_SERVER_OPTIONS = ("endpoint", "token", "certAuthFilePath")


@attrs.frozen
class FileProviderConfig:
    """``providers.file``: exactly one of ``filename`` and ``directory`` (relative paths are
    relative to the configuration directory); ``watch`` (Traefik's default: on) reloads on
    changes."""

    filename: str = ""
    directory: str = ""
    watch: bool = True
    location: Location = Location("", 1)


# A requirement of a label selector: (key, operator, values); operators are Kubernetes':
# "=", "!=", "in", "notin", "exists", "!".
Requirement = Tuple[str, str, Tuple[str, ...]]
LabelSelector = Tuple[Requirement, ...]

_SELECTOR_SET = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_SELECTOR_EQ = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)\s*$")


def parse_label_selector(text: str) -> LabelSelector:
    """A Kubernetes label selector (``app=web,tier!=db,env in (a,b),!legacy``); ValueError
    says which requirement is wrong."""
    requirements = []
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


@attrs.frozen
class ProvidersConfig:
    """``providers``. ``written`` is False when the static configuration has no ``providers``
    section: then the Kubernetes CRD provider reads the configuration directory with its
    defaults, as tsproxy always did; with a section, only the providers it names run."""

    written: bool = False
    throttle_duration: float = 2.0
    file: Optional[FileProviderConfig] = None
    crd: Optional[CRDProviderConfig] = CRDProviderConfig()

    @property
    def reload_throttle(self) -> float:
        """Seconds between two watcher reloads: providersThrottleDuration (or the CRD
        provider's throttleDuration, the longer) with a ``providers`` section, else none."""
        if not self.written:
            return 0.0
        crd = self.crd.throttle_duration if self.crd is not None else 0.0
        return max(self.throttle_duration, crd)

    @property
    def names(self) -> Tuple[str, ...]:
        """The active providers as ``/api/overview`` lists them."""
        names = []
        if self.crd is not None:
            names.append("KubernetesCRD")
        if self.file is not None:
            names.append("File")
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
    for name in _API_SERVER_OPTIONS:
        if fields.has(name):
            raise fields.fail(
                name,
                "reading resources from a Kubernetes API server is not supported yet: the "
                "provider reads the configuration directory",
            )
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
    )
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
    config = ProvidersConfig(
        written=True,
        throttle_duration=section.duration("providersThrottleDuration", 2.0),
        file=file_config,
        crd=crd,
    )
    section.done()
    return config
