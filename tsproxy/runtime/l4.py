"""Layer-4 services, shared by TCP and UDP: the servers of one Kubernetes Service taken in
turn, and a route's services split by weight (earliest deadline first).

A connection (TCP) or a session (UDP) picks once. Definitions are frozen values, so a rebuild
with an equal definition keeps the node and its position. Pure: no sockets.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple, Union

import attrs

from tsproxy.balance.wrr import EarliestDeadlineFirst, RoundRobin

__all__ = [
    "L4Definition",
    "L4LoadBalancer",
    "L4LoadBalancerDef",
    "L4Node",
    "L4Weighted",
    "L4WeightedChild",
    "L4WeightedDef",
    "host_port",
    "instantiate",
]


def host_port(host: str, port: int) -> str:
    """``host:port`` as Traefik writes it (an IPv6 host in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@attrs.frozen(cache_hash=True)
class L4LoadBalancerDef:
    """The servers of one Kubernetes Service (UDPServer or TCPServer values), in turn."""

    name: str
    servers: Tuple[Any, ...]


@attrs.frozen(cache_hash=True)
class L4WeightedChild:
    name: str
    weight: int
    definition: L4LoadBalancerDef


@attrs.frozen(cache_hash=True)
class L4WeightedDef:
    """A route's services split by weight; a weight of 0 removes the child."""

    name: str
    children: Tuple[L4WeightedChild, ...]


L4Definition = Union[L4LoadBalancerDef, L4WeightedDef]


@attrs.define(eq=False)
class L4LoadBalancer:
    """Round robin over a Service's servers, in endpoint order."""

    definition: L4LoadBalancerDef
    _order: RoundRobin

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def servers(self) -> Tuple[Any, ...]:
        return self.definition.servers

    def pick(self) -> Optional[Any]:
        """The server for a new connection or session, or None when there is none."""
        index = self._order.next()
        return None if index is None else self.definition.servers[index]

    def pick_path(self) -> Tuple[Optional[Any], Tuple[str, ...]]:
        """`pick`, with the services the choice went through (for the dashboard's counts)."""
        return self.pick(), (self.definition.name,)


@attrs.define(eq=False)
class L4Weighted:
    """Earliest-deadline-first over the route's services, then round robin inside one."""

    definition: L4WeightedDef
    balancers: Tuple[L4LoadBalancer, ...]
    _order: EarliestDeadlineFirst

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def children(self) -> Tuple[Tuple[L4LoadBalancer, int], ...]:
        """(child service, weight) pairs, in declaration order."""
        return tuple(
            (balancer, child.weight)
            for balancer, child in zip(self.balancers, self.definition.children)
        )

    def pick(self) -> Optional[Any]:
        """The server for a new connection or session, or None when every weight is 0."""
        index = self._order.next()
        return None if index is None else self.balancers[index].pick()

    def pick_path(self) -> Tuple[Optional[Any], Tuple[str, ...]]:
        """`pick`, with the services the choice went through (for the dashboard's counts)."""
        index = self._order.next()
        if index is None:
            return None, ()
        balancer = self.balancers[index]
        return balancer.pick(), (self.definition.name, balancer.definition.name)


L4Node = Union[L4LoadBalancer, L4Weighted]


def instantiate(
    definition: L4Definition,
    previous: Mapping[L4Definition, L4Node],
    made: Dict[L4Definition, L4Node],
) -> L4Node:
    """The node for ``definition``, reusing the previous table's (and its position) if equal."""
    node = made.get(definition) or previous.get(definition)
    if node is None:
        if isinstance(definition, L4LoadBalancerDef):
            node = L4LoadBalancer(definition, RoundRobin(len(definition.servers)))
        else:
            balancers = []
            for child in definition.children:
                built = instantiate(child.definition, previous, made)
                assert isinstance(built, L4LoadBalancer)
                balancers.append(built)
            order = EarliestDeadlineFirst([child.weight for child in definition.children])
            node = L4Weighted(definition, tuple(balancers), order)
    made[definition] = node
    if isinstance(node, L4Weighted):
        for balancer in node.balancers:
            made.setdefault(balancer.definition, balancer)
    return node
