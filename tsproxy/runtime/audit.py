"""The verdict on a loaded configuration: its table, plus what the loader and the build found,
plus the checks that look across resources (routers never reached, listeners that collide).

Shared by `tsproxy check` and by the running proxy's reloads. Pure: no Twisted, no I/O.
"""

from __future__ import annotations

from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple, Union

import attrs

from tsproxy.config.errors import ConfigError
from tsproxy.config.load import LoadedConfig
from tsproxy.config.static import EntryPoint
from tsproxy.rules.parse import And, Call, Node, Not
from tsproxy.rules.table import evaluation_order
from tsproxy.rules.tree import normalize
from tsproxy.runtime.build import build_table
from tsproxy.runtime.table import HTTPRouter, RoutingTable, TCPRouter

__all__ = [
    "Review",
    "https_option_conflicts",
    "port_conflicts",
    "review",
    "rule_shape",
    "tcp_routers_behind_http",
    "unreachable_routers",
]

Router = Union[HTTPRouter, TCPRouter]


@attrs.frozen
class Review:
    """A table (None without a static configuration) and every problem found on the way.

    ``errors`` keep a configuration from being applied by a reload; ``warnings`` and
    ``notices`` (things skipped or not supported yet, as full ``file:line: ...`` strings) do
    not.
    """

    table: Optional[RoutingTable]
    errors: Tuple[ConfigError, ...]
    warnings: Tuple[ConfigError, ...]
    notices: Tuple[str, ...]


def review(
    loaded: LoadedConfig, previous: Optional[RoutingTable] = None, reactor: Any = None
) -> Review:
    """Build ``loaded`` (keeping the nodes of ``previous`` whose definition is unchanged) and
    run the cross-resource checks on the result; ``reactor`` is handed to middleware steps
    that keep time or talk to servers."""
    built = build_table(loaded, previous, reactor)
    errors = list(loaded.errors) + list(built.errors)
    warnings = list(built.warnings)
    if loaded.static is not None:
        errors += port_conflicts(loaded.static.entrypoints)
    if built.table is not None:
        warnings += unreachable_routers(built.table.routers)
        warnings += unreachable_routers(built.table.tcp_routers)
        warnings += tcp_routers_behind_http(built.table)
        warnings += https_option_conflicts(built.table)
    return Review(built.table, tuple(errors), tuple(warnings), loaded.notices)


# Hosts that bind every address of a family; "::" also takes IPv4 (Linux's default dual stack).
_ANY_IPV4 = ("", "0.0.0.0")
_ANY = "::"


def _collide(a: str, b: str) -> bool:
    """Whether listeners on hosts ``a`` and ``b`` (same port and protocol) cannot coexist."""
    if a == b or _ANY in (a, b):
        return True
    ipv4 = ":" not in a and ":" not in b
    return ipv4 and (a in _ANY_IPV4 or b in _ANY_IPV4)


def port_conflicts(entrypoints: Sequence[EntryPoint]) -> List[ConfigError]:
    """Entrypoints whose listener would collide with an earlier one's: the same port and
    protocol on the same address, or on an address a wildcard (``:80``, ``[::]:80``) takes."""
    errors = []
    for index, entrypoint in enumerate(entrypoints):
        if entrypoint.port == 0:
            continue
        for earlier in entrypoints[:index]:
            if (
                earlier.port == entrypoint.port
                and earlier.protocol == entrypoint.protocol
                and _collide(earlier.host, entrypoint.host)
            ):
                message = (
                    f"port {entrypoint.port}/{entrypoint.protocol} is already taken by"
                    f" entrypoint {earlier.name} ({earlier.location})"
                )
                errors.append(entrypoint.location.error(message))
                break
    return errors


def rule_shape(node: Node) -> Hashable:
    """A value equal for rules that are the same up to spacing, the order of ``&&`` and ``||``
    operands, their grouping, and where ``!`` is written."""
    return _shape(normalize(node))


def _shape(node: Node) -> Hashable:
    if isinstance(node, Call):
        return ("call", node.name, node.args)
    if isinstance(node, Not):
        return ("not", _shape(node.operand))
    kind = "and" if isinstance(node, And) else "or"
    parts = set()
    for operand in node.operands:
        shape = _shape(operand)
        if isinstance(shape, tuple) and shape[0] == kind:
            parts.update(shape[1])  # (a && b) && c is a && b && c
        else:
            parts.add(shape)
    return (kind, frozenset(parts))


