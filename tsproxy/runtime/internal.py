"""Traefik's internal services as route targets: ``noop@internal`` (the service of a
redirect-only route; a request reaching it gets 418 and no body, as Traefik answers),
``api@internal``, ``dashboard@internal``, ``ping@internal`` and ``prometheus@internal``
(the same handlers tsproxy/api/internal.py serves on the traefik entrypoint).

Pure values; the HTTP server answers a router whose service is one of these itself.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import attrs

__all__ = ["INTERNAL_SERVICES", "InternalService", "InternalServiceDef", "internal_problem"]

#: Internal service name -> what tsproxy.api.internal.InternalEndpoints serves for it ("" for
#: noop, which answers 418 itself).
INTERNAL_SERVICES = {
    "noop@internal": "",
    "api@internal": "api",
    "dashboard@internal": "dashboard",
    "ping@internal": "ping",
    "prometheus@internal": "metrics",
}
#: The status Traefik's noop handler writes.
NOOP_STATUS = 418


@attrs.frozen(cache_hash=True)
class InternalServiceDef:
    name: str


@attrs.define(eq=False)
class InternalService:
    """The node of an internal service in a routing table."""

    definition: InternalServiceDef

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def serves(self) -> str:
        return INTERNAL_SERVICES[self.definition.name]


def internal_problem(name: str, static: Any) -> Optional[str]:
    """Why ``name`` (an ``@internal`` service) cannot be a router's service here, or None."""
    if name not in INTERNAL_SERVICES:
        known = ", ".join(sorted(INTERNAL_SERVICES))
        return f"service {name} does not exist (internal services: {known})"
    needs: Tuple[str, bool] = {
        "api@internal": ("api", static.api is not None),
        "dashboard@internal": ("api", static.api is not None and static.api.dashboard),
        "ping@internal": ("ping", static.ping is not None),
        "prometheus@internal": ("metrics.prometheus", static.prometheus is not None),
    }.get(name, ("", True))
    if not needs[1]:
        return f"service {name} does not exist: the static configuration has no {needs[0]}"
    return None
