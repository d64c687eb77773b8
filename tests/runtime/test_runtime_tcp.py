"""Tests for tsproxy.runtime.tcp: IngressRouteTCP routes to TCP routers (keys, priorities,
services, located problems, reuse across rebuilds), picks, and the connection-level routing of
an entrypoint (EntryPointTCP), including Traefik's entrypoint-routing matrix as a pure decision
table."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from typing import Any, Dict, List, Optional, Sequence, Tuple

from twisted.trial.unittest import SynchronousTestCase

from tests.certs import make_ca, make_leaf, secret_yaml
from tests.rulevectors import add_case_tests, check
from tests.rulevectors import load as load_vectors
from tsproxy.config.load import load_files
from tsproxy.config.resources import ObjectRef, TLSOption, TransportSettings
from tsproxy.rules import TCPConnectionInfo
from tsproxy.runtime.build import BuildResult, build_table, router_key
from tsproxy.runtime.table import RoutingTable
from tsproxy.runtime.tcp import (
    CLOSE,
    HTTP,
    HTTPS,
    TCP,
    TCP_TLS,
    EntryPointTCP,
    HTTPSName,
    TCPLoadBalancer,
    TCPNode,
    TCPRouter,
    TCPServer,
    TCPWeighted,
    tcp_router_key,
)

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
STATIC = """\
entryPoints:
  web:
    address: ":8000"
  foo:
    address: ":8001"
  dns:
    address: ":5353/udp"
