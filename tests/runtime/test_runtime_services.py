"""Tests for tsproxy.runtime.services: resolve() walks weighted, mirroring and server nodes."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import attrs
from twisted.trial.unittest import SynchronousTestCase

from tests.strategyvectors import draws
from tsproxy.balance.hrw import hrw_choose
from tsproxy.balance.sticky import StickyCookie, name_values, server_values
from tsproxy.config.load import load_directory
from tsproxy.rules import HTTPRequestInfo
from tsproxy.runtime.build import build_table
from tsproxy.runtime.services import (
    Definition,
    FailoverDef,
    HighestRandomWeightDef,
    LoadBalancer,
    LoadBalancerDef,
    MirroringDef,
    MirrorOrder,
    Node,
    Pick,
    Server,
    TransportSettings,
    WeightedChild,
    WeightedDef,
    instantiate,
    is_up,
    resolve,
)
from tsproxy.runtime.table import RoutingTable

SEED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "seed")
WRR = "traefikservice-wrr.kubesre.lc"
COOKIE = "traefikservice-cokie.kubesre.lc"
COPY = "traefikservice-copy.kubesre.lc"


def seed() -> RoutingTable:
    table = build_table(load_directory(SEED)).table
    assert table is not None
    return table


def request(host: str, cookie: Optional[str] = None) -> HTTPRequestInfo:
    headers = [("Host", host)] + ([("Cookie", cookie)] if cookie else [])
    return HTTPRequestInfo.from_request("GET", "/", headers, "127.0.0.1")


def send(table: RoutingTable, host: str, cookie: Optional[str] = None) -> Pick:
    req = request(host, cookie)
    router = table.http_route("web", req)
    assert router is not None, host
    return resolve(router.service, req)


@attrs.frozen
class Cookies:
    """The part of a request resolve reads."""

    cookies: Dict[str, str] = {}
    client_ip: str = "127.0.0.1"


def server(port: int) -> Server:
    return Server.at("http", "10.0.0.1", port, TransportSettings())


def balancer(
    name: str, *ports: int, sticky: Optional[StickyCookie] = None, pass_host: bool = True
) -> LoadBalancerDef:
    return LoadBalancerDef(name, tuple(server(port) for port in ports), pass_host, sticky)


def node(definition: Definition) -> Node:
    return instantiate(definition, {}, {})


class SeedResolveTests(SynchronousTestCase):
    """The seed scenario's three routes, request by request."""

    def test_weighted(self) -> None:
        """1:2 gives v2, v1, v2, v2, v1, v2 with no cookies and no mirrors."""
        table = seed()
        picks = [send(table, WRR) for _ in range(6)]
        self.assertEqual(
            [p.service_name for p in picks],
            ["default-app-v2-80", "default-app-v1-80", "default-app-v2-80"] * 2,
        )
        self.assertEqual(
            [p.server.port for p in picks if p.server], [9002, 9001, 9002, 9002, 9001, 9002]
        )
        self.assertEqual(
            {(tuple(p.set_cookies), tuple(p.mirrors), p.pass_host_header) for p in picks},
            {((), (), True)},
        )
        self.assertEqual(
            [tuple(p.services) for p in picks[:2]],
            [
                ("default-app-wrr", "default-app-v2-80"),
                ("default-app-wrr", "default-app-v1-80"),
            ],
        )

    def test_cookiePins(self) -> None:
        """A cookie default-app-v1-80 always goes to app-v1 and sets no cookie."""
        table = seed()
        picks = [send(table, COOKIE, "cookie=default-app-v1-80") for _ in range(5)]
        self.assertEqual(
            {(p.service_name, tuple(p.set_cookies)) for p in picks}, {("default-app-v1-80", ())}
        )

    def test_cookieFormats(self) -> None:
        """Values older and newer Traefik versions wrote pin the same child, without a rewrite."""
        table = seed()
        for value in name_values("default-app-v2-80"):
            pick = send(table, COOKIE, f"other=1; cookie={value}")
            self.assertEqual(
                (pick.service_name, pick.set_cookies), ("default-app-v2-80", []), value
            )

    def test_newPickSetsCookie(self) -> None:
        """No cookie or an unknown one: a normal pick, and a cookie naming it."""
        table = seed()
        picks = [
            send(table, COOKIE),
            send(table, COOKIE, "cookie=default-app-v3-80"),
            send(table, COOKIE, "cookie="),
        ]
        self.assertEqual(
            [(p.service_name, p.set_cookies) for p in picks],
            [
                ("default-app-v2-80", ["cookie=default-app-v2-80; Path=/"]),
                ("default-app-v1-80", ["cookie=default-app-v1-80; Path=/"]),
                ("default-app-v2-80", ["cookie=default-app-v2-80; Path=/"]),
            ],
        )

    def test_mirror(self) -> None:
        """10% mirroring copies requests 1, 11 and 21 to app-v2; app-v1 answers them all."""
        table = seed()
        picks = [send(table, COPY) for _ in range(25)]
        self.assertEqual([n for n, p in enumerate(picks, 1) if p.mirrors], [1, 11, 21])
        self.assertEqual({p.service_name for p in picks}, {"default-app-v1-80"})
        self.assertEqual(
            {tuple(p.services) for p in picks}, {("default-app-mirror", "default-app-v1-80")}
        )
        order = picks[0].mirrors[0]
        self.assertEqual(
            order,
            MirrorOrder(
                table.services["default-app-v2-80"],
                -1,
                "default-app-v2-80",
                True,
                "default-app-mirror",
            ),
        )
        copy = resolve(order.node, None)
        self.assertEqual(
            (copy.service_name, copy.server, copy.set_cookies),
            ("default-app-v2-80", Server.at("http", "127.0.0.1", 9002, TransportSettings()), []),
        )

    def test_sharedBalancers(self) -> None:
        """Routes that reach the same service share its balancer, as in Traefik v3."""
        table = seed()
        self.assertEqual(send(table, COPY).server.port, 9001)  # type: ignore[union-attr]
        self.assertIs(
            table.services["default-app-mirror"].main, table.services["default-app-wrr"].children[0]
        )  # type: ignore[union-attr]


