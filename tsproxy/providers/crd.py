"""The Kubernetes CRD provider read from files: which resources it sees under its options
(``namespaces``, ``labelSelector``, ``ingressClass``), as Traefik's watches would.

Pure. The options that shape references (allowCrossNamespace, allowExternalNameServices,
allowEmptyServices, nativeLB) act where references are resolved (tsproxy/runtime/endpoints.py
and tsproxy/runtime/build.py).
"""

from __future__ import annotations

from tsproxy.config.providers import CRDProviderConfig, selector_matches
from tsproxy.config.resources import (
    IngressRoute,
    IngressRouteTCP,
    IngressRouteUDP,
    Resource,
    ServersTransport,
    TLSOption,
    TLSStore,
    TraefikService,
)
from tsproxy.config.transports_tcp import ServersTransportTCP

__all__ = ["INGRESS_CLASS_ANNOTATION", "visible"]

INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
_TRAEFIK_KINDS = (
    IngressRoute,
    IngressRouteTCP,
    IngressRouteUDP,
    TLSOption,
    TLSStore,
    TraefikService,
    ServersTransport,
    ServersTransportTCP,
)
_ROUTES = (IngressRoute, IngressRouteTCP, IngressRouteUDP)


def visible(resource: Resource, options: CRDProviderConfig) -> bool:
    """Whether the provider reads ``resource``: in a watched namespace; a Traefik resource
    matching the label selector; a route of the configured ingress class."""
    meta = resource.meta
    if options.namespaces and meta.namespace not in options.namespaces:
        return False
    if isinstance(resource, _TRAEFIK_KINDS) and options.label_selector:
        if not selector_matches(options.label_selector, dict(meta.labels)):
            return False
    if isinstance(resource, _ROUTES) and options.ingress_class:
        if dict(meta.annotations).get(INGRESS_CLASS_ANNOTATION, "") != options.ingress_class:
            return False
    return True