"""
# pg: two endpoints on port 5433 (named postgres); cache: one IPv6 endpoint; empty: none.
BACKENDS = """\
apiVersion: v1
kind: Service
metadata: {name: pg}
spec: {ports: [{name: postgres, port: 5432}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: pg}
subsets: [{addresses: [{ip: 10.0.0.1}, {ip: 10.0.0.2}], ports: [{name: postgres, port: 5433}]}]
---
apiVersion: v1
kind: Service
metadata: {name: cache}
spec: {ports: [{name: redis, port: 6379}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: cache}
subsets: [{addresses: [{ip: "fd00::3"}], ports: [{name: redis, port: 6380}]}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec: {ports: [{name: x, port: 1}]}
"""

with open(os.path.join(DATA, "crd-provider.json")) as _stream:
    CRD = {group["id"]: group["cases"] for group in json.load(_stream)["groups"]}
with open(os.path.join(DATA, "services.json")) as _stream:
    SERVICES = {group["id"]: group["cases"] for group in json.load(_stream)["groups"]}


def build(
    files: Sequence[Tuple[str, str]],
    previous: Optional[RoutingTable] = None,
    load_errors: int = 0,
    static: str = STATIC,
) -> Tuple[BuildResult, List[str], List[str]]:
    """Build ``files`` (name, text); the loader must report exactly ``load_errors`` errors."""
    loaded = load_files(static, [(name, textwrap.dedent(text)) for name, text in files])
    assert len(loaded.errors) == load_errors, loaded.errors
    result = build_table(loaded, previous)
    return result, [str(e) for e in result.errors], [str(w) for w in result.warnings]


def ingress_tcp(name: str, routes: str, extra: str = "") -> str:
    """An IngressRouteTCP; ``extra`` goes before ``routes:`` (line 5), so without it the first
    route is on line 6."""
    return (
        f"apiVersion: traefik.io/v1alpha1\nkind: IngressRouteTCP\nmetadata: {{name: {name}}}\n"
        f"spec:\n{extra}  routes:\n" + textwrap.indent(textwrap.dedent(routes), "    ")
    )


def table_of(files: Sequence[Tuple[str, str]]) -> RoutingTable:
    result, errors, warnings = build(files)
    assert (errors, warnings) == ([], []), (errors, warnings)
    assert result.table is not None
    return result.table


def addresses(node: TCPNode, count: int) -> List[Optional[str]]:
    """The servers ``count`` new connections get, by address."""
    result = []
    for _ in range(count):
        server = node.pick()
        result.append(None if server is None else server.address)
    return result


def render(node: TCPNode) -> Dict[str, Any]:
    """A TCP service node as Traefik's dynamic configuration shows it."""
    if isinstance(node, TCPLoadBalancer):
        balancer: Dict[str, Any] = {"Servers": [{"Address": s.address} for s in node.servers]}
        first = node.servers[0]
        if first.termination_delay != 0.1:
            balancer["TerminationDelay"] = round(first.termination_delay * 1000)
        if first.proxy_protocol:
            balancer["ProxyProtocol"] = {"Version": first.proxy_protocol}
        return {"LoadBalancer": balancer}
    children = [{"Name": c.name, "Weight": c.weight} for c in node.definition.children]
    return {"Weighted": {"Services": children}}


def go_weight(value: Any) -> int:
    """``func ( i int ) * int { return & i } ( 2 )`` -> 2."""
    if isinstance(value, dict):
        text = value["$expr"]
        return int(text[text.rindex("(") + 1 : text.rindex(")")])
    return int(value)


class CRDVectorTests(SynchronousTestCase):
    """Traefik's TestLoadIngressRouteTCPs fixtures give the same routers and services."""

    def test_vectors(self) -> None:
        """Every v2.10 IngressRouteTCP case: names, entrypoints, servers, weights, delay and
        PROXY protocol version.

        The fixtures match HostSNI(`foo.com`) without TLS, a route tsproxy drops at build (as
        Traefik v3's router manager does, after the provider the vectors test). So each case is
        built twice: as given, which must give that one error, and with ``tls.passthrough``
        added, which does not change any name or service and must give the provider's result.
        """
        cases = CRD["v2.10-IngressRouteTCP"]
        self.assertEqual(len(cases), 6)
        for case in cases:
            description = case["description"]
            fixtures = sorted(case["inputs"]["fixtures"].items())
            # The shared fixture holds a Service without a port number, which the loader
            # rejects (as Kubernetes would); no route of these cases uses it.
            result, errors, _ = build(fixtures, load_errors=1)
            expected = case["expected"]["TCP"]
            has_tls = "TLS" in next(iter(expected["Routers"].values()))
            if not has_tls:
                self.assertEqual(len(errors), 1, description)
                self.assertIn("needs TLS (spec.tls)", errors[0], description)
                fixtures = [
                    (name, text.replace("\nspec:\n", "\nspec:\n  tls: {passthrough: true}\n"))
                    for name, text in fixtures
                ]
                result, errors, _ = build(fixtures, load_errors=1)
            table = result.table
            assert table is not None
            if not expected["Services"]:
                # Traefik keeps the router and leaves out its service (no endpoints); tsproxy
                # drops the route with a located error.
                self.assertEqual(table.tcp_routers, (), description)
                self.assertEqual(len(errors), 1, description)
                self.assertIn(
                    "no endpoints for service default/whoamitcp-without-endpoints-subsets,"
                    " route dropped",
                    errors[0],
                )
                continue
            self.assertEqual(errors, [], description)
            served = {
                r.name: {
                    "EntryPoints": list(r.entrypoints),
                    "Service": r.service.name,
                    "Rule": r.rule,
                }
                for r in table.tcp_routers
            }
            want = {
                name: {key: router[key] for key in ("EntryPoints", "Service", "Rule")}
                for name, router in expected["Routers"].items()
            }
            self.assertEqual(served, want, description)
            for router in table.tcp_routers:
                self.assertEqual(router.tls is not None and router.tls.passthrough, True)
            got = {name: render(node) for name, node in table.tcp_services.items()}
            for service in expected["Services"].values():
                for child in service.get("Weighted", {}).get("Services", []):
                    child["Weight"] = go_weight(child["Weight"])
            self.assertEqual(got, expected["Services"], description)


class NameTests(SynchronousTestCase):
    """Router and service keys as Traefik's CRD provider makes them for TCP."""

    def test_routerKey(self) -> None:
        """``<ns>-<name>-<20 hex of sha256(match)>``, not normalized: dots stay, unlike HTTP."""
        match = "HostSNI(`foo.com`)"
        digest = hashlib.sha256(match.encode()).hexdigest()[:20]
        self.assertEqual(digest, "fdd3e9338e47a45efefc")
        self.assertEqual(
            tcp_router_key("default", "test.route", match), "default-test.route-" + digest
        )
        self.assertEqual(router_key("default", "test.route", match), "default-test-route-" + digest)
        # The match is hashed as written: spacing makes another key.
        self.assertNotEqual(
            tcp_router_key("a", "b", "HostSNI(`*`)"), tcp_router_key("a", "b", "HostSNI( `*` )")
        )

    def test_serviceNames(self) -> None:
        """One service: named like the router. Several: a weighted service named like the
        router over children ``<key>-<service>-<port as written>``."""
        text = ingress_tcp(
            "db.main",
            """\
            - match: HostSNI(`*`)
              services: [{name: pg, port: 5432}]
            - match: ClientIP(`10.0.0.0/8`)
              services:
                - {name: pg, port: 5432, weight: 2}
                - {name: cache, port: redis}
            """,
        )
        table = table_of([("backends.yaml", BACKENDS), ("db.yaml", text)])
        single = tcp_router_key("default", "db.main", "HostSNI(`*`)")
        split = tcp_router_key("default", "db.main", "ClientIP(`10.0.0.0/8`)")
        by_rule = {r.rule: r for r in table.tcp_routers}
        self.assertEqual(by_rule["HostSNI(`*`)"].name, single)
        self.assertEqual(by_rule["HostSNI(`*`)"].service.name, single)
        weighted = by_rule["ClientIP(`10.0.0.0/8`)"].service
        assert isinstance(weighted, TCPWeighted)
        self.assertEqual(weighted.name, split)
        self.assertEqual(
            [(child.name, weight) for child, weight in weighted.children],
            [(f"{split}-pg-5432", 2), (f"{split}-cache-redis", 1)],
        )
        self.assertEqual(
            sorted(table.tcp_services),
            sorted([single, split, f"{split}-pg-5432", f"{split}-cache-redis"]),
        )


class PriorityTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """Unset priority: the rule's length, or -1 for exactly HostSNI(`*`); a given one is
        kept."""
        text = ingress_tcp(
            "db",
            """\
            - match: HostSNI(`*`)
              services: [{name: pg, port: 5432}]
            - match: ( HostSNI(`*`) )
              services: [{name: pg, port: 5432}]
            - match: HostSNI(`*`) && ClientIP(`10.0.0.1`)
              services: [{name: pg, port: 5432}]
            - match: ClientIP(`10.0.0.0/24`)
              priority: 3
              services: [{name: pg, port: 5432}]
            """,
        )
        table = table_of([("backends.yaml", BACKENDS), ("db.yaml", text)])
        self.assertEqual(
            sorted((r.rule, r.priority) for r in table.tcp_routers),
            [
                ("( HostSNI(`*`) )", -1),
                ("ClientIP(`10.0.0.0/24`)", 3),
                ("HostSNI(`*`)", -1),
                ("HostSNI(`*`) && ClientIP(`10.0.0.1`)", 36),
            ],
        )

    def test_evaluationOrder(self) -> None:
        """A plain connection from 10.0.0.1 takes the longest rule first; others the catch-all."""
        text = ingress_tcp(
            "db",
            """\
            - match: HostSNI(`*`)
              services: [{name: pg, port: 5432}]
            - match: ClientIP(`10.0.0.1`)
              services: [{name: cache, port: 6379}]
            """,
        )
        routing = table_of([("backends.yaml", BACKENDS), ("db.yaml", text)]).entrypoint_tcp("web")
        assert routing is not None
        router = routing.route_plain(TCPConnectionInfo("", (), "10.0.0.1"))
        self.assertEqual(router.rule if router else None, "ClientIP(`10.0.0.1`)")
        router = routing.route_plain(TCPConnectionInfo("", (), "10.0.0.2"))
        self.assertEqual(router.rule if router else None, "HostSNI(`*`)")


GOOD = "- match: ClientIP(`10.0.0.0/8`)\n  services: [{name: pg, port: 5432}]\n"
_DB = "db.yaml:{}: IngressRouteTCP default/db: "

# (routes (the good route is appended, so it comes last), extra spec lines, errors, warnings)
PROBLEMS: List[Tuple[str, str, List[str], List[str]]] = [
    (
        "- match: HostSNI(`*`)\n  services:\n    - {name: nope, port: 1}\n",
        "",
        [_DB.format(8) + "service default/nope not found, route dropped"],
        [],
    ),
    (
        "- match: HostSNI(`*`)\n  services:\n    - {name: pg, namespace: other, port: 5432}\n",
        "",
        [
            _DB.format(8) + "other/pg is in another namespace: cross-namespace references need"
            " providers.kubernetesCRD.allowCrossNamespace, route dropped"
        ],
        [],
    ),
    (
        "- match: HostSNI(`*`)\n  services:\n    - {name: pg, port: 5999}\n",
        "",
        [_DB.format(8) + "port 5999 not found in service default/pg, route dropped"],
        [],
    ),
    (
        "- match: HostSNI(`*`)\n  services:\n    - {name: pg, port: pgsql}\n",
        "",
        [_DB.format(8) + "port pgsql not found in service default/pg, route dropped"],
        [],
    ),
    (
        "- match: HostSNI(`*`)\n  services:\n    - {name: pg, port: 5432}\n"
        "    - {name: empty, port: 1}\n",
        "",
        [_DB.format(9) + "no endpoints for service default/empty, route dropped"],
        [],
    ),
    (
        "- match: HostSNI(`a.example`)\n  services: [{name: pg, port: 5432}]\n",
        "",
        [
            _DB.format(6) + "spec.routes[0].match: HostSNI or HostSNIRegexp other than"
            " HostSNI(`*`) needs TLS (spec.tls): without it there is no SNI to match, route"
            " dropped"
        ],
        [],
    ),
    (
        "- match: HostSNIRegexp(`^a`) || ClientIP(`::1`)\n  services: [{name: pg, port: 5432}]\n",
        "",
        [
            _DB.format(6) + "spec.routes[0].match: HostSNI or HostSNIRegexp other than"
            " HostSNI(`*`) needs TLS (spec.tls): without it there is no SNI to match, route"
            " dropped"
        ],
        [],
    ),
    (
        "- match: Host(`a`)\n  services: [{name: pg, port: 5432}]\n",
        "",
        [
            _DB.format(6) + "match: column 1: unknown matcher 'Host' (v3 syntax has ALPN,"
            " ClientIP, HostSNI, HostSNIRegexp)"
        ],
        [],
    ),
    (
        "- match: HostSNI(`*`)\n  services: []\n",
        "",
        [_DB.format(6) + "spec.routes[0].services: no service, route dropped"],
        [],
    ),
    (
        "- match: HostSNI(`*`)\n  services:\n    - {name: pg, port: 5432, weight: 0}\n"
        "    - {name: cache, port: 6379, weight: 0}\n",
        "",
        [],
        [
            _DB.format(6) + "spec.routes[0]: no service with a weight above 0: connections"
            " are closed"
        ],
    ),
    (
        "- match: ClientIP(`10.0.0.0/8`)\n  services: [{name: cache, port: 6379}]\n",
        "",
        [],
        [_DB.format(8) + "spec.routes[1]: same match as the route at db.yaml:6, replaces it"],
    ),
    (
        "",
        "  entryPoints: [dns, web]\n",
        [_DB.format(1) + "entrypoint dns is a UDP entrypoint, TCP routes cannot use it"],
        [],
    ),
    (
        "",
        "  entryPoints: [nope, web]\n",
        [_DB.format(1) + "entrypoint nope not found"],
        [],
    ),
]


class ProblemTests(SynchronousTestCase):
    """Each problem is located; the route with it is dropped and the others stay."""

    def test_table(self) -> None:
        """Every row gives exactly its errors and warnings, and the good route is built."""
        for routes, extra, errors, warnings in PROBLEMS:
            text = ingress_tcp("db", routes + GOOD, extra)
            result, got_errors, got_warnings = build(
                [("backends.yaml", BACKENDS), ("db.yaml", text)]
            )
            self.assertEqual((got_errors, got_warnings), (errors, warnings), text)
            table = result.table
            assert table is not None
            good = [r for r in table.tcp_routers if r.rule == "ClientIP(`10.0.0.0/8`)"]
            self.assertEqual(len(good), 1, text)
            expected = 2 if (warnings and "weight" in warnings[0]) else 1
            self.assertEqual(len(table.tcp_routers), expected, text)
            self.assertEqual(good[0].entrypoints, ("web",) if extra else ("web", "foo"), text)

    def test_duplicateReplaces(self) -> None:
        """Of two routes with the same namespace, name and match, the later one is served."""
        text = ingress_tcp(
            "db", GOOD + GOOD.replace("name: pg, port: 5432", "name: cache, port: 6379")
        )
        result, _, warnings = build([("backends.yaml", BACKENDS), ("db.yaml", text)])
        assert result.table is not None
        self.assertEqual(len(warnings), 1)
        (router,) = result.table.tcp_routers
        self.assertEqual(addresses(router.service, 1), ["[fd00::3]:6380"])

    def test_allWeightsZero(self) -> None:
        """Every weight 0: the router stays and every connection gets no server."""
        text = ingress_tcp(
            "db",
            "- match: HostSNI(`*`)\n  services:\n    - {name: pg, port: 5432, weight: 0}\n"
            "    - {name: cache, port: 6379, weight: 0}\n",
        )
        result, _, warnings = build([("backends.yaml", BACKENDS), ("db.yaml", text)])
        assert result.table is not None
        self.assertEqual(len(warnings), 1)
        self.assertEqual(addresses(result.table.tcp_routers[0].service, 3), [None, None, None])

    def test_onlyUDPEntrypoints(self) -> None:
        """A route whose every entrypoint is unusable is dropped, each problem located."""
        text = ingress_tcp("db", GOOD, "  entryPoints: [dns]\n")
        result, errors, _ = build([("backends.yaml", BACKENDS), ("db.yaml", text)])
        assert result.table is not None
        self.assertEqual(
            errors,
            [
                _DB.format(1) + "entrypoint dns is a UDP entrypoint, TCP routes cannot use it",
                _DB.format(7) + "spec.routes[0]: no usable entrypoint, route dropped",
            ],
        )
        self.assertEqual(result.table.tcp_routers, ())

    def test_noEntryPointsMeansEveryTCPEntrypoint(self) -> None:
        """No entryPoints: every TCP entrypoint, no UDP one; UDP entrypoints have no TCP
        routing at all."""
        table = table_of([("backends.yaml", BACKENDS), ("db.yaml", ingress_tcp("db", GOOD))])
        self.assertEqual(table.tcp_routers[0].entrypoints, ("web", "foo"))
        self.assertIsNone(table.entrypoint_tcp("dns"))
        self.assertIsNone(table.entrypoint_tcp("nope"))


class ServerTests(SynchronousTestCase):
    def test_terminationDelayAndProxyProtocol(self) -> None:
        """terminationDelay (ms) becomes seconds on every server, negative stays negative
        (wait forever); proxyProtocol {} is version 2, absent 0."""
        text = ingress_tcp(
            "db",
            """\
            - match: HostSNI(`*`)
              services:
                - {name: pg, port: 5432, terminationDelay: 250, proxyProtocol: {}}
                - {name: cache, port: redis, terminationDelay: -1, proxyProtocol: {version: 1}}
            - match: ClientIP(`::1`)
              services: [{name: pg, port: postgres}]
            """,
        )
        table = table_of([("backends.yaml", BACKENDS), ("db.yaml", text)])
        by_rule = {r.rule: r.service for r in table.tcp_routers}
        weighted = by_rule["HostSNI(`*`)"]
        assert isinstance(weighted, TCPWeighted)
        self.assertEqual(
            [child.servers for child, _ in weighted.children],
            [
                (TCPServer("10.0.0.1", 5433, 2, 0.25), TCPServer("10.0.0.2", 5433, 2, 0.25)),
                (TCPServer("fd00::3", 6380, 1, -0.001),),
            ],
        )
        single = by_rule["ClientIP(`::1`)"]
        assert isinstance(single, TCPLoadBalancer)
        self.assertEqual(
            single.servers, (TCPServer("10.0.0.1", 5433, 0, 0.1), TCPServer("10.0.0.2", 5433))
        )
        self.assertEqual([s.address for s in weighted.children[1][0].servers], ["[fd00::3]:6380"])


class DefaultTransportTests(SynchronousTestCase):
    """The static tcpServersTransport is how every TCP server is dialled (CRD services and
    the file provider's servers): dial timeout, keep-alive and, for ``tls: true``, TLS."""

    ROUTE = "- match: HostSNI(`*`)\n  services: [{name: pg, port: 5432%s}]\n"
    FILE = (
        "tcp:\n  routers:\n    r: {entryPoints: [web], rule: HostSNI(`*`), service: s}\n"
        "  services:\n    s:\n      loadBalancer:\n"
        "        servers: [{address: '10.0.0.9:7000'%s}]\n"
    )
    SKIP = TransportSettings(insecure_skip_verify=True)

    def servers(self, section: str, extra: str) -> Tuple[Any, List[str]]:
        """(the CRD route's servers or None, errors) with ``section`` in the static file."""
        text = ingress_tcp("db", self.ROUTE % extra)
        result, errors, _ = build(
            [("backends.yaml", BACKENDS), ("db.yaml", text)], static=STATIC + section
        )
        assert result.table is not None
        routers = result.table.tcp_routers
        return (routers[0].service.servers if routers else None), errors

    def test_crd(self) -> None:
        """(static section, service fields) → the servers' dial settings, or the route's
        error: tls: true needs insecureSkipVerify (no serverName to verify by)."""
        skip = "tcpServersTransport:\n  tls: {insecureSkipVerify: true}\n"
        needs = (
            "db.yaml:7: IngressRouteTCP default/db: spec.routes[0].services[0].tls: dialling"
            " the server with TLS through the default TCP transport needs"
            " tcpServersTransport.tls.insecureSkipVerify: true in the static configuration"
            " (it has no serverName to verify the certificate by: Traefik fails every"
            " connection), route dropped"
        )
        cases = [
            ("", "", (30.0, 15.0, None), []),
            (
                "tcpServersTransport: {dialTimeout: 2s, dialKeepAlive: -1s}\n",
                "",
                (2.0, -1.0, None),
                [],
            ),
            (skip, "", (30.0, 15.0, None), []),
            (skip, ", tls: true", (30.0, 15.0, self.SKIP), []),
            ("", ", tls: true", None, [needs]),
            ("tcpServersTransport:\n  tls: {rootCAs: []}\n", ", tls: true", None, [needs]),
        ]
        for section, extra, expected, errors in cases:
            with self.subTest(section=section, extra=extra):
                servers, found = self.servers(section, extra)
                self.assertEqual(found, errors)
                if expected is None:
                    self.assertIsNone(servers)
                else:
                    self.assertEqual(
                        {(s.dial_timeout, s.dial_keep_alive, s.tls) for s in servers}, {expected}
                    )

    def test_file(self) -> None:
        """A file server's ``tls: true`` is dialled with the default transport's TLS; without
        insecureSkipVerify the router is disabled, located at the service."""
        static = STATIC + "providers:\n  file: {filename: d.yml}\n"
        skip = "tcpServersTransport:\n  dialTimeout: 3s\n  tls: {insecureSkipVerify: true}\n"
        for section, tls, expected in (
            (skip, ", tls: true", TCPServer("10.0.0.9", 7000, 0, 0.1, 3.0, 15.0, self.SKIP)),
            (skip, "", TCPServer("10.0.0.9", 7000, 0, 0.1, 3.0)),
            ("", ", tls: true", None),
        ):
            with self.subTest(section=section, tls=tls):
                loaded = load_files(static + section, [], dynamic=[("d.yml", self.FILE % tls)])
                self.assertEqual(loaded.errors, ())
                result = build_table(loaded)
                assert result.table is not None
                if expected is None:
                    self.assertEqual(result.table.tcp_routers, ())
                    (error,) = [str(e) for e in result.errors]
                    self.assertTrue(
                        error.startswith(
                            "d.yml:3: TCP router r: service s@file: tcp.services.s.loadBalancer"
                            ".servers[0].tls: dialling the server with TLS"
                        ),
                        error,
                    )
                else:
                    self.assertEqual(result.table.tcp_routers[0].service.servers, (expected,))


def _transport_tcp(name: str, spec: str, namespace: str = "default") -> str:
    return (
        "apiVersion: traefik.io/v1alpha1\nkind: ServersTransportTCP\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec: {spec}\n"
    )


class NamedTransportTests(SynchronousTestCase):
    """A TCP service naming a ServersTransportTCP (CRD) or a tcp.serversTransports entry
    (file) is dialled as it says; its own terminationDelay and proxyProtocol are then
    ignored (Traefik 3.7; naming default@internal too, whose dialer has neither); what
    cannot be found or honoured disables the route, located."""

    CA = make_ca()
    CLIENT = make_leaf(CA, "client", client=True)
    ROUTE = "- match: HostSNI(`*`)\n  services: [{name: pg, port: 5432, serversTransport: %s}]\n"

    def test_crd(self) -> None:
        """(service fields, static) → (proxyProtocol, terminationDelay, dialTimeout, TLS
        (serverName, CAs, client certificates)) of every server, or the route's error."""
        transports = "---\n".join(
            [
                _transport_tcp(
                    "fast",
                    "{dialTimeout: 2s, terminationDelay: 50ms, proxyProtocol: {version: 1},"
                    " tls: {serverName: pg.test, rootCAs: [{secret: ca}],"
                    " certificatesSecrets: [client]}}",
                ),
                _transport_tcp("bare", "{}"),
                _transport_tcp(
                    "cm", "{tls: {serverName: pg.test, rootCAs: [{configMap: ca-map}]}}"
                ),
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca-map}\ndata:\n  ca.crt: |\n"
                + "".join("    %s\n" % line for line in self.CA.cert_pem.decode().splitlines()),
                _transport_tcp("noname", "{tls: {rootCAs: [{secret: ca}]}}"),
                _transport_tcp(
                    "nosecret", "{tls: {insecureSkipVerify: true, rootCAs: [{secret: gone}]}}"
                ),
                _transport_tcp("spiffe", "{tls: {insecureSkipVerify: true, spiffe: {ids: [x]}}}"),
                _transport_tcp("fast", "{dialTimeout: 9s}", "other"),
                secret_yaml("ca", {"ca.crt": self.CA.cert_pem}, kind="Opaque"),
                secret_yaml(
                    "client", {"tls.crt": self.CLIENT.cert_pem, "tls.key": self.CLIENT.key_pem}
                ),
            ]
        )
        cross = "providers:\n  kubernetesCRD: {allowCrossNamespace: true}\n"
        at = "db.yaml:7: IngressRouteTCP default/db: spec.routes[0].services[0]."
        fast = ("pg.test", (self.CA.cert_pem,), ((self.CLIENT.cert_pem, self.CLIENT.key_pem),))
        cases = [
            ("fast, tls: true, terminationDelay: 400, proxyProtocol: {}", "", (1, 0.05, 2.0, fast)),
            ("bare, terminationDelay: 400, proxyProtocol: {}", "", (0, 0.1, 30.0, None)),
            (
                "default@internal, terminationDelay: 400, proxyProtocol: {}",
                "",
                (0, 0.0, 30.0, None),
            ),
            ("noname", "", (0, 0.1, 30.0, None)),
            ("cm, tls: true", "", (0, 0.1, 30.0, ("pg.test", (self.CA.cert_pem,), ()))),
            ("other-fast@kubernetescrd", cross, (0, 0.1, 9.0, None)),
            (
                "missing",
                "",
                "serversTransport: ServersTransportTCP missing not found in namespace default",
            ),
            (
                "noname, tls: true",
                "",
                "tls: dialling the server with TLS through serversTransport noname needs its"
                " tls.serverName or tls.insecureSkipVerify: true (without either Traefik fails"
                " every connection)",
            ),
            (
                "other-fast@kubernetescrd",
                "",
                "serversTransport: ServersTransportTCP other-fast@kubernetescrd: the"
                " namespace-name@kubernetescrd form is not allowed when cross-namespace"
                " references are not (providers.kubernetesCRD.allowCrossNamespace)",
            ),
            (
                "fast@file",
                "",
                "serversTransport: ServersTransportTCP fast@file: TCP servers transports of"
                " other providers are not reachable from the kubernetescrd provider yet",
            ),
            (
                "nosecret",
                "",
                "serversTransport: serversTransport nosecret (ServersTransportTCP) (at"
                " t.yaml:37): secret default/gone not found",
            ),
            (
                "spiffe",
                "",
                "serversTransport: serversTransport spiffe (ServersTransportTCP): tls.spiffe"
                " not supported yet (backend TLS would be weaker than configured)",
            ),
        ]
        for extra, static, expected in cases:
            with self.subTest(extra=extra, static=static):
                files = [
                    ("t.yaml", transports),
                    ("backends.yaml", BACKENDS),
                    ("db.yaml", ingress_tcp("db", self.ROUTE % extra)),
                ]
                result, errors, _ = build(files, static=STATIC + static)
                assert result.table is not None
                routers = result.table.tcp_routers
                if isinstance(expected, str):
                    self.assertEqual((errors, routers), ([at + expected + ", route dropped"], ()))
                    continue
                self.assertEqual(errors, [])
                self.assertEqual(
                    {
                        (
                            s.proxy_protocol,
                            s.termination_delay,
                            s.dial_timeout,
                            s.tls and (s.tls.server_name, s.tls.root_cas, s.tls.certificates),
                        )
                        for s in routers[0].service.servers
                    },
                    {expected},
                )

    def test_file(self) -> None:
        """The file provider's load balancer names a transport of its own provider (bare or
        @file); a missing one, another provider's, or tls: true without serverName or
        insecureSkipVerify disables the router, located at it."""
        dynamic = (
            "tcp:\n  routers:\n    r: {entryPoints: [web], rule: HostSNI(`*`), service: s}\n"
            "  services:\n    s:\n      loadBalancer:\n"
            "        proxyProtocol: {version: 2}\n        terminationDelay: 400\n"
            "        serversTransport: %s\n"
            "        servers: [{address: '10.0.0.9:7000'%s}]\n"
            "  serversTransports:\n    st:\n      dialKeepAlive: 3s\n"
            "      proxyProtocol: {version: 1}\n      tls: {serverName: b.test}\n"
            "    bare: {}\n    noname: {tls: {peerCertURI: 'spiffe://a'}}\n"
        )
        named = TransportSettings(server_name="b.test")
        at = "d.yml:3: TCP router r: service s@file: tcp.services.s.loadBalancer."
        cases = [
            ("st", ", tls: true", TCPServer("10.0.0.9", 7000, 1, 0.1, 30.0, 3.0, named)),
            ("st@file", "", TCPServer("10.0.0.9", 7000, 1, 0.1, 30.0, 3.0)),
            ("bare", "", TCPServer("10.0.0.9", 7000, 0, 0.1)),
            ("default@internal", "", TCPServer("10.0.0.9", 7000, 0, 0.0)),
            ("missing", "", "serversTransport: serversTransport missing@file does not exist"),
            (
                "st@kubernetescrd",
                "",
                "serversTransport: serversTransport st@kubernetescrd: TCP servers transports of"
                " other providers are not reachable from the file provider yet",
            ),
            (
                "noname",
                ", tls: true",
                "servers[0].tls: dialling the server with TLS through serversTransport"
                " noname@file needs its tls.serverName or tls.insecureSkipVerify: true (without"
                " either Traefik fails every connection)",
            ),
        ]
        static = STATIC + "providers:\n  file: {filename: d.yml}\n"
        for name, tls, expected in cases:
            with self.subTest(name=name, tls=tls):
                loaded = load_files(static, [], dynamic=[("d.yml", dynamic % (name, tls))])
                self.assertEqual(loaded.errors, ())
                result = build_table(loaded)
                assert result.table is not None
                routers = result.table.tcp_routers
                found = [str(e) for e in result.errors]
                if isinstance(expected, str):
                    self.assertEqual((found, routers), ([at + expected], ()))
                else:
                    self.assertEqual((found, routers[0].service.servers), ([], (expected,)))


def weighted_backends(weights: Sequence[Tuple[str, int]]) -> Tuple[str, str]:
    """A Service+Endpoints per name (one server each, 10.0.1.N:7000) and a route over them."""
    docs = []
    refs = []
    for number, (name, weight) in enumerate(weights, 1):
        docs.append(
            f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n"
            f"spec: {{ports: [{{name: t, port: 7000}}]}}\n---\n"
            f"apiVersion: v1\nkind: Endpoints\nmetadata: {{name: {name}}}\n"
            f"subsets: [{{addresses: [{{ip: 10.0.1.{number}}}], ports: [{{name: t, port: 7000}}]}}]\n"
        )
        refs.append(f"    - {{name: {name}, port: 7000, weight: {weight}}}\n")
    route = ingress_tcp("split", "- match: HostSNI(`*`)\n  services:\n" + "".join(refs))
    return "---\n".join(docs), route


class PickTests(SynchronousTestCase):
    """New connections spread by weight across services, and in turn across servers."""

    def picks(self, weights: Sequence[Tuple[str, int]], count: int) -> List[Optional[str]]:
        services, route = weighted_backends(weights)
        result, _, _ = build([("backends.yaml", services), ("split.yaml", route)])
        assert result.table is not None
        names = {f"10.0.1.{n}:7000": name for n, (name, _) in enumerate(weights, 1)}
        got = addresses(result.table.tcp_routers[0].service, count)
        return [None if a is None else names[a] for a in got]

    def test_weightedVectors(self) -> None:
        """Traefik's TCP WRR count tables and exact sequences (EDF gives the same here)."""
        for case in SERVICES["tcp-udp-weighted-round-robin"]:
            inputs, expected = case["inputs"], case["expected"]
            if "serversWeight" in inputs:
                weights = list(inputs["serversWeight"].items())
                count = inputs["totalCall"]
            elif "sequence" in expected:
                weights = [tuple(child) for child in inputs["children"]]
                count = inputs["connections"]
            else:
                continue  # health status: tsproxy has no TCP health checks yet
            names = self.picks(weights, count)
            if "sequence" in expected:
                self.assertEqual(names, expected["sequence"], case["description"])
                continue
            counts = {name: names.count(name) for name in set(names) if name is not None}
            self.assertEqual(counts, expected["expectedWrite"], case["description"])
            self.assertEqual(names.count(None), expected.get("expectedClose", 0))

    def test_sequences(self) -> None:
        """1:2 gives b,a,b,b,a,b; 3:1 gives a,a,a,b twice; a weight-0 service is never picked."""
        self.assertEqual(self.picks([("a", 1), ("b", 2)], 6), ["b", "a", "b", "b", "a", "b"])
        self.assertEqual(self.picks([("a", 3), ("b", 1)], 8), list("aaabaaab"))
        self.assertEqual(self.picks([("a", 0), ("b", 1), ("c", 1)], 4), list("bcbc"))

    def test_serversInTurn(self) -> None:
        """Inside one Service the endpoints take connections in turn."""
        table = table_of([("backends.yaml", BACKENDS), ("db.yaml", ingress_tcp("db", GOOD))])
        self.assertEqual(
            addresses(table.tcp_routers[0].service, 3),
            ["10.0.0.1:5433", "10.0.0.2:5433", "10.0.0.1:5433"],
        )


class ReuseTests(SynchronousTestCase):
    """A rebuild keeps the balancer nodes whose definition did not change, with their turn."""

    def test_roundRobinCarriesOver(self) -> None:
        """Same definition: same node, and the next connection takes the next server; a
        changed definition starts again."""
        files = [("backends.yaml", BACKENDS), ("db.yaml", ingress_tcp("db", GOOD))]
        first, _, _ = build(files)
        assert first.table is not None
        node = first.table.tcp_routers[0].service
        self.assertEqual(addresses(node, 1), ["10.0.0.1:5433"])
        second, _, _ = build(files, previous=first.table)
        assert second.table is not None
        self.assertIs(second.table.tcp_routers[0].service, node)
        self.assertEqual(addresses(second.table.tcp_routers[0].service, 1), ["10.0.0.2:5433"])
        changed = GOOD.replace("port: 5432}", "port: 5432, terminationDelay: 5}")
        third, _, _ = build(
            [("backends.yaml", BACKENDS), ("db.yaml", ingress_tcp("db", changed))],
            previous=second.table,
        )
        assert third.table is not None
        self.assertIsNot(third.table.tcp_routers[0].service, node)
        self.assertEqual(addresses(third.table.tcp_routers[0].service, 1), ["10.0.0.1:5433"])

    def test_weightedCarriesOver(self) -> None:
        """A weighted service keeps its deadline order and its children their turn."""
        services, route = weighted_backends([("a", 1), ("b", 2)])
        files = [("backends.yaml", services), ("split.yaml", route)]
        first, _, _ = build(files)
        assert first.table is not None
        self.assertEqual(
            addresses(first.table.tcp_routers[0].service, 2), ["10.0.1.2:7000", "10.0.1.1:7000"]
        )
        second, _, _ = build(files, previous=first.table)
        assert second.table is not None
        node = second.table.tcp_routers[0].service
        self.assertIs(node, first.table.tcp_routers[0].service)
        self.assertEqual(
            addresses(node, 4), ["10.0.1.2:7000", "10.0.1.2:7000", "10.0.1.1:7000", "10.0.1.2:7000"]
        )
        self.assertEqual(set(second.table.tcp_nodes.values()), set(first.table.tcp_nodes.values()))


# The routers of Traefik's Test_Routing (tcp-rules.json *-entrypoint-routing router_legend) as
# resources, on the one entrypoint web; TLS options tls10 and tls12 allow one version each,
# and the default option (as in that test) TLS 1.0 only.
ROUTING_STATIC = 'entryPoints:\n  web:\n    address: ":8000"\n'
ROUTING_BACKENDS = """\
apiVersion: v1
kind: Service
metadata: {name: tcp}
spec: {ports: [{name: tcp, port: 9000}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: tcp}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{name: tcp, port: 9000}]}]
---
apiVersion: v1
kind: Service
metadata: {name: http}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: http}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{name: http, port: 9001}]}]
"""
ROUTING_OPTIONS = "".join(
    f"---\napiVersion: traefik.io/v1alpha1\nkind: TLSOption\nmetadata: {{name: {name}}}\n"
    f"spec: {{minVersion: {version}, maxVersion: {version}}}\n"
    for name, version in (
        ("default", "VersionTLS10"),
        ("tls10", "VersionTLS10"),
        ("tls12", "VersionTLS12"),
    )
)


def _router(kind: str, name: str, match: str, service: str, tls: str = "") -> str:
    return (
        f"---\napiVersion: traefik.io/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}}}\n"
        f"spec:\n  entryPoints: [web]\n  routes:\n    - match: {match}\n"
        f"      services: [{service}]\n" + (f"  tls: {tls}\n" if tls else "")
    )


TCP_SERVICE = "{name: tcp, port: 9000}"
HTTP_SERVICE = "{name: http, port: 80}"
LEGEND_ROUTERS = {
    "routerTCPCatchAll": _router("IngressRouteTCP", "tcp-catchall", "HostSNI(`*`)", TCP_SERVICE),
    "routerHTTP": _router("IngressRoute", "http", "Host(`foo.bar`)", HTTP_SERVICE),
    "routerTCPTLSCatchAll": _router(
        "IngressRouteTCP",
        "tcp-tls-catchall",
        "HostSNI(`*`)",
        TCP_SERVICE,
        "{options: {name: tls10}}",
    ),
    "routerTCPTLSCatchAllPassthrough": _router(
        "IngressRouteTCP",
        "tcp-tls-catchall-passthrough",
        "HostSNI(`*`)",
        TCP_SERVICE,
        "{passthrough: true, options: {name: tls12}}",
    ),
    "routerTCPTLS": _router(
        "IngressRouteTCP", "tcp-tls", "HostSNI(`foo.bar`)", TCP_SERVICE, "{options: {name: tls12}}"
    ),
    "routerHTTPSPathPrefix": _router(
        "IngressRoute", "https", "PathPrefix(`/`)", HTTP_SERVICE, "{options: {name: tls10}}"
    ),
    "routerHTTPS": _router(
        "IngressRoute",
        "https-custom-tls",
        "Host(`foo.bar`)",
        HTTP_SERVICE,
        "{options: {name: tls12}}",
    ),
}

TLS_VERSIONS = {
    "VersionTLS10": 0x301,
    "VersionTLS11": 0x302,
    "VersionTLS12": 0x303,
    "VersionTLS13": 0x304,
}
# Every check client of Test_Routing offers TLS 1.0 to 1.2, SNI foo.bar, and no ALPN.
CLIENT_VERSIONS = (0x301, 0x303)
CLIENT_IP = "127.0.0.1"
NOT_TLS_HERE = "TLS handshake fails: the entrypoint reads HTTP from the first byte"


def routing_table(
    routers: Sequence[str],
) -> Tuple[RoutingTable, Dict[Optional[ObjectRef], TLSOption]]:
    """The table of Test_Routing's routers ``routers``, and the TLS options by reference (None:
    the default option)."""
    files = [("backends.yaml", ROUTING_BACKENDS), ("options.yaml", ROUTING_OPTIONS)]
    files += [(f"{name}.yaml", LEGEND_ROUTERS[name]) for name in routers]
    loaded = load_files(ROUTING_STATIC, files)
    assert loaded.errors == (), loaded.errors
    result = build_table(loaded)
    assert (result.errors, result.warnings) == ((), ()), (result.errors, result.warnings)
    assert result.table is not None
    options: Dict[Optional[ObjectRef], TLSOption] = {}
    for resource in loaded.resources:
        if isinstance(resource, TLSOption):
            options[ObjectRef(resource.meta.name, resource.meta.namespace)] = resource
    options[None] = options[ObjectRef("default", "default")]
    return result.table, options


def negotiated(option: TLSOption) -> Optional[int]:
    """The version a check client and a server with ``option`` agree on (None: none)."""
    low = max(TLS_VERSIONS.get(option.min_version, 0x303), CLIENT_VERSIONS[0])
    high = min(TLS_VERSIONS.get(option.max_version, 0x304), CLIENT_VERSIONS[1])
    return high if high >= low else None


def plain_outcome(routing: EntryPointTCP, check: str) -> Optional[str]:
    """What a non-TLS check sees: which handler gets the connection, then what that handler
    answers (Test_Routing's backend answers TCP-CLIENT-FIRST or, after 200 ms of silence,
    TCP-SERVER-FIRST; its HTTP server answers any request with a body HTTP)."""
    at_accept = routing.route_at_accept(CLIENT_IP)
    if at_accept is not None:
        handler = TCP
    elif check == "checkTCPServerFirst":
        return "i/o timeout"  # the entrypoint waits for the first byte, the client for the server
    elif routing.mode == "http":
        handler = HTTP
    else:
        handler, _ = routing.route_cleartext(CLIENT_IP)
    if handler == TCP:
        # The backend's answer to an HTTP request is no HTTP response.
        return "malformed HTTP response" if check == "checkHTTP" else None
    if handler == HTTP:
        # "HELLO" without an end of line leaves the HTTP server waiting for more.
        return None if check == "checkHTTP" else "i/o timeout"
    assert handler == CLOSE
    return "EOF" if check == "checkHTTP" else "unexpected response: "


def tls_outcome(
    routing: EntryPointTCP, options: Dict[Optional[ObjectRef], TLSOption], check: str
) -> Optional[str]:
    """What a TLS check sees: the handler route_tls gives (HTTPS with its options, or a TLS TCP
    router), the version negotiated with that handler's option, then the handler's answer."""
    if routing.mode == "http":
        return NOT_TLS_HERE
    wanted = 0x301 if check.endswith("TLS10") else 0x303
    https_check = check.startswith("checkHTTPS")
    alpn: Tuple[str, ...] = ("acme-tls/1",) if check == "checkACMETLS" else ()
    kind, target = routing.route_tls(TCPConnectionInfo("foo.bar", alpn, CLIENT_IP))
    if kind == HTTPS:
        named: Optional[HTTPSName] = target  # type: ignore[assignment]
        ref = named.options if named is not None else None
    else:
        assert kind == TCP_TLS
        router: TCPRouter = target  # type: ignore[assignment]
        assert router.tls is not None
        if router.tls.passthrough:
            # The backend gets the ClientHello and answers TCP-CLIENT-FIRST.
            return "tls: first record does not look like a TLS handshake"
        ref = router.tls.options
    version = negotiated(options[ref])  # type: ignore[index]
    if version is None:
        return "protocol version not supported"
    if https_check and kind == TCP_TLS:
        return "malformed HTTP response"  # the backend's answer, read before the version
    if version != wanted:
        return "wrong TLS version"
    if not https_check and kind == HTTPS:
        return "i/o timeout"  # the HTTPS server waits for the end of the "HELLO" request line
    return None


def check_outcome(routers: Sequence[str], check: str) -> Optional[str]:
    table, options = routing_table(routers)
    routing = table.entrypoint_tcp("web")
    assert routing is not None
    if check in ("checkTCPClientFirst", "checkTCPServerFirst", "checkHTTP"):
        return plain_outcome(routing, check)
    return tls_outcome(routing, options, check)


def routing_cases() -> List[Tuple[str, str, Any]]:
    cases = []
    for group in load_vectors("tcp-rules.json")["groups"]:
        if not group["id"].endswith("-entrypoint-routing"):
            continue
        assert set(group["router_legend"]) == set(LEGEND_ROUTERS), group["id"]
        for index, case in enumerate(group["cases"]):
            checks = case["expected"]["checks"]
            assert len({c["check"] for c in checks}) == len(checks)
            for item in checks:
                key = "tcp-rules.json#%s#%d#%s" % (group["id"], index, item["check"])
                description = "%s: %s" % (case["description"], item["description"])

                def body(
                    test: SynchronousTestCase,
                    routers: List[str] = case["inputs"]["routers"],
                    item: Dict[str, Any] = item,
                    key: str = key,
                ) -> None:
                    check(test, key, check_outcome(routers, item["check"]), item["expectedError"])

                cases.append((key, description, body))
    return cases


class EntryPointRoutingMatrixTests(SynchronousTestCase):
    """Traefik's Test_Routing matrix (v2.10 and v3), each check decided by EntryPointTCP:
    which handler gets the connection and what that means for the client. Listed
    deviations: tsproxy gives non-TLS bytes to HTTP routers before plain TCP routers, reads
    an entrypoint without TCP or HTTPS routers as HTTP from the first byte, and has no ACME."""


add_case_tests(EntryPointRoutingMatrixTests, "check", routing_cases())


class ModeTests(SynchronousTestCase):
    """How an entrypoint takes a new connection, by the routers it has."""

    def test_table(self) -> None:
        """HTTP only or nothing: http; plain TCP only: fast; plain TCP with HTTP routers, a
        TLS TCP router or an HTTPS router: peek."""
        cases = [
            ([], "http"),
            (["routerHTTP"], "http"),
            (["routerTCPCatchAll"], "fast"),
            (["routerTCPCatchAll", "routerHTTP"], "peek"),
            (["routerTCPTLS"], "peek"),
            (["routerTCPTLSCatchAllPassthrough"], "peek"),
            (["routerHTTPS"], "peek"),
            (["routerHTTPSPathPrefix", "routerHTTP"], "peek"),
            (["routerTCPCatchAll", "routerHTTPS"], "peek"),
        ]
        for routers, mode in cases:
            routing = routing_table(routers)[0].entrypoint_tcp("web")
            assert routing is not None
            self.assertEqual(routing.mode, mode, routers)

    def test_acceptAndCleartext(self) -> None:
        """Fast mode routes at accept when a plain router takes the client's address; else the
        first bytes decide, and with no plain router for them the connection is closed."""
        text = ingress_tcp("db", GOOD, "  entryPoints: [web]\n")
        routing = table_of([("backends.yaml", BACKENDS), ("db.yaml", text)]).entrypoint_tcp("web")
        assert routing is not None
        self.assertEqual(routing.mode, "fast")
        router = routing.route_at_accept("10.1.2.3")
        self.assertEqual(router.rule if router else None, "ClientIP(`10.0.0.0/8`)")
        self.assertIsNone(routing.route_at_accept("192.0.2.1"))
        self.assertEqual(routing.route_cleartext("192.0.2.1"), (CLOSE, None))
        self.assertEqual(routing.route_cleartext("10.1.2.3"), (TCP, router))

    def test_httpRoutersTakeCleartext(self) -> None:
        """With HTTP routers on the entrypoint, non-TLS bytes go to them, never to plain TCP
        routers, and nothing is routed at accept."""
        routing = routing_table(["routerTCPCatchAll", "routerHTTP"])[0].entrypoint_tcp("web")
        assert routing is not None
        self.assertIsNone(routing.route_at_accept(CLIENT_IP))
        self.assertEqual(routing.route_cleartext(CLIENT_IP), (HTTP, None))
        self.assertIsNotNone(routing.route_plain(TCPConnectionInfo("", (), CLIENT_IP)))


def tls_ingress(name: str, match: str, tls: str, priority: str = "") -> str:
    return ingress_tcp(
        name,
        f"- match: {match}\n{priority}  services: [{{name: pg, port: 5432}}]\n",
        f"  entryPoints: [web]\n  tls: {tls}\n",
    )


def https_ingress(name: str, match: str, options: str = "") -> str:
    tls = f"{{options: {{name: {options}}}}}" if options else "{}"
    return (
        f"apiVersion: traefik.io/v1alpha1\nkind: IngressRoute\nmetadata: {{name: {name}}}\n"
        f"spec:\n  entryPoints: [web]\n  tls: {tls}\n  routes:\n    - match: {match}\n"
        "      services: [{name: pg, port: 5432}]\n"
    )


TLS_OPTIONS = "".join(
    f"---\napiVersion: traefik.io/v1alpha1\nkind: TLSOption\nmetadata: {{name: {name}}}\n"
    "spec: {minVersion: VersionTLS12}\n"
    for name in ("modern", "legacy")
)


class RouteTLSTests(SynchronousTestCase):
    """route_tls beyond the matrix: Traefik's muxers keep only their first match."""

    def route(self, files: Sequence[Tuple[str, str]], sni: str) -> Tuple[str, Any]:
        table = table_of([("backends.yaml", BACKENDS)] + list(files))
        routing = table.entrypoint_tcp("web")
        assert routing is not None
        return routing.route_tls(TCPConnectionInfo(sni, (), CLIENT_IP))

    def test_catchAllWithHigherPriorityHidesSpecific(self) -> None:
        """A HostSNI(`*`) TLS router with a priority above a specific one is the first match:
        it is used after the HTTPS catch-all, and the specific router never."""
        files = [
            (
                "a.yaml",
                tls_ingress("any", "HostSNI(`*`)", "{passthrough: true}", "  priority: 100\n"),
            ),
            ("b.yaml", tls_ingress("one", "HostSNI(`a.example`)", "{passthrough: true}")),
        ]
        kind, router = self.route(files, "a.example")
        self.assertEqual((kind, router.rule), (TCP_TLS, "HostSNI(`*`)"))
        kind, named = self.route(
            files + [("c.yaml", https_ingress("web", "PathPrefix(`/`)"))], "a.example"
        )
        self.assertEqual((kind, named), (HTTPS, None))

    def test_specificBeforeHTTPSCatchAll(self) -> None:
        """A specific TLS router wins over a Host-less HTTPS router, an HTTPS host over it."""
        files = [
            ("a.yaml", tls_ingress("one", "HostSNI(`a.example`)", "{}")),
            ("b.yaml", https_ingress("web", "PathPrefix(`/`)")),
        ]
        kind, router = self.route(files, "a.example")
        self.assertEqual((kind, router.rule), (TCP_TLS, "HostSNI(`a.example`)"))
        self.assertEqual(self.route(files, "b.example"), (HTTPS, None))
        kind, named = self.route(
            files + [("c.yaml", https_ingress("site", "Host(`a.example`)"))], "a.example"
        )
        self.assertEqual((kind, named.name, named.options), (HTTPS, "a.example", None))

    def test_conflictingHTTPSOptions(self) -> None:
        """HTTPS routers for one host naming different TLS options: the host gets the default
        options (as in Traefik) and the conflict is recorded; agreeing routers keep theirs."""
        files = [
            ("options.yaml", TLS_OPTIONS),
            ("a.yaml", https_ingress("one", "Host(`a.example`) || Host(`b.example`)", "modern")),
            ("b.yaml", https_ingress("two", "Host(`a.example`) && Path(`/x`)", "legacy")),
            ("c.yaml", https_ingress("three", "Host(`b.example`) && Path(`/y`)", "modern")),
        ]
        kind, named = self.route(files, "a.example")
        self.assertEqual((kind, named.name, named.options), (HTTPS, "a.example", None))
        kind, named = self.route(files, "b.example")
        self.assertEqual(
            (kind, named.name, named.options), (HTTPS, "b.example", ObjectRef("modern", "default"))
        )
        table = table_of([("backends.yaml", BACKENDS)] + files)
        routing = table.entrypoint_tcp("web")
        assert routing is not None
        self.assertEqual(
            {
                host: sorted(r.source.resource for r in routers)
                for host, routers in routing.option_conflicts.items()
            },  # type: ignore[attr-defined]
            {"a.example": ["IngressRoute default/one", "IngressRoute default/two"]},
        )