class WeightedTests(SynchronousTestCase):
    """Weighted nodes: EDF, stickiness, weight 0, nesting."""

    def weighted(self, weights: List[int], sticky: Optional[StickyCookie] = None) -> Node:
        children = tuple(
            WeightedChild(f"c{index}", weight, balancer(f"c{index}", 8000 + index))
            for index, weight in enumerate(weights)
        )
        return node(WeightedDef("w", children, sticky))

    def test_weightZeroNeverPicked(self) -> None:
        """A weight-0 child gets nothing, not even through its cookie."""
        service = self.weighted([1, 0], StickyCookie("s"))
        picks = [resolve(service, Cookies({"s": "c1"})) for _ in range(3)]
        self.assertEqual(
            [(p.service_name, p.set_cookies) for p in picks], [("c0", ["s=c0; Path=/"])] * 3
        )

    def test_nothingAvailable(self) -> None:
        """Only weight-0 children: no server, named after the weighted service (503)."""
        pick = resolve(self.weighted([0, 0]), Cookies())
        self.assertEqual(pick, Pick(None, [], [], True, "w", ["w"]))

    def test_noRequestNoCookies(self) -> None:
        """A mirror copy (req None) neither reads nor writes cookies."""
        service = self.weighted([1, 1], StickyCookie("s"))
        self.assertEqual(
            [
                (p.service_name, p.set_cookies)
                for p in (resolve(service, None), resolve(service, None))
            ],
            [("c0", []), ("c1", [])],
        )

    def test_nestedStickyLevels(self) -> None:
        """Each sticky level traversed adds its own Set-Cookie; each reads its own cookie."""
        inner = balancer("inner", 1, 2, sticky=StickyCookie("lb", http_only=True))
        outer = node(
            WeightedDef(
                "outer",
                (WeightedChild("inner", 1, inner), WeightedChild("other", 1, balancer("other", 3))),
                StickyCookie("svc"),
            )
        )
        first = resolve(outer, Cookies())
        self.assertEqual(
            first.set_cookies, ["svc=inner; Path=/", "lb=http://10.0.0.1:1; Path=/; HttpOnly"]
        )
        again = resolve(outer, Cookies({"svc": "inner", "lb": "http://10.0.0.1:2"}))
        self.assertEqual((again.server, again.set_cookies), (server(2), []))


