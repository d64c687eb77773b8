"""Traefik's TCP middlewares (MiddlewareTCP): ipAllowList (and its old name ipWhiteList) and
inFlightConn. Each decides, before the backend is dialled, whether a connection goes on.

A step's ``admit(client_ip)`` returns None to refuse (the connection is closed without a
byte) or a release function to call once the connection is over. Pure: no Twisted here.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, cast

import attrs

from tsproxy.config.schema import Fields
from tsproxy.middlewares.base import MiddlewareKind
from tsproxy.rules.ipcheck import IPChecker, build_checker, parse_ip

__all__ = ["KINDS", "InFlightConn", "IPAllowListTCP", "Release", "admit"]

Release = Callable[[], None]


def _nothing() -> None:
    """Nothing to release."""


@attrs.frozen
class IPAllowSpec:
    source_range: Tuple[str, ...]


def parse_ip_allow_list(fields: Fields) -> IPAllowSpec:
    """``sourceRange``: IPs or CIDRs, at least one, as Traefik's TCP IPAllowLister wants."""
    ranges = fields.strings("sourceRange")
    fields.done()
    if not ranges:
        raise fields.fail("sourceRange", "sourceRange is empty, IPAllowLister not created")
    checker, bad = build_checker(ranges)
    if checker is None:
        raise fields.fail("sourceRange", f"cannot parse CIDRs: {bad!r} is neither IP nor CIDR")
    return IPAllowSpec(ranges)


@attrs.define(eq=False)
class IPAllowListTCP:
    """Lets a connection through when its remote address is in ``sourceRange``."""

    name: str
    checker: IPChecker

    def admit(self, client_ip: str) -> Optional[Release]:
        return _nothing if self.checker.contains(parse_ip(client_ip)) else None


def build_ip_allow_list(spec: IPAllowSpec, name: str, context: Any) -> IPAllowListTCP:
    checker, _ = build_checker(spec.source_range)
    assert checker is not None  # parse checked it
    return IPAllowListTCP(name, checker)


@attrs.frozen
class InFlightConnSpec:
    amount: int


def parse_in_flight_conn(fields: Fields) -> InFlightConnSpec:
    """``amount``: simultaneous connections per client IP (0, the default, refuses all)."""
    spec = InFlightConnSpec(fields.integer("amount", 0, minimum=0))
    fields.done()
    return spec


@attrs.define(eq=False)
class InFlightConn:
    """At most ``amount`` open connections per client IP; the port does not count."""

    name: str
    amount: int
    open: Dict[str, int] = attrs.Factory(dict)

    def admit(self, client_ip: str) -> Optional[Release]:
        if not client_ip:
            return None
        count = self.open.get(client_ip, 0)
        if count >= self.amount:
            return None
        self.open[client_ip] = count + 1
        released: List[bool] = []

        def release() -> None:
            if released:
                return
            released.append(True)
            left = self.open.get(client_ip, 1) - 1
            if left > 0:
                self.open[client_ip] = left
            else:
                self.open.pop(client_ip, None)

        return release


def build_in_flight_conn(spec: InFlightConnSpec, name: str, context: Any) -> InFlightConn:
    return InFlightConn(name, spec.amount)


def admit(chain: Sequence[Tuple[str, Any]], client_ip: str) -> Optional[List[Release]]:
    """Run a TCP router's steps for a new connection from ``client_ip``: None if one
    refuses it (what the earlier ones took is given back), else what to release at its end."""
    releases: List[Release] = []
    for _, step in chain:
        release = step.admit(client_ip)
        if release is None:
            for taken in releases:
                taken()
            return None
        releases.append(release)
    return releases


# TCP steps admit connections instead of handling request heads: same registry, own shape.
KINDS = (
    MiddlewareKind("ipAllowList", parse_ip_allow_list, cast(Any, build_ip_allow_list)),
    MiddlewareKind("ipWhiteList", parse_ip_allow_list, cast(Any, build_ip_allow_list)),
    MiddlewareKind("inFlightConn", parse_in_flight_conn, cast(Any, build_in_flight_conn)),
)
