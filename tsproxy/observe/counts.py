"""What the dashboard counts since start: per service, per parent and child, per entrypoint.

A child shared by several parents (app-v1 under the canary, the cookie service and the
mirror) is counted under each parent for what that parent sent it, so a parent's live
shares compare with its configured weights. Kept whether or not Prometheus is on. Pure.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Sequence, Tuple

__all__ = ["DashboardCounts"]


class DashboardCounts:
    """Requests and 5xx per service and per (parent, child) edge; requests and unrouted per
    entrypoint; mirrored copies per mirroring service; TCP connections and UDP sessions per
    service and edge. Names are as the table has them (unqualified)."""

    def __init__(self) -> None:
        self.services: Dict[str, List[int]] = {}
        self.edges: Dict[Tuple[str, str], List[int]] = {}
        self.entrypoints: Dict[str, List[int]] = {}
        self.mirrored: Dict[str, List[int]] = {}
        self.sessions: Dict[str, Dict[str, int]] = {"tcp": {}, "udp": {}}
        self.session_edges: Dict[str, Dict[Tuple[str, str], int]] = {"tcp": {}, "udp": {}}

    def exchange(self, entrypoint: str, routed: bool, services: Sequence[str], status: int) -> None:
        """One finished HTTP exchange; ``services`` is its path, outermost first."""
        error = 1 if status >= 500 else 0
        counts = self.entrypoints.get(entrypoint)
        if counts is None:
            counts = self.entrypoints[entrypoint] = [0, 0]
        counts[0] += 1
        if not routed:
            counts[1] += 1
        table = self.services
        for service in services:
            counts = table.get(service)
            if counts is None:
                table[service] = [1, error]
            else:
                counts[0] += 1
                counts[1] += error
        edges = self.edges
        for edge in zip(services, services[1:]):
            counts = edges.get(edge)
            if counts is None:
                edges[edge] = [1, error]
            else:
                counts[0] += 1
                counts[1] += error

    def mirror_copy(self, mirror_of: str, status: int) -> None:
        """A copy sent by the mirroring service ``mirror_of`` came back (status 0: failed)."""
        counts = self.mirrored.get(mirror_of)
        if counts is None:
            counts = self.mirrored[mirror_of] = [0, 0]
        counts[0] += 1
        if status == 0 or status >= 500:
            counts[1] += 1

    def session(self, protocol: str, services: Sequence[str]) -> None:
        """A TCP connection or UDP session was given to ``services`` (outermost first)."""
        table = self.sessions[protocol]
        for service in services:
            table[service] = table.get(service, 0) + 1
        edges = self.session_edges[protocol]
        for edge in zip(services, services[1:]):
            edges[edge] = edges.get(edge, 0) + 1

    def keep_only(self, http: Iterable[str], tcp: Iterable[str], udp: Iterable[str]) -> None:
        """Forget services a reload took away (and the edges that touch them)."""
        keep = set(http)
        for name in [name for name in self.services if name not in keep]:
            del self.services[name]
        for edge in [edge for edge in self.edges if not set(edge) <= keep]:
            del self.edges[edge]
        for name in [name for name in self.mirrored if name not in keep]:
            del self.mirrored[name]
        for protocol, names in (("tcp", set(tcp)), ("udp", set(udp))):
            table = self.sessions[protocol]
            for name in [name for name in table if name not in names]:
                del table[name]
            edges = self.session_edges[protocol]
            for edge in [edge for edge in edges if not set(edge) <= names]:
                del edges[edge]
