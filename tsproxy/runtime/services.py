"""The service graph of a routing table: balancer nodes, and ``resolve`` to walk it per request.

A node's definition is a frozen value; its balancer state (WRR deadlines, round robin position,
mirror counters) lives in the node, so a rebuild can keep a node whose definition is unchanged.
"""

from __future__ import annotations

import random
from functools import partial
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, Union

import attrs

from tsproxy.balance.health import HealthCheckSpec, PassiveHealthSpec, ServerStates
from tsproxy.balance.hrw import hrw_choose
from tsproxy.balance.load import Lease
from tsproxy.balance.mirror import MirrorCounter
from tsproxy.balance.sticky import StickyCookie, StickyLevel
from tsproxy.balance.strategies import Picker, make_picker
from tsproxy.balance.wrr import EarliestDeadlineFirst
from tsproxy.config.resources import TransportSettings
from tsproxy.runtime.servers import Server, join_target

__all__ = [
    "Definition",
    "FailoverDef",
    "FailoverService",
    "HighestRandomWeightDef",
    "HighestRandomWeightService",
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
    "is_up",
    "join_target",
    "reports_status",
    "resolve",
]


@attrs.frozen(cache_hash=True)
class LoadBalancerDef:
    """Servers balanced by ``strategy`` (wrr, p2c, hrw, leasttime), optionally sticky on the
    server URL, optionally health checked (actively with ``health_check``, from proxied
    requests with ``passive``). ``weights``: each server's ``weight`` as written (None: not
    written, 1), or () when every server weighs 1 unwritten (the CRD's)."""

    name: str
    servers: Tuple[Server, ...]
    pass_host_header: bool = True
    sticky: Optional[StickyCookie] = None
    health_check: Optional[HealthCheckSpec] = None
    passive: Optional[PassiveHealthSpec] = None
    strategy: str = "wrr"
    weights: Tuple[Optional[int], ...] = ()

    def server_weights(self) -> Tuple[int, ...]:
        """Each server's weight (1 when not written)."""
        if not self.weights:
            return (1,) * len(self.servers)
        return tuple(1 if weight is None else weight for weight in self.weights)


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
    health_check: bool = False


@attrs.frozen(cache_hash=True)
class HighestRandomWeightDef:
    """Children chosen by rendezvous hashing of the client IP (their weights count)."""

    name: str
    children: Tuple[WeightedChild, ...]
    health_check: bool = False


@attrs.frozen(cache_hash=True)
class FailoverDef:
    """``main`` while it is up, else ``fallback``."""

    name: str
    main: Definition
    main_name: str
    fallback: Definition
    fallback_name: str
    health_check: bool = False


@attrs.frozen(cache_hash=True)
class MirroringDef:
    """A main service whose requests are also copied to mirrors, each at a percentage."""

    name: str
    main: Definition
    mirrors: Tuple[Tuple[Definition, int], ...] = ()
    max_body_size: int = -1
    mirror_body: bool = True


Definition = Union[LoadBalancerDef, WeightedDef, MirroringDef, HighestRandomWeightDef, FailoverDef]


class _RequestCookies(Protocol):
    """What resolve needs of a request: its cookies and client IP (tsproxy.rules'
    HTTPRequestInfo has them)."""

    @property
    def cookies(self) -> Mapping[str, str]: ...

    @property
    def client_ip(self) -> str: ...


def _choose(
    sticky: Optional[StickyLevel],
    pick: Callable[[], Optional[int]],
    req: Optional[_RequestCookies],
    set_cookies: List[str],
    available: Optional[Callable[[int], bool]] = None,
) -> Optional[int]:
    """A child index: through the sticky level when there is one and a request to read; a
    cookie pointing at a child that is down falls back to ``pick`` (as in Traefik)."""
    if sticky is None or req is None:
        return pick()
    return sticky.choose(req.cookies, pick, set_cookies, available)


