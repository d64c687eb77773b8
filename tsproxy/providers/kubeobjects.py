"""Objects read from the Kubernetes API server as the providers' input: the same resources
(and Ingress documents) the configuration directory's YAML files give.

Pure. An object that does not parse is an error at ``kubernetes-api`` and its kind,
namespace and name (API objects have no lines).
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, Iterable, List, Sequence, Tuple

import attrs

from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.kinds import parse_document
from tsproxy.config.providers import CRDProviderConfig, IngressProviderConfig
from tsproxy.config.resources import Resource
from tsproxy.config.yamlio import Document
from tsproxy.providers.crd import visible
from tsproxy.providers.ingress import INGRESS, IngressDocument, as_yaml, ingress_configuration

__all__ = ["API_SOURCE", "api_resources", "config_map_references", "with_api_ingress"]

#: What errors about API objects name instead of a file.
API_SOURCE = "kubernetes-api"


def _label(item: Dict[str, Any]) -> str:
    meta = item.get("metadata") or {}
    return f"{item.get('kind', '')} {meta.get('namespace', 'default')}/{meta.get('name', '')}"


def config_map_references(objects: Iterable[Dict[str, Any]]) -> FrozenSet[Tuple[str, str]]:
    """The (namespace, name) of every ConfigMap a ServersTransport's ``rootCAs`` (or a
    ServersTransportTCP's ``tls.rootCAs``) names, in the transport's namespace: the only
    ConfigMaps a configuration reads. Malformed entries are skipped here; parsing reports
    them."""
    found = set()
    for item in objects:
        spec = item.get("spec")
        if item.get("kind") == "ServersTransportTCP" and isinstance(spec, dict):
            spec = spec.get("tls")
        elif item.get("kind") != "ServersTransport":
            continue
        roots = spec.get("rootCAs") if isinstance(spec, dict) else None
        namespace = str((item.get("metadata") or {}).get("namespace") or "default")
        for entry in roots if isinstance(roots, list) else ():
            name = entry.get("configMap") if isinstance(entry, dict) else None
            if isinstance(name, str):
                found.add((namespace, name))
    return frozenset(found)


def api_resources(
    objects: Sequence[Dict[str, Any]], options: CRDProviderConfig
) -> Tuple[Tuple[Resource, ...], Tuple[ConfigError, ...], Tuple[str, ...]]:
    """The resources of ``objects`` the CRD provider sees under its options."""
    resources: List[Resource] = []
    errors: List[ConfigError] = []
    notices: List[str] = []
    for item in objects:
        parsed = parse_document(Document(0, 0, as_yaml(item)), API_SOURCE)
        notices.extend(parsed.notices)
        if parsed.error is not None:
            errors.append(parsed.error)
        if parsed.resource is not None and visible(parsed.resource, options):
            resources.append(parsed.resource)
    return tuple(resources), tuple(errors), tuple(notices)


def with_api_ingress(
    loaded: Any, objects: Sequence[Dict[str, Any]], options: IngressProviderConfig
) -> Any:
    """``loaded`` with the kubernetesIngress provider's configuration made of ``objects``."""
    documents = [
        IngressDocument(as_yaml(item), Location(API_SOURCE, 0, _label(item)))
        for item in objects
        if item.get("kind") in ("Ingress", "IngressClass")
    ]
    resources, errors, notices = api_resources(
        [item for item in objects if item.get("kind") not in ("Ingress", "IngressClass")],
        CRDProviderConfig(),
    )
    config, ingress_errors, ingress_notices = ingress_configuration(documents, resources, options)
    kv = tuple(entry for entry in loaded.kv if entry[0] != INGRESS) + ((INGRESS, config),)
    return attrs.evolve(
        loaded,
        kv=kv,
        errors=loaded.errors + errors + ingress_errors,
        notices=loaded.notices + notices + ingress_notices,
    )