class PreservePathTests(SynchronousTestCase):
    """A server URL's path: part of the server's URL; requests go under it only with
    preservePath (cases checked against Traefik 3.7's file provider)."""

    def test_join_target(self) -> None:
        """(URL path, request target) -> what Traefik sends with preservePath."""
        table = [
            ("/base", b"/one", b"/base/one"),
            ("/base", b"/one/x?q=1", b"/base/one/x?q=1"),
            ("/base", b"/", b"/base/"),
            ("/base/", b"/two/y", b"/base/two/y"),
            ("/base", b"/one/a%2Fb", b"/base/one/a%2Fb"),
            ("/a%2Fb/c", b"/five/x%2Fy", b"/a%2Fb/c/five/x%2Fy"),
            ("/", b"/x?", b"/x?"),
            ("/base", b"*", b"/base/*"),
        ]
        for path, target, expected in table:
            keep = Server.at("http", "10.0.0.1", 80, TransportSettings(), path, True)
            self.assertEqual(keep.forward_target(target), expected, (path, target))
            drop = Server.at("http", "10.0.0.1", 80, TransportSettings(), path)
            self.assertEqual(drop.forward_target(target), target, (path, target))

    def test_url_and_origin(self) -> None:
        """The URL ends in the path as written; the origin is without it."""
        server = Server.at("h2c", "fd00::1", 8080, TransportSettings(), "/a%2Fb", True)
        self.assertEqual(server.url, "h2c://[fd00::1]:8080/a%2Fb")
        self.assertEqual(server.origin, "h2c://[fd00::1]:8080")
        plain = Server.at("http", "10.0.0.1", 80, TransportSettings())
        self.assertEqual((plain.url, plain.origin), ("http://10.0.0.1:80",) * 2)


class LoadBalancerTests(SynchronousTestCase):
    """Servers of one Service: round robin, server-level stickiness, host header policy."""

    def test_roundRobin(self) -> None:
        """Servers in endpoint order, one after the other."""
        service = node(balancer("lb", 1, 2, 3))
        self.assertEqual([resolve(service, Cookies()).server.port for _ in range(4)], [1, 2, 3, 1])  # type: ignore[union-attr]

    def test_serverSticky(self) -> None:
        """The cookie holds the server URL; every historical format of it sticks."""
        service = node(balancer("lb", 1, 2, sticky=StickyCookie("_abcde")))
        first = resolve(service, Cookies())
        self.assertEqual(
            (first.server, first.set_cookies), (server(1), ["_abcde=http://10.0.0.1:1; Path=/"])
        )
        for value in server_values("http://10.0.0.1:2"):
            pick = resolve(service, Cookies({"_abcde": value}))
            self.assertEqual((pick.server, pick.set_cookies), (server(2), []), value)

    def test_serverWeights(self) -> None:
        """Written server weights: wrr splits by EDF, a weight-0 server is never picked and
        a cookie naming it is not followed (Traefik never adds it), except with p2c, which
        ignores weights."""
        cookie = StickyCookie("_w")
        definition = attrs.evolve(balancer("lb", 1, 2, 3, sticky=cookie), weights=(1, None, 0))
        self.assertEqual(definition.server_weights(), (1, 1, 0))
        service = node(definition)
        pinned = Cookies({"_w": "http://10.0.0.1:3"})
        picks = [resolve(service, pinned) for _ in range(4)]
        self.assertEqual([p.server.port for p in picks], [1, 2, 1, 2])  # type: ignore[union-attr]
        self.assertEqual(picks[0].set_cookies, ["_w=http://10.0.0.1:1; Path=/"])
        p2c = LoadBalancer.build(attrs.evolve(definition, strategy="p2c"), draws([]))
        pick = resolve(p2c, pinned)
        self.assertEqual((pick.server, pick.set_cookies), (server(3), []))

    def test_passHostHeader(self) -> None:
        """passHostHeader comes from the load balancer that chose the server."""
        service = node(
            WeightedDef("w", (WeightedChild("lb", 1, balancer("lb", 1, pass_host=False)),))
        )
        self.assertEqual(resolve(service, Cookies()).pass_host_header, False)

    def test_noServers(self) -> None:
        """No servers: no pick."""
        self.assertEqual(
            resolve(node(balancer("lb")), Cookies()), Pick(None, [], [], True, "lb", ["lb"])
        )