@attrs.define(eq=False)
class LoadBalancer:
    """A Kubernetes Service's servers, picked by the definition's strategy (wrr: round robin
    in endpoint order), sticky if configured; servers that are DOWN (``states``, set by the
    health checkers) are skipped. A p2c or leasttime picker has a ``load`` the engine feeds.

    ``report`` is set by the health monitor when the service has a passive health check:
    the engine calls it with each proxied request's server and whether it went well.
    """

    definition: LoadBalancerDef
    _order: Picker
    _sticky: Optional[StickyLevel]
    states: ServerStates
    report: Optional[Callable[[Server, bool], None]] = None

    @classmethod
    def build(
        cls, definition: LoadBalancerDef, randint: Optional[Callable[[int], int]] = None
    ) -> LoadBalancer:
        """``randint(n)``, in [0, n), draws for p2c (a new random source by default)."""
        urls = [server.url for server in definition.servers]
        weights = definition.server_weights()
        cookie = definition.sticky
        sticky = None
        if cookie is not None:
            # A server of weight 0 is never added to Traefik's balancer, so no cookie leads
            # to it either; p2c ignores weights and adds every server.
            ignored = definition.strategy != "p2c"
            named = [None if ignored and w <= 0 else u for u, w in zip(urls, weights)]
            sticky = StickyLevel.for_servers(cookie, named)
        draw = randint or random.Random().randrange
        order = make_picker(definition.strategy, urls, weights, draw)
        return cls(definition, order, sticky, ServerStates(tuple(urls)))

    @property
    def name(self) -> str:
        return self.definition.name

    def _available(self, index: int) -> bool:
        return self.states.up(self.definition.servers[index].url)

    def choose_index(self, req: Optional[_RequestCookies], set_cookies: List[str]) -> Optional[int]:
        """A server's index, sticky cookie first (a new pick adds its Set-Cookie)."""
        if not self.states.any_up():
            return None
        available = self._available if self.states.any_down() else None
        source = req.client_ip if req is not None else ""  # hrw's key ("": a mirror copy)
        if self._sticky is None or req is None:
            return self._order.next(source, available)
        pick = partial(self._order.next, source, available)
        return self._sticky.choose(req.cookies, pick, set_cookies, available)


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

    def _available(self, index: int) -> bool:
        return is_up(self.children[index])

    def choose(self, req: Optional[_RequestCookies], set_cookies: List[str]) -> Optional[Node]:
        """A child (sticky cookie first), adding a Set-Cookie when a new pick is made. With
        ``healthCheck: {}``, children that are down are skipped (they keep their turn)."""
        index = self.choose_index(req, set_cookies)
        return None if index is None else self.children[index]

    def choose_index(self, req: Optional[_RequestCookies], set_cookies: List[str]) -> Optional[int]:
        """The index of the child ``choose`` would give."""
        available = self._available if self.definition.health_check else None
        return _choose(
            self._sticky, lambda: self._order.next(available), req, set_cookies, available
        )


@attrs.define(eq=False)
class HighestRandomWeightService:
    """A highestRandomWeight TraefikService: the client IP picks the child."""

    definition: HighestRandomWeightDef
    children: Tuple[Node, ...]

    @property
    def name(self) -> str:
        return self.definition.name

    def choose(self, req: Optional[_RequestCookies], set_cookies: List[str]) -> Optional[Node]:
        """The child with the highest score for the client IP (a mirror copy: no IP, "")."""
        definition = self.definition
        available = (lambda index: is_up(self.children[index])) if definition.health_check else None
        index = hrw_choose(
            req.client_ip if req is not None else "",
            [child.name for child in definition.children],
            [child.weight for child in definition.children],
            available,
        )
        return None if index is None else self.children[index]


@attrs.define(eq=False)
class FailoverService:
    """A failover TraefikService: the main node while it is up, else the fallback node
    (whose own status counts only with ``healthCheck: {}``, as in Traefik)."""

    definition: FailoverDef
    main: Node
    fallback: Node

    @property
    def name(self) -> str:
        return self.definition.name

    def choose(self, req: Optional[_RequestCookies], set_cookies: List[str]) -> Optional[Node]:
        if is_up(self.main):
            return self.main
        if not self.definition.health_check or is_up(self.fallback):
            return self.fallback
        return None


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


Node = Union[
    LoadBalancer,
    WeightedService,
    MirroringService,
    HighestRandomWeightService,
    FailoverService,
]


