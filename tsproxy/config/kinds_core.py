"""Kinds reading, core Kubernetes kinds (Service, Node, Endpoints, EndpointSlice, ConfigMap),
read leniently: we use a small part of them."""

from __future__ import annotations

import base64
import binascii
from typing import Optional

import attrs

from tsproxy.config.kinds_services import (
    _spec,
)
from tsproxy.config.resources import (
    EndpointPort,
    Endpoints,
    EndpointSlice,
    EndpointSubset,
    Meta,
    Node,
    Service,
    ServicePort,
    SliceEndpoint,
)
from tsproxy.config.schema import FieldError, Fields

_SERVICE_LABEL = "kubernetes.io/service-name"


@attrs.frozen
class ConfigMap:
    """A core v1 ConfigMap: its ``data`` (text) and ``binaryData`` (base64) entries. (Here,
    not in tsproxy.config.resources, which is at its size limit.)"""

    meta: Meta
    data: tuple[tuple[str, bytes], ...] = ()

    def get(self, key: str) -> Optional[bytes]:
        for name, value in self.data:
            if name == key:
                return value
        return None


def parse_config_map(root: Fields, meta: Meta) -> ConfigMap:
    """A ConfigMap (what a ServersTransport's ``rootCAs[].configMap`` names), leniently: an
    entry that is not text (``data``) or base64 (``binaryData``) is left out, so unrelated
    ConfigMaps in the same files never become errors (a CA left out is an error where a
    ServersTransport needs it)."""
    data: dict[str, bytes] = {}
    for key in ("data", "binaryData"):
        section = root.data.get(key)
        for name, value in section.items() if isinstance(section, dict) else ():
            if not isinstance(name, str) or not isinstance(value, str):
                continue
            if key == "data":
                data[name] = value.encode("utf-8")
                continue
            try:
                data[name] = base64.b64decode(value.encode("ascii"), validate=True)
            except (ValueError, binascii.Error):
                continue
    root.done([name for name in root.data if isinstance(name, str)])
    return ConfigMap(meta, tuple(data.items()))


def _endpoint_ports(fields: Fields, key: str) -> tuple[EndpointPort, ...]:
    ports = []
    for item in fields.mappings(key):
        port = item.integer("port", 0, minimum=1, maximum=65535)
        if port:  # EndpointSlice ports may leave the number out: such a port is unusable
            ports.append(EndpointPort(port, item.string("name"), item.string("protocol", "TCP")))
    return tuple(ports)


def parse_service(root: Fields, meta: Meta) -> Service:
    spec = _spec(root)
    service_type = spec.string("type", "ClusterIP")
    ports = []
    for item in spec.mappings("ports"):
        if not item.has("port"):
            raise item.fail("port", "is required")
        ports.append(
            ServicePort(
                port=item.integer("port", 0, minimum=1, maximum=65535),
                name=item.string("name"),
                target_port=item.port("targetPort"),
                protocol=item.string("protocol", "TCP"),
                node_port=item.integer("nodePort", 0, minimum=0, maximum=65535),
            )
        )
    external_name = spec.string("externalName")
    if service_type == "ExternalName" and not external_name:
        raise spec.fail("externalName", "is required for type ExternalName")
    cluster_ip = spec.string("clusterIP")
    return Service(meta, tuple(ports), service_type, external_name, cluster_ip)


def parse_node(root: Fields, meta: Meta) -> Node:
    """A core v1 Node: its InternalIP addresses (what nodePortLB sends to)."""
    status = root.mapping("status")
    addresses = []
    for item in status.mappings("addresses") if status is not None else ():
        if item.string("type") == "InternalIP":
            addresses.append(item.string("address", required=True))
    return Node(meta, tuple(addresses))


def parse_endpoints(root: Fields, meta: Meta) -> Endpoints:
    subsets = []
    for subset in root.mappings("subsets"):
        addresses = tuple(item.string("ip", required=True) for item in subset.mappings("addresses"))
        subsets.append(EndpointSubset(addresses, _endpoint_ports(subset, "ports")))
    return Endpoints(meta, tuple(subsets))


def parse_endpoint_slice(root: Fields, meta: Meta) -> EndpointSlice:
    metadata = root.mapping("metadata")
    labels = metadata.mapping("labels") if metadata is not None else None
    service_name = labels.string(_SERVICE_LABEL) if labels is not None else ""
    if not service_name:
        line = labels.line if labels is not None else meta.location.line
        raise FieldError(line, f"metadata.labels.{_SERVICE_LABEL}", "is required")
    endpoints = []
    for item in root.mappings("endpoints"):
        conditions = item.mapping("conditions")
        ready = conditions.boolean("ready", True) if conditions is not None else True
        endpoints.append(SliceEndpoint(item.strings("addresses"), ready))
    return EndpointSlice(
        meta=meta,
        service_name=service_name,
        ports=_endpoint_ports(root, "ports"),
        endpoints=tuple(endpoints),
        address_type=root.string("addressType", "IPv4"),
    )
