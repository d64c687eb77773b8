"""The values the file provider's format is read into (tsproxy/config/fileformat.py reads
them): ``http`` routers, services, serversTransports and middlewares, ``tcp``/``udp`` routers
and services, and ``tls`` as Secrets and TLSOptions. Frozen, pure.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import attrs

from tsproxy.balance.health import HealthCheckSpec, PassiveHealthSpec
from tsproxy.config.errors import Location
from tsproxy.config.resources import CookieSpec, Resource, RouteTLS, TransportSettings

__all__ = [
    "FILE_SECRETS",
    "FileAddress",
    "FileChild",
    "FileConfiguration",
    "FileFailover",
    "FileL4Service",
    "FileLoadBalancer",
    "FileMiddleware",
    "FileMirroring",
    "FileRouter",
    "FileServer",
    "FileService",
    "FileTCPTransport",
    "FileTLS",
    "FileTransport",
    "FileWeighted",
    "SecretKey",
]


@attrs.frozen
class FileServer:
    """``servers[i].url`` of a load balancer; ``line``/``path`` locate it. ``weight`` None:
    not written; ``preserve_path``: requests go under the URL's path."""

    url: str
    line: int
    path: str
    weight: Optional[int] = None
    preserve_path: bool = False


@attrs.frozen
class FileLoadBalancer:
    servers: Tuple[FileServer, ...]
    pass_host_header: bool = True
    sticky: Optional[CookieSpec] = None
    servers_transport: str = ""
    health_check: Optional[HealthCheckSpec] = None
    passive: Optional[PassiveHealthSpec] = None
    strategy: str = "wrr"


@attrs.frozen
class FileChild:
    """A child of a weighted service (``amount`` its weight) or a mirror (its percent)."""

    name: str
    amount: int
    line: int
    path: str


@attrs.frozen
class FileWeighted:
    services: Tuple[FileChild, ...]
    sticky: Optional[CookieSpec] = None
    #: ``healthCheck: {}``: children that are down are skipped (each must report a status).
    health_check: bool = False


@attrs.frozen
class FileMirroring:
    service: str
    line: int
    mirrors: Tuple[FileChild, ...] = ()
    max_body_size: int = -1
    mirror_body: bool = True
    #: ``healthCheck: {}``: the main service must report a status.
    health_check: bool = False


@attrs.frozen
class FileFailover:
    """``failover``: ``service`` while it is up (it must report a status), else
    ``fallback`` (which must too with ``healthCheck: {}``)."""

    service: str
    fallback: str
    line: int
    health_check: bool = False


@attrs.frozen
class FileService:
    """One of ``http.services``: exactly one of the five kinds is set
    (``highest_random_weight`` is a FileWeighted without sticky)."""

    name: str
    location: Location
    load_balancer: Optional[FileLoadBalancer] = None
    weighted: Optional[FileWeighted] = None
    mirroring: Optional[FileMirroring] = None
    failover: Optional[FileFailover] = None
    highest_random_weight: Optional[FileWeighted] = None


@attrs.frozen
class FileRouter:
    """One of ``http.routers``. ``service`` and ``middlewares`` as written (``x`` or
    ``x@provider``); ``tls`` None for a plain HTTP router."""

    name: str
    location: Location
    rule: str
    service: str
    entry_points: Tuple[str, ...] = ()
    priority: int = 0
    syntax: str = ""
    middlewares: Tuple[str, ...] = ()
    tls: Optional[RouteTLS] = None


@attrs.frozen
class FileTransport:
    name: str
    location: Location
    settings: TransportSettings = TransportSettings()


@attrs.frozen
class FileMiddleware:
    """One of ``http.middlewares`` (or ``tcp.middlewares``): its kind (``stripPrefix``...)
    and the kind's parsed spec."""

    name: str
    location: Location
    kind: str
    spec: Any


#: The namespace of the Secrets made of the file provider's certificates.
FILE_SECRETS = "@file"
SecretKey = Tuple[str, str, Location]


@attrs.frozen
class FileTLS:
    """``tls``: ``resources`` are Secrets (one per certificate) and TLSOptions (named
    ``x@file``, or ``default``); ``certificates`` the Secrets served by SNI;
    ``default_certificate`` the default store's, if any."""

    resources: Tuple[Resource, ...] = ()
    certificates: Tuple[SecretKey, ...] = ()
    default_certificate: Optional[SecretKey] = None


@attrs.frozen
class FileAddress:
    """``servers[i].address`` of a TCP or UDP load balancer (``tls``: a TCP server dialled
    with TLS)."""

    host: str
    port: int
    line: int
    path: str
    tls: bool = False


@attrs.frozen
class FileL4Service:
    """One of ``tcp.services`` or ``udp.services``: ``servers`` (a load balancer, with the
    TCP-only ``proxy_protocol`` version and ``termination_delay`` in ms) or ``weighted``."""

    name: str
    location: Location
    servers: Tuple[FileAddress, ...] = ()
    proxy_protocol: int = 0
    termination_delay: int = 100
    weighted: Optional[Tuple[FileChild, ...]] = None
    #: The TCP servers transport the load balancer names ("": the default one).
    servers_transport: str = ""


@attrs.frozen
class FileTCPTransport:
    """One of ``tcp.serversTransports``: a TCPTransportSettings (tsproxy.config.transports)
    with its TLS files read."""

    name: str
    location: Location
    settings: Any


@attrs.frozen
class FileConfiguration:
    """What the file provider read, every section keyed by name in file order."""

    routers: Tuple[FileRouter, ...] = ()
    services: Tuple[FileService, ...] = ()
    transports: Tuple[FileTransport, ...] = ()
    middlewares: Tuple[FileMiddleware, ...] = ()
    tls: FileTLS = FileTLS()
    tcp_routers: Tuple[FileRouter, ...] = ()
    tcp_services: Tuple[FileL4Service, ...] = ()
    #: ``tcp.middlewares`` (their kinds: tsproxy.middlewares.registry.tcp_kinds()).
    tcp_middlewares: Tuple[FileMiddleware, ...] = ()
    udp_routers: Tuple[FileRouter, ...] = ()
    udp_services: Tuple[FileL4Service, ...] = ()
    tcp_transports: Tuple[FileTCPTransport, ...] = ()