def is_up(node: Node) -> bool:
    """Whether ``node`` can serve, as its parents see it: a load balancer while one server is
    UP; a weighted or HRW service with ``healthCheck: {}`` while one child is up (without it,
    always: its children's status does not reach it); a mirroring service as its main one;
    a failover while its main, or its fallback, is up."""
    if isinstance(node, LoadBalancer):
        return node.states.any_up()
    if isinstance(node, MirroringService):
        return is_up(node.main)
    if isinstance(node, FailoverService):
        if is_up(node.main):
            return True
        return not node.definition.health_check or is_up(node.fallback)
    if not node.definition.health_check:
        return True
    # A child of weight 0 is never picked: its status does not make its parent up.
    weights = (child.weight for child in node.definition.children)
    return any(is_up(child) for child, weight in zip(node.children, weights) if weight > 0)


def reports_status(definition: Definition) -> bool:
    """Whether ``definition`` tells its parents its status (Traefik's StatusUpdater): a load
    balancer with an active or passive health check, a mirroring service whose main one
    does, the others with ``healthCheck: {}``."""
    if isinstance(definition, LoadBalancerDef):
        return definition.health_check is not None or definition.passive is not None
    if isinstance(definition, MirroringDef):
        return reports_status(definition.main)
    return definition.health_check


def children_of(node: Node) -> Tuple[Node, ...]:
    """The nodes right below ``node``."""
    if isinstance(node, WeightedService) or isinstance(node, HighestRandomWeightService):
        return node.children
    if isinstance(node, MirroringService):
        return (node.main,) + node.mirrors
    if isinstance(node, FailoverService):
        return (node.main, node.fallback)
    return ()


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


@attrs.define
class Pick:
    """Where one request goes. ``server`` None means no available server (503). Made per
    request and never changed; not an attrs.frozen class, whose __init__ sets each field
    through object.__setattr__ (0.8 us against 0.25).

    ``services`` names every service walked, from the router's to the load balancer (metrics
    count the request under each, as Traefik's per-service middlewares do)."""

    server: Optional[Server]
    set_cookies: List[str]
    mirrors: List[MirrorOrder]
    pass_host_header: bool
    service_name: str
    services: Sequence[str] = ()
    #: The load balancer's passive health check hook, if it has one: (server, ok).
    report: Optional[Callable[[Server, bool], None]] = None
    #: The middlewares of the picked weighted children, in walk order, still to run.
    steps: Tuple[Tuple[str, Any], ...] = ()
    #: Starts the server's lease (p2c, leasttime: in flight, TTFB) with the time it is sent.
    lease: Optional[Callable[[float], Lease]] = None


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
            index = current.choose_index(req, set_cookies)
            load = current._order.load  # p2c, leasttime: the engine counts what it sends
            return Pick(
                None if index is None else current.definition.servers[index],
                set_cookies,
                mirrors,
                current.definition.pass_host_header,
                current.definition.name,
                walked,
                current.report,
                steps,
                None if load is None or index is None else partial(load.begin, index),
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
        elif isinstance(current, WeightedService):
            picked = current.choose_index(req, set_cookies)
            if picked is None:
                break
            steps += current.definition.children[picked].middlewares
            current = current.children[picked]
        else:
            # highestRandomWeight and failover (their children carry no middlewares).
            current = current.choose(req, set_cookies)
    return Pick(None, set_cookies, mirrors, True, last.name, walked, None, steps)


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
    for child in children_of(node):
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
    if isinstance(definition, HighestRandomWeightDef):
        children = tuple(
            instantiate(child.definition, previous, made) for child in definition.children
        )
        return HighestRandomWeightService(definition, children)
    if isinstance(definition, FailoverDef):
        main = instantiate(definition.main, previous, made)
        return FailoverService(definition, main, instantiate(definition.fallback, previous, made))
    main = instantiate(definition.main, previous, made)
    mirrors = tuple(instantiate(mirror, previous, made) for mirror, _ in definition.mirrors)
    counter = MirrorCounter([percent for _, percent in definition.mirrors])
    return MirroringService(definition, main, mirrors, counter)
