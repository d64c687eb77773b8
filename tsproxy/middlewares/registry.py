"""Every middleware kind tsproxy implements, by Traefik's configuration key.

Each implementation module exposes ``KINDS``, a tuple of `MiddlewareKind`; a kind that is
not here is not implemented, and a router naming a middleware of that kind is disabled.
"""

from __future__ import annotations

import importlib
from typing import Dict

from tsproxy.middlewares.base import MiddlewareKind

__all__ = ["http_kinds", "tcp_kinds"]

#: The implementation modules under tsproxy.middlewares, one line each.
_MODULES: tuple[str, ...] = (
    "basicauth",
    "digestauth",
    "forwardauth",
    "ipallowlist",
    "passtls",
    "paths",
    "redirect",
    "headers",
    "content",
    "ratelimit",
    "inflight",
    "circuitbreaker",
    "compress",
    "retry",
    "errorpage",
    "buffering",
    "grpcweb",
)
#: The TCP (MiddlewareTCP) implementation modules, exposing ``KINDS`` the same way.
_TCP_MODULES: tuple[str, ...] = ("tcp",)
#: Kinds added at run time, by key; for tests only (their own small kinds).
EXTRA_HTTP: Dict[str, MiddlewareKind] = {}


def http_kinds() -> Dict[str, MiddlewareKind]:
    """The implemented HTTP middleware kinds, by their key (``stripPrefix``…)."""
    kinds: Dict[str, MiddlewareKind] = {}
    for module in _MODULES:
        for kind in importlib.import_module(f"tsproxy.middlewares.{module}").KINDS:
            kinds[kind.name] = kind
    kinds.update(EXTRA_HTTP)
    return kinds


def tcp_kinds() -> Dict[str, MiddlewareKind]:
    """The implemented TCP middleware kinds (``ipAllowList``, ``inFlightConn``)."""
    kinds: Dict[str, MiddlewareKind] = {}
    for module in _TCP_MODULES:
        for kind in importlib.import_module(f"tsproxy.middlewares.{module}").KINDS:
            kinds[kind.name] = kind
    return kinds