class MirroringTests(SynchronousTestCase):
    """Mirroring nodes: counted copies, then the main node."""

    def test_ordersAndBody(self) -> None:
        """Each firing mirror becomes an order with the body policy of its mirroring service."""
        definition = MirroringDef(
            "m", balancer("main", 1), ((balancer("a", 2), 100), (balancer("b", 3), 50)), 1024, False
        )
        service = node(definition)
        picks = [resolve(service, Cookies()) for _ in range(3)]
        self.assertEqual(
            [[o.service_name for o in p.mirrors] for p in picks], [["a", "b"], ["a"], ["a", "b"]]
        )
        self.assertEqual(
            {(o.max_body_size, o.mirror_body) for p in picks for o in p.mirrors}, {(1024, False)}
        )
        self.assertEqual({p.service_name for p in picks}, {"main"})

    def test_mirroringInsideWeighted(self) -> None:
        """A mirroring child of a weighted service reports its mirrors when it is picked."""
        mirroring = MirroringDef("m", balancer("main", 1), ((balancer("a", 2), 100),))
        service = node(
            WeightedDef(
                "w", (WeightedChild("m", 1, mirroring), WeightedChild("x", 1, balancer("x", 9)))
            )
        )
        picks = [resolve(service, Cookies()) for _ in range(2)]
        self.assertEqual([(p.service_name, len(p.mirrors)) for p in picks], [("main", 1), ("x", 0)])


class InstantiateTests(SynchronousTestCase):
    """Nodes are shared within a build and kept across builds by definition."""

    def test_sharing(self) -> None:
        """Equal definitions give one node; a previous node is kept with its subtree."""
        shared = balancer("lb", 1, 2)
        made: Dict[Definition, Node] = {}
        first = instantiate(WeightedDef("w", (WeightedChild("lb", 1, shared),)), {}, made)
        second = instantiate(MirroringDef("m", shared), {}, made)
        self.assertIs(first.children[0], second.main)  # type: ignore[union-attr]
        resolve(first, None)
        again: Dict[Definition, Node] = {}
        kept = instantiate(
            WeightedDef("w", (WeightedChild("lb", 1, balancer("lb", 1, 2)),)), made, again
        )
        self.assertIs(kept, first)
        self.assertIs(again[shared], first.children[0])  # type: ignore[union-attr]
        self.assertEqual(resolve(kept, None).server, server(2))


@attrs.frozen
class Client:
    """A request with a client IP (HRW reads it)."""

    client_ip: str
    cookies: Dict[str, str] = {}