def unreachable_routers(routers: Sequence[Router]) -> List[ConfigError]:
    """Routers that can never take a request (or connection): on each of their entrypoints a
    router tried before them (higher priority, or the same priority and a smaller name) has
    the same rule. Give HTTP routers or TCP routers, not both at once: each kind has its own
    router sets, split by whether they take TLS.

    Such a pair usually means a route copied into a second IngressRoute and left behind.
    """
    # (entrypoint, takes TLS) -> rule shape -> the first router with that rule there.
    first: Dict[Tuple[str, bool], Dict[Hashable, Router]] = {}
    # id(router) -> the router tried first with the same rule, for each of its entrypoints.
    shadowed: Dict[int, Dict[str, Router]] = {}
    entries = [(r.name, None, r.priority, r) for r in routers]
    for _, _, _, router in evaluation_order(entries):
        assert isinstance(router, (HTTPRouter, TCPRouter))
        shape = (router.syntax, rule_shape(router.matcher.tree))
        for entrypoint in router.entrypoints:
            winner = first.setdefault((entrypoint, router.tls is not None), {}).setdefault(
                shape, router
            )
            if winner is not router:
                shadowed.setdefault(id(router), {})[entrypoint] = winner
    errors = []
    for router in routers:
        winners = shadowed.get(id(router), {})
        if not winners or set(winners) != set(router.entrypoints):
            continue  # reachable on at least one entrypoint
        by_winner: Dict[int, List[str]] = {}
        for entrypoint, winner in winners.items():
            by_winner.setdefault(id(winner), []).append(entrypoint)
        reasons = []
        for entrypoint_names in by_winner.values():
            winner = winners[entrypoint_names[0]]
            label = f" ({winner.source.resource})" if winner.source.resource else ""
            reasons.append(
                f"never reached on entrypoint {', '.join(entrypoint_names)}: the route at"
                f" {winner.source}{label} has the same rule and is tried first"
            )
        errors.append(router.source.error(f"match {router.rule}: " + "; ".join(reasons)))
    return errors


def _where(router: Router) -> str:
    label = f" ({router.source.resource})" if router.source.resource else ""
    return f"{router.source}{label}"


def tcp_routers_behind_http(table: RoutingTable) -> List[ConfigError]:
    """Plain (non-TLS) TCP routers that never get a connection: every entrypoint of theirs
    also has HTTP routers, and there tsproxy gives non-TLS connections to the HTTP routers
    (Traefik would give them to the TCP router, HTTP requests included)."""
    warnings = []
    for router in table.tcp_routers:
        if router.tls is not None:
            continue
        blocking = [table.http_routers(name) for name in router.entrypoints]
        if not router.entrypoints or not all(blocking):
            continue
        names = ", ".join(router.entrypoints)
        message = (
            f"match {router.rule}: never gets a connection: non-TLS connections on entrypoint"
            f" {names} go to the HTTP routers there (like the route at {_where(blocking[0][0])});"
            " give this route an entrypoint without HTTP routers, or TLS"
        )
        warnings.append(router.source.error(message))
    return warnings


def https_option_conflicts(table: RoutingTable) -> List[ConfigError]:
    """HTTPS routers of one host naming different TLS options: the host gets the default
    options instead, as in Traefik. One warning per router, naming the others."""
    warnings = []
    seen = set()
    for entrypoint in table.static.entrypoints:
        routing = table.entrypoint_tcp(entrypoint.name)
        if routing is None:
            continue
        for host, routers in routing.option_conflicts.items():
            for router in routers:
                assert isinstance(router, HTTPRouter)
                if (host, id(router)) in seen:
                    continue
                seen.add((host, id(router)))
                others = "; ".join(
                    _where(other)
                    for other in routers
                    if isinstance(other, HTTPRouter) and other is not router
                )
                message = (
                    f"match {router.rule}: host {host} has HTTPS routes with different TLS"
                    f" options ({others}): it gets the default TLS options"
                )
                warnings.append(router.source.error(message))
    return warnings
