"""What a build left out or built with problems, as plain values for the API: routers and
TraefikServices that failed (Traefik's "disabled" ones) and routers with warnings.

Only read by the API; nothing here takes part in routing.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import attrs

from tsproxy.config.errors import Location
from tsproxy.config.resources import RouteTLS

__all__ = [
    "HTTP",
    "TCP",
    "UDP",
    "FailedRouter",
    "FailedService",
    "RouterWarning",
    "failed_route",
]

HTTP, TCP, UDP = "http", "tcp", "udp"


@attrs.frozen
class FailedRouter:
    """A route dropped because of an error, under the router name Traefik gives it.

    ``protocol`` is ``http``, ``tcp`` or ``udp``; ``entrypoints`` as the resource lists them;
    ``using`` those of them that exist and speak the router's protocol (Traefik fills its
    ``using`` before it builds anything); ``priority`` as written (0: the default);
    ``service`` the name of the service the router would use (the router key for its own
    services, the TraefikService's name otherwise); ``errors`` the messages of the located
    errors that sank it, without their location.
    """

    protocol: str
    name: str
    entrypoints: Tuple[str, ...]
    using: Tuple[str, ...]
    rule: str
    priority: int
    service: str
    errors: Tuple[str, ...]
    source: Location
    syntax: str = ""
    tls: Optional[RouteTLS] = None
    #: The middlewares the router names, qualified (Traefik's API lists them).
    middlewares: Tuple[str, ...] = ()


def failed_route(
    protocol: str,
    ingress: Any,
    route: Any,
    key: str,
    using: Tuple[str, ...],
    service: str,
    errors: Tuple[str, ...],
) -> FailedRouter:
    """The FailedRouter of an IngressRoute or IngressRouteTCP ``route`` (its ``match``,
    ``priority``, ``syntax``, ``line``) named ``key``."""
    return FailedRouter(
        protocol=protocol,
        name=key,
        entrypoints=ingress.entry_points or using,
        using=using,
        rule=route.match,
        priority=route.priority,
        service=service,
        errors=errors,
        source=ingress.meta.location.at(route.line),
        syntax=route.syntax,
        tls=ingress.tls,
    )


def disabled_router(router: Any, message: str) -> FailedRouter:
    """The FailedRouter of a built HTTP router (tsproxy.runtime.table.HTTPRouter) disabled
    for ``message`` after it was built."""
    written = router.priority
    if written == getattr(router.matcher, "default_priority", None):
        written = 0  # as written: 0 is the rule's default
    return FailedRouter(
        protocol=HTTP,
        name=router.name,
        entrypoints=router.entrypoints,
        using=router.entrypoints,
        rule=router.rule,
        priority=written,
        service=router.service.name,
        errors=(message,),
        source=router.source,
        syntax=router.syntax,
        tls=router.tls,
        middlewares=router.middlewares,
    )


@attrs.frozen
class FailedService:
    """A TraefikService that failed to build (reference cycle, missing child, ...).

    ``kind`` is ``weighted`` (``children``: (service, weight) pairs) or ``mirroring``
    (``main`` and ``children``: (mirror, percent) pairs, ``max_body_size``, ``mirror_body``).
    """

    name: str
    kind: str
    children: Tuple[Tuple[str, int], ...]
    errors: Tuple[str, ...]
    source: Location
    main: str = ""
    max_body_size: int = -1
    mirror_body: bool = True


@attrs.frozen
class RouterWarning:
    """A router that was built, but not everything its resource asked for could be honoured
    (an entrypoint it lists is unknown or of the other protocol): Traefik's "warning" status.

    ``entrypoints`` as the resource lists them; the router itself has the usable ones.
    """

    protocol: str
    name: str
    entrypoints: Tuple[str, ...]
    errors: Tuple[str, ...]