class HealthTests(SynchronousTestCase):
    """Servers and children that are DOWN, as the health checks set them."""

    def down(self, service: Node, *ports: int) -> Node:
        for port in ports:
            service.states.set(server(port).url, False)  # type: ignore[union-attr]
        return service

    def ports(self, service: Node, count: int, req: object = None) -> List[Optional[int]]:
        picks = [resolve(service, req or Cookies()) for _ in range(count)]  # type: ignore[arg-type]
        return [p.server.port if p.server is not None else None for p in picks]

    def test_loadBalancerSkipsDown(self) -> None:
        """DOWN servers are passed over; all DOWN: no server (503); a sticky cookie to a
        DOWN server makes a new pick with its cookie."""
        self.assertEqual(self.ports(self.down(node(balancer("lb", 1, 2, 3)), 2), 4), [1, 3, 1, 3])
        self.assertEqual(self.ports(self.down(node(balancer("lb", 1, 2)), 1, 2), 2), [None, None])
        sticky = self.down(node(balancer("lb", 1, 2, sticky=StickyCookie("s"))), 2)
        pick = resolve(sticky, Cookies({"s": "http://10.0.0.1:2"}))
        self.assertEqual(
            (pick.server, pick.set_cookies), (server(1), ["s=http://10.0.0.1:1; Path=/"])
        )

    def test_weightedFollowsChildrenOnlyWithHealthCheck(self) -> None:
        """With healthCheck: {} a weighted service skips a child whose servers are all DOWN;
        without it the child keeps its share and those requests find no server."""
        table = [(True, [1, 1, 1, 1]), (False, [None, 1, None, None])]
        for health_check, expected in table:
            children = (
                WeightedChild("c1", 1, balancer("c1", 1)),
                WeightedChild("c2", 2, balancer("c2", 2)),
            )
            made: Dict[Definition, Node] = {}
            service = instantiate(WeightedDef("w", children, None, health_check), {}, made)
            self.down(made[children[1].definition], 2)
            self.assertEqual(self.ports(service, 4), expected, health_check)
            # One child is still up: so is the weighted service (with or without the flag).
            self.assertTrue(is_up(service), health_check)

    def test_weightZeroChildIsNoStatus(self) -> None:
        """A weighted (or HRW) service with healthCheck: {} whose only up child has weight 0
        is down (it can serve nothing), so a failover over it goes to its fallback."""
        children = (
            WeightedChild("c1", 0, balancer("c1", 1)),
            WeightedChild("c2", 1, balancer("c2", 2)),
        )
        for kind in (
            WeightedDef("w", children, None, True),
            HighestRandomWeightDef("w", children, True),
        ):
            made: Dict[Definition, Node] = {}
            failover = FailoverDef("f", kind, "w", balancer("fb", 3), "fb", False)
            service = instantiate(failover, {}, made)
            self.down(made[children[1].definition], 2)
            self.assertFalse(is_up(made[kind]), kind)
            self.assertEqual(self.ports(service, 2, Client("10.0.0.7")), [3, 3], kind)

    def test_failover(self) -> None:
        """(main down, fallback down, healthCheck: {}) -> the server answering (None: 503)
        and whether the failover is up."""
        table = [
            (False, False, False, 1, True),
            (True, False, False, 2, True),
            (True, True, False, None, True),
            (True, True, True, None, False),
            (False, True, True, 1, True),
        ]
        for main_down, fallback_down, health_check, expected, up in table:
            main, fallback = balancer("main", 1), balancer("fallback", 2)
            made: Dict[Definition, Node] = {}
            definition = FailoverDef("f", main, "main", fallback, "fallback", health_check)
            service = instantiate(definition, {}, made)
            if main_down:
                self.down(made[main], 1)
            if fallback_down:
                self.down(made[fallback], 2)
            case = (main_down, fallback_down, health_check)
            self.assertEqual(self.ports(service, 1), [expected], case)
            self.assertEqual(is_up(service), up, case)

    def test_hrw(self) -> None:
        """HRW picks by client IP, skips a DOWN child with healthCheck: {}; a mirror copy
        (no request) hashes the empty IP."""
        children = tuple(WeightedChild(f"c{p}", 1, balancer(f"c{p}", p)) for p in (1, 2, 3))
        made: Dict[Definition, Node] = {}
        service = instantiate(HighestRandomWeightDef("h", children, True), {}, made)
        chosen = self.ports(service, 3, Client("10.0.0.7"))
        self.assertEqual(len(set(chosen)), 1)
        self.down(made[children[chosen[0] - 1].definition], chosen[0])  # type: ignore[operator]
        moved = self.ports(service, 3, Client("10.0.0.7"))
        self.assertEqual(len(set(moved)), 1)
        self.assertNotEqual(moved, chosen)
        self.assertIsNotNone(resolve(service, None).server)


def strategy_node(
    strategy: str, *ports: int, sticky: Optional[str] = None, draws_: Any = ()
) -> Any:
    """A load balancer of ``strategy`` over 10.0.0.1:ports, p2c drawing ``draws_``."""
    cookie = StickyCookie(sticky) if sticky else None
    definition = attrs.evolve(balancer("lb", *ports, sticky=cookie), strategy=strategy)
    return LoadBalancer.build(definition, draws(list(draws_)))


