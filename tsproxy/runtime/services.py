"""The service graph of a routing table: balancer nodes, and ``resolve`` to walk it per request.

A node's definition is a frozen value; its balancer state (WRR deadlines, round robin position,
mirror counters) lives in the node, so a rebuild can keep a node whose definition is unchanged.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, Union

import attrs

from tsproxy.balance.mirror import MirrorCounter
from tsproxy.balance.sticky import StickyCookie, StickyLevel
from tsproxy.balance.wrr import EarliestDeadlineFirst, RoundRobin
from tsproxy.config.resources import TransportSettings

__all__ = [
    "Definition",
    "LoadBalancer",
    "LoadBalancerDef",
    "MirrorOrder",
    "MirroringDef",
    "MirroringService",
    "Node",
    "Pick",
    "Server",
    "TransportSettings",
    "WeightedChild",
    "WeightedDef",
    "WeightedService",
    "instantiate",
    "resolve",
]


@attrs.frozen(cache_hash=True)
class Server:
    """One backend address; ``host`` is bare, ``url`` brackets an IPv6 host."""

    scheme: str
    host: str
    port: int
    url: str
    transport: TransportSettings = TransportSettings()

    @classmethod
    def at(cls, scheme: str, host: str, port: int, transport: TransportSettings) -> Server:
        shown = f"[{host}]" if ":" in host else host
        return cls(scheme, host, port, f"{scheme}://{shown}:{port}", transport)


@attrs.frozen(cache_hash=True)
class LoadBalancerDef:
    """Servers balanced round robin, optionally sticky on the server URL."""

    name: str
    servers: Tuple[Server, ...]
    pass_host_header: bool = True
    sticky: Optional[StickyCookie] = None


@attrs.frozen(cache_hash=True)
class WeightedChild:
    """``middlewares``: the steps (qualified name, step) in front of this child, run once
    it is picked (Traefik's LoadBalancerSpec.middlewares)."""

    name: str
    weight: int
    definition: Definition
    middlewares: Tuple[Tuple[str, Any], ...] = ()


@attrs.frozen(cache_hash=True)
class WeightedDef:
    """Children split by weight (EDF), optionally sticky on the child's name."""

    name: str
    children: Tuple[WeightedChild, ...]
    sticky: Optional[StickyCookie] = None


@attrs.frozen(cache_hash=True)
class MirroringDef:
    """A main service whose requests are also copied to mirrors, each at a percentage."""

    name: str
    main: Definition
    mirrors: Tuple[Tuple[Definition, int], ...] = ()
    max_body_size: int = -1
    mirror_body: bool = True


Definition = Union[LoadBalancerDef, WeightedDef, MirroringDef]


class _RequestCookies(Protocol):
    """What resolve needs of a request: its cookies (tsproxy.rules' HTTPRequestInfo has them)."""

    @property
    def cookies(self) -> Mapping[str, str]: ...


def _choose(
    sticky: Optional[StickyLevel],
    pick: Callable[[], Optional[int]],
    req: Optional[_RequestCookies],
    set_cookies: List[str],
) -> Optional[int]:
    """A child index: through the sticky level when there is one and a request to read."""
    if sticky is None or req is None:
        return pick()
    return sticky.choose(req.cookies, pick, set_cookies)


@attrs.define(eq=False)
class LoadBalancer:
    """A Kubernetes Service's servers: round robin in endpoint order, sticky if configured."""

    definition: LoadBalancerDef
    _order: RoundRobin
    _sticky: Optional[StickyLevel]

    @classmethod
    def build(cls, definition: LoadBalancerDef) -> LoadBalancer:
        urls = [server.url for server in definition.servers]
        cookie = definition.sticky
        sticky = None if cookie is None else StickyLevel.for_servers(cookie, urls)
        return cls(definition, RoundRobin(len(urls)), sticky)

    @property
    def name(self) -> str:
        return self.definition.name

    def choose(self, req: Optional[_RequestCookies], set_cookies: List[str]) -> Optional[Server]:
        """A server (sticky cookie first), adding a Set-Cookie when a new pick is made."""
        index = _choose(self._sticky, self._order.next, req, set_cookies)
        return None if index is None else self.definition.servers[index]


@attrs.define(eq=False)
class WeightedService:
    """A weighted TraefikService (or a route's implicit one): EDF over its children."""

    definition: WeightedDef
    children: Tuple[Node, ...]
    _order: EarliestDeadlineFirst
    _sticky: Optional[StickyLevel]

    @property
    def name(self) -> str:
        return self.definition.name

    def choose(self, req: Optional[_RequestCookies], set_cookies: List[str]) -> Optional[Node]:
        """A child (sticky cookie first), adding a Set-Cookie when a new pick is made."""
        index = self.choose_index(req, set_cookies)
        return None if index is None else self.children[index]

    def choose_index(self, req: Optional[_RequestCookies], set_cookies: List[str]) -> Optional[int]:
        """The index of the child ``choose`` would give."""
        return _choose(self._sticky, self._order.next, req, set_cookies)


@attrs.define(eq=False)
class MirroringService:
    """A mirroring TraefikService: the main node answers, mirrors get counted copies."""

    definition: MirroringDef
    main: Node
    mirrors: Tuple[Node, ...]
    counter: MirrorCounter

    @property
    def name(self) -> str:
        return self.definition.name


Node = Union[LoadBalancer, WeightedService, MirroringService]


@attrs.frozen
class MirrorOrder:
    """Send a copy of the request to ``node`` (resolve it with ``req=None``) after the main
    response; skip it when the body is larger than ``max_body_size`` (-1: unlimited), and send
    it without a body when ``mirror_body`` is false."""

    node: Node
    max_body_size: int
    service_name: str
    mirror_body: bool = True
    #: The mirroring service that made this copy (metrics count copies per pair).
    mirror_of: str = ""


@attrs.frozen
class Pick:
    """Where one request goes. ``server`` None means no available server (503).

    ``services`` names every service walked, from the router's to the load balancer (metrics
    count the request under each, as Traefik's per-service middlewares do)."""

    server: Optional[Server]
    set_cookies: List[str]
    mirrors: List[MirrorOrder]
    pass_host_header: bool
    service_name: str
    services: Sequence[str] = ()
    #: The middlewares of the picked weighted children, in walk order, still to run.
    steps: Tuple[Tuple[str, Any], ...] = ()


def resolve(node: Node, req: Optional[_RequestCookies]) -> Pick:
    """Walk the service graph from ``node`` to a server for one request.

    Weighted nodes pick a child (their sticky cookie first), mirroring nodes count the request
    and record the mirrors it goes to before continuing into their main node, load balancers
    pick a server. ``req`` None (a mirror copy) reads and writes no cookies.
    """
    set_cookies: List[str] = []
    mirrors: List[MirrorOrder] = []
    walked: List[str] = []
    steps: Tuple[Tuple[str, Any], ...] = ()
    current: Optional[Node] = node
    last = node
    while current is not None:
        last = current
        walked.append(current.definition.name)
        if isinstance(current, LoadBalancer):
            server = current.choose(req, set_cookies)
            return Pick(
                server,
                set_cookies,
                mirrors,
                current.definition.pass_host_header,
                current.definition.name,
                walked,
                steps,
            )
        if isinstance(current, MirroringService):
            definition = current.definition
            for index in current.counter.next():
                mirror = current.mirrors[index]
                mirrors.append(
                    MirrorOrder(
                        mirror,
                        definition.max_body_size,
                        mirror.name,
                        definition.mirror_body,
                        definition.name,
                    )
                )
            current = current.main
        else:
            picked = current.choose_index(req, set_cookies)
            if picked is None:
                break
            steps += current.definition.children[picked].middlewares
            current = current.children[picked]
    return Pick(None, set_cookies, mirrors, True, last.name, walked, steps)


def instantiate(
    definition: Definition,
    previous: Mapping[Definition, Node],
    made: Dict[Definition, Node],
) -> Node:
    """The node for ``definition``: one already made in this build, else the previous table's
    node for an equal definition (keeping its balancer state), else a fresh one.

    ``made`` collects every node of the build, keyed by definition, for the next rebuild.
    """
    node = made.get(definition)
    if node is not None:
        return node
    node = previous.get(definition)
    if node is None:
        node = _fresh(definition, previous, made)
        made[definition] = node
    else:
        _adopt(node, made)
    return node


def _adopt(node: Node, made: Dict[Definition, Node]) -> None:
    """Register a kept node and everything below it, so later references share them."""
    if made.setdefault(node.definition, node) is not node:
        return
    if isinstance(node, WeightedService):
        below: Tuple[Node, ...] = node.children
    elif isinstance(node, MirroringService):
        below = (node.main,) + node.mirrors
    else:
        below = ()
    for child in below:
        _adopt(child, made)


def _fresh(
    definition: Definition, previous: Mapping[Definition, Node], made: Dict[Definition, Node]
) -> Node:
    if isinstance(definition, LoadBalancerDef):
        return LoadBalancer.build(definition)
    if isinstance(definition, WeightedDef):
        children = tuple(
            instantiate(child.definition, previous, made) for child in definition.children
        )
        sticky = None
        if definition.sticky is not None:
            # Weight 0 removes a child, so no cookie can lead to it either (as in Traefik).
            names = [child.name if child.weight else None for child in definition.children]
            sticky = StickyLevel.for_names(definition.sticky, names)
        order = EarliestDeadlineFirst([child.weight for child in definition.children])
        return WeightedService(definition, children, order, sticky)
    main = instantiate(definition.main, previous, made)
    mirrors = tuple(instantiate(mirror, previous, made) for mirror, _ in definition.mirrors)
    counter = MirrorCounter([percent for _, percent in definition.mirrors])
    return MirroringService(definition, main, mirrors, counter)