class StrategyTests(SynchronousTestCase):
    """A load balancer picks its servers by its strategy, under the same sticky cookie and
    health rules, and gives the engine a lease maker when the strategy reads the load."""

    def test_picks(self) -> None:
        """strategy -> the ports of four picks for client 10.0.0.7 (p2c drawing 1,0 0,0 2,1
        1,0 over 3 servers; leasttime with no samples: EDF over deadlines 1, 2, 3)."""
        hrw = hrw_choose("10.0.0.7", [server(p).url for p in (1, 2, 3)], [1, 1, 1])
        assert hrw is not None
        table = [
            ("wrr", [1, 2, 3, 1]),
            ("p2c", [2, 1, 3, 2]),
            ("hrw", [hrw + 1] * 4),
            ("leasttime", [1, 1, 2, 1]),
        ]
        for strategy, expected in table:
            service = strategy_node(strategy, 1, 2, 3, draws_=[1, 0, 0, 0, 2, 1, 1, 0])
            picks = [resolve(service, Client("10.0.0.7")) for _ in expected]
            self.assertEqual([p.server.port for p in picks], expected, strategy)  # type: ignore[union-attr]
            leased = [p.lease is not None for p in picks]
            self.assertEqual(leased, [strategy in ("p2c", "leasttime")] * 4, strategy)

    def test_sticky_every_strategy(self) -> None:
        """With every strategy a cookie to an UP server wins (no new cookie); without one, or
        to a DOWN server, the strategy picks and the cookie is written (Traefik's p2c
        TestSticky: draws 1,0 pick the second server, which the cookie then keeps)."""
        for strategy in ("wrr", "p2c", "hrw", "leasttime"):
            service = strategy_node(strategy, 1, 2, sticky="s", draws_=[1, 0, 1, 0])
            first = resolve(service, Client("10.0.0.7"))
            assert first.server is not None
            url = first.server.url
            self.assertEqual(first.set_cookies, [f"s={url}; Path=/"], strategy)
            if strategy == "p2c":
                self.assertEqual(first.server, server(2))
            for _ in range(3):
                again = resolve(service, Client("10.0.0.7", {"s": url}))
                self.assertEqual((again.server, again.set_cookies), (first.server, []), strategy)
            service.states.set(url, False)
            moved = resolve(service, Client("10.0.0.7", {"s": url}))
            assert moved.server is not None
            self.assertNotEqual(moved.server, first.server, strategy)
            self.assertEqual(moved.set_cookies, [f"s={moved.server.url}; Path=/"], strategy)

    def test_down_excluded(self) -> None:
        """A DOWN server is never picked by any strategy; all DOWN: no server (503), and
        no lease."""
        for strategy in ("wrr", "p2c", "hrw", "leasttime"):
            service = strategy_node(strategy, 1, 2, 3, draws_=[0, 0] * 10)
            service.states.set(server(2).url, False)
            ports = {resolve(service, Client(f"10.0.0.{i}")).server.port for i in range(10)}  # type: ignore[union-attr]
            self.assertNotIn(2, ports, strategy)
            for port in (1, 3):
                service.states.set(server(port).url, False)
            pick = resolve(service, Client("10.0.0.1"))
            self.assertEqual((pick.server, pick.lease), (None, None), strategy)

    def test_lease_counts(self) -> None:
        """The lease maker counts a request on the server picked until it ends; p2c then
        sends the next request to the other server, leasttime takes the TTFB as a sample."""
        service = strategy_node("p2c", 1, 2, draws_=[0, 0, 0, 0])
        first = resolve(service, Client("10.0.0.7"))
        lease = first.lease(100.0)  # type: ignore[misc]
        self.assertEqual(service._order.load.inflight, [1, 0])
        self.assertEqual(resolve(service, Client("10.0.0.7")).server, server(2))
        lease.end()
        self.assertEqual(service._order.load.inflight, [0, 0])
        timed = strategy_node("leasttime", 1, 2)
        lease = resolve(timed, Client("10.0.0.7")).lease(100.0)  # type: ignore[misc]
        lease.first_byte(100.2)
        lease.end()
        self.assertEqual(timed._order.load.times[0].average(), 200.0)
        self.assertEqual(resolve(timed, Client("10.0.0.7")).server, server(2))

    def test_mirror_copy(self) -> None:
        """A mirror copy (no request) gets a server from every strategy; hrw hashes "" for it
        (as the highestRandomWeight service does)."""
        for strategy in ("wrr", "p2c", "hrw", "leasttime"):
            service = strategy_node(strategy, 1, 2, draws_=[0, 0])
            self.assertIsNotNone(resolve(service, None).server, strategy)
        hrw = strategy_node("hrw", 1, 2)
        expected = hrw_choose("", [server(1).url, server(2).url], [1, 1])
        self.assertEqual(resolve(hrw, None).server, server(expected + 1))  # type: ignore[operator]

    def test_state_kept_on_rebuild(self) -> None:
        """An unchanged definition keeps its node across a rebuild, in-flight counts and
        samples included; another strategy is another definition, a fresh node."""
        definition = attrs.evolve(balancer("lb", 1, 2), strategy="leasttime")
        made: Dict[Definition, Node] = {}
        first = instantiate(definition, {}, made)
        resolve(first, Client("10.0.0.7")).lease(1.0)  # type: ignore[misc]
        kept = instantiate(definition, made, {})
        self.assertIs(kept, first)
        other = instantiate(attrs.evolve(definition, strategy="p2c"), made, {})
        self.assertIsNot(other, first)
        self.assertEqual(other._order.load.inflight, [0, 0])  # type: ignore[union-attr]
