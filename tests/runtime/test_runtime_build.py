"""Tests for tsproxy.runtime.build: the seed scenario, names, located build errors, reuse."""

from __future__ import annotations

import hashlib
import os
import textwrap
from typing import List, Optional, Tuple

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.api.model import rawdata
from tsproxy.config.load import load_directory, load_files
from tsproxy.runtime.build import BuildResult, build_table, normalize, router_key
from tsproxy.runtime.services import (
    LoadBalancer,
    MirroringService,
    Server,
    TransportSettings,
    WeightedService,
    resolve,
)
from tsproxy.runtime.table import RoutingTable

SEED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "seed")
STATIC = """\
entryPoints:
  web:
    address: ":8000"
  admin:
    address: "127.0.0.1:8080"
  dns:
    address: ":5353/udp"
"""
# Two Services on port 80 (named http) with one endpoint each, in their own file.
BACKENDS = """\
apiVersion: v1
kind: Service
metadata: {name: app-v1}
spec: {ports: [{name: http, port: 80, targetPort: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: app-v2}
spec: {ports: [{name: http, port: 80, targetPort: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: app-v1}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{name: http, port: 9001}]}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: app-v2}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{name: http, port: 9002}]}]
"""


def build(
    text: str, previous: Optional[RoutingTable] = None, static: str = STATIC
) -> Tuple[BuildResult, List[str], List[str]]:
    files = [("backends.yaml", BACKENDS), ("wrr.yaml", textwrap.dedent(text))]
    loaded = load_files(static, files)
    assert loaded.errors == (), loaded.errors
    result = build_table(loaded, previous)
    return result, [str(e) for e in result.errors], [str(w) for w in result.warnings]


def route(services: str, match: str = "Host(`a`)", extra: str = "") -> str:
    """An IngressRoute named app with one route; its services block is given as YAML."""
    head = f"""\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {{name: app}}
spec:
{extra}  routes:
    - match: {match}
      services:
"""
    return head + textwrap.indent(textwrap.dedent(services), "        ")


def traefik_service(name: str, spec: str) -> str:
    return (
        f"apiVersion: traefik.io/v1alpha1\nkind: TraefikService\nmetadata: {{name: {name}}}\nspec:\n"
        + textwrap.indent(textwrap.dedent(spec), "  ")
    )


class SeedTests(SynchronousTestCase):
    """The demo configuration: WRR, sticky and mirroring TraefikServices behind three hosts."""

    def test_seed(self) -> None:
        """The seed builds without problems into three routers on web and five services."""
        result = build_table(load_directory(SEED))
        self.assertEqual((result.errors, result.warnings), ((), ()))
        table = result.table
        assert table is not None
        self.assertEqual(
            [(r.rule, r.service.name, r.priority) for r in table.http_routers("web")],
            [
                ("Host(`traefikservice-cokie.kubesre.lc`)", "default-app-cookie", 39),
                ("Host(`traefikservice-copy.kubesre.lc`)", "default-app-mirror", 38),
                ("Host(`traefikservice-wrr.kubesre.lc`)", "default-app-wrr", 37),
            ],
        )
        self.assertEqual(
            sorted(table.services),
            [
                "default-app-cookie",
                "default-app-mirror",
                "default-app-v1-80",
                "default-app-v2-80",
                "default-app-wrr",
            ],
        )
        v1 = table.services["default-app-v1-80"]
        assert isinstance(v1, LoadBalancer)
        self.assertEqual(
            v1.definition.servers, (Server("http", "127.0.0.1", 9001, "http://127.0.0.1:9001"),)
        )
        cookie = table.services["default-app-cookie"]
        assert isinstance(cookie, WeightedService)
        assert cookie.definition.sticky is not None
        self.assertEqual(cookie.definition.sticky.name, "cookie")
        self.assertEqual(
            [(c.name, c.weight) for c in cookie.definition.children],
            [("default-app-v1-80", 1), ("default-app-v2-80", 2)],
        )
        mirror = table.services["default-app-mirror"]
        assert isinstance(mirror, MirroringService)
        self.assertIs(mirror.main, v1)
        self.assertEqual(mirror.mirrors, (table.services["default-app-v2-80"],))
        self.assertEqual(mirror.counter.percents, (10,))
        self.assertEqual(table.static.entrypoint("web").port, 8000)


class NameTests(SynchronousTestCase):
    """Router and service names as Traefik's CRD provider makes them."""

    def test_normalize(self) -> None:
        """Runs of characters other than letters and digits become one dash."""
        cases = [
            ("default-test.route", "default-test-route"),
            ("a__b..c", "a-b-c"),
            ("-x-", "x"),
            ("été-1", "été-1"),
        ]
        for name, expected in cases:
            self.assertEqual(normalize(name), expected)

    def test_routerKey(self) -> None:
        """The router key hashes the match: Traefik's documented example."""
        self.assertEqual(
            router_key("default", "test.route", "Host(`foo.com`) && PathPrefix(`/bar`)"),
            "default-test-route-6b204d94623b3df4370c",
        )

    def test_serviceNames(self) -> None:
        """One Service: servers under the router key; several: a weighted service there."""
        result, errors, _ = build(
            route("- {name: app-v1, port: 80}\n- {name: app-v2, port: http, weight: 3}\n")
        )
        self.assertEqual(errors, [])
        table = result.table
        assert table is not None
        (router,) = table.http_routers("web")
        key = router_key("default", "app", "Host(`a`)")
        self.assertEqual(router.name, key)
        weighted = router.service
        assert isinstance(weighted, WeightedService)
        self.assertEqual((weighted.name, weighted.definition.sticky), (key, None))
        self.assertEqual(
            [(c.name, c.weight) for c in weighted.definition.children],
            [("default-app-v1-80", 1), ("default-app-v2-http", 3)],
        )
        result, _, _ = build(route("- {name: app-v1, port: 80, sticky: {cookie: {}}}\n"))
        assert result.table is not None
        (router,) = result.table.http_routers("web")
        self.assertEqual(router.service.name, key)
        assert (
            isinstance(router.service, LoadBalancer)
            and router.service.definition.sticky is not None
        )
        digest = hashlib.sha1(f"_TRAEFIK_BACKEND_{key}@kubernetescrd".encode()).hexdigest()
        self.assertEqual(router.service.definition.sticky.name, "_" + digest[:5])


class EntrypointTests(SynchronousTestCase):
    """Which entrypoints a route lands on."""

    def test_table(self) -> None:
        """None listed means every TCP entrypoint; unknown and UDP ones are errors."""
        not_found = "wrr.yaml:1: IngressRoute default/app: entrypoint nope not found"
        udp = "wrr.yaml:1: IngressRoute default/app: entrypoint dns is a UDP entrypoint, HTTP routes cannot use it"
        dropped = "wrr.yaml:7: IngressRoute default/app: spec.routes[0]: no usable entrypoint, route dropped"
        cases = [
            ("", [], ("web", "admin")),
            ("  entryPoints: [admin]\n", [], ("admin",)),
            ("  entryPoints: [nope, dns, admin]\n", [not_found, udp], ("admin",)),
            ("  entryPoints: [nope]\n", [not_found, dropped], None),
        ]
        for extra, expected_errors, entrypoints in cases:
            result, errors, _ = build(route("- {name: app-v1, port: 80}\n", extra=extra))
            self.assertEqual(errors, expected_errors, extra)
            assert result.table is not None
            routers = result.table.routers
            self.assertEqual(routers[0].entrypoints if routers else None, entrypoints, extra)
            for name in ("web", "admin", "dns"):
                on = len(result.table.http_routers(name))
                self.assertEqual(on, int(name in (entrypoints or ())), (extra, name))


GOOD_ROUTE = """\
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: good}
spec:
  routes:
    - match: Host(`good`)
      services: [{name: app-v1, port: 80}]
"""

# (documents, exact errors). GOOD_ROUTE is appended to each: it must survive every one.
BROKEN = [
    (
        route("- {name: app-v3, port: 80}\n"),
        ["wrr.yaml:8: IngressRoute default/app: service default/app-v3 not found"],
    ),
    (
        route("- {name: app-v1, port: 81}\n"),
        ["wrr.yaml:8: IngressRoute default/app: port 81 not found in service default/app-v1"],
    ),
    (
        route("- {name: app-v1, port: web}\n"),
        ["wrr.yaml:8: IngressRoute default/app: port web not found in service default/app-v1"],
    ),
    (
        route("- {name: app-v1, port: 80}\n- {name: app-v1, port: 80, namespace: other}\n"),
        [
            "wrr.yaml:9: IngressRoute default/app: other/app-v1 is in another namespace:"
            " cross-namespace references need providers.kubernetesCRD.allowCrossNamespace"
        ],
    ),
    (
        route("- {name: wrr, kind: TraefikService}\n"),
        ["wrr.yaml:8: IngressRoute default/app: TraefikService default/wrr not found"],
    ),
    (
        route("- {name: other-wrr@kubernetescrd, kind: TraefikService}\n"),
        [
            "wrr.yaml:8: IngressRoute default/app: TraefikService other-wrr@kubernetescrd: the"
            " namespace-name@kubernetescrd form is not allowed when cross-namespace references"
            " are not (providers.kubernetesCRD.allowCrossNamespace)"
        ],
    ),
    (
        route("- {name: app-v1, port: 80, serversTransport: other-tls@kubernetescrd}\n"),
        [
            "wrr.yaml:8: IngressRoute default/app: serversTransport other-tls@kubernetescrd: the"
            " namespace-name@kubernetescrd form is not allowed when cross-namespace references"
            " are not (providers.kubernetesCRD.allowCrossNamespace)"
        ],
    ),
    (
        route("- {name: app-v1, port: 80}\n", match="Host(`a`"),
        ["wrr.yaml:6: IngressRoute default/app: match: column 9: expected ')' after argument"],
    ),
    (
        route("[]\n"),
        [
            "wrr.yaml:6: IngressRoute default/app: spec.routes[0].services: no service, route dropped"
        ],
    ),
    (
        route("- {name: app-v1, port: 80, serversTransport: fast}\n"),
        [
            "wrr.yaml:8: IngressRoute default/app: serversTransport fast not found in namespace default"
        ],
    ),
    (
        route("- {name: app-v1, port: 80, serversTransport: fast@file}\n"),
        ["wrr.yaml:8: IngressRoute default/app: serversTransport fast@file does not exist"],
    ),
    (
        traefik_service(
            "wrr",
            "weighted:\n  services:\n    - {name: app-v1, port: 80}\n    - {name: app-v3, port: 80}\n",
        )
        + "---\n"
        + route("- {name: wrr, kind: TraefikService}\n"),
        [
            "wrr.yaml:8: TraefikService default/wrr: service default/app-v3 not found",
            "wrr.yaml:17: IngressRoute default/app: TraefikService default/wrr has errors (see wrr.yaml:8)",
        ],
    ),
    (
        traefik_service("a", "weighted:\n  services:\n    - {name: b, kind: TraefikService}\n")
        + "---\n"
        + traefik_service(
            "b",
            "mirroring:\n  name: app-v1\n  port: 80\n  mirrors:\n    - {name: a, kind: TraefikService, percent: 5}\n",
        )
        + "---\n"
        + traefik_service(
            "c",
            "weighted:\n  services:\n    - {name: a, kind: TraefikService}\n    - {name: app-v1, port: 80}\n",
        ),
        [
            "wrr.yaml:17: TraefikService default/b: reference cycle: default/a -> default/b -> default/a",
            "wrr.yaml:7: TraefikService default/a: reference cycle: default/a -> default/b -> default/a",
            "wrr.yaml:25: TraefikService default/c: TraefikService default/a has errors (see wrr.yaml:7)",
        ],
    ),
    (
        traefik_service("self", "mirroring:\n  name: self\n  kind: TraefikService\n"),
        ["wrr.yaml:6: TraefikService default/self: reference cycle: default/self -> default/self"],
    ),
    (
        traefik_service(
            "outer", "weighted:\n  services:\n    - {name: inner, kind: TraefikService}\n"
        )
        + "---\n"
        + traefik_service("inner", "weighted:\n  services:\n    - {name: app-v1, port: 99}\n"),
        [
            "wrr.yaml:15: TraefikService default/inner: port 99 not found in service default/app-v1",
            "wrr.yaml:7: TraefikService default/outer: TraefikService default/inner has errors (see wrr.yaml:15)",
        ],
    ),
    (
        traefik_service(
            "wrr",
            "weighted:\n  healthCheck: {}\n  services:\n    - {name: app-v1, port: 80, healthCheck: {path: /}}\n"
            "    - {name: app-v2, port: 80}\n",
        ),
        [
            "wrr.yaml:9: TraefikService default/wrr: service default-app-v2-80 reports no status"
            " (the parent has healthCheck: {}): it needs a healthCheck"
        ],
    ),
    (
        traefik_service(
            "fo",
            "failover:\n  service: {name: inner, kind: TraefikService}\n  fallback: {name: app-v2, port: 80}\n",
        )
        + "---\n"
        + traefik_service("inner", "weighted:\n  services:\n    - {name: app-v1, port: 80}\n"),
        [
            "wrr.yaml:6: TraefikService default/fo: service default-inner reports no status"
            " (failover follows it): it needs healthCheck: {}"
        ],
    ),
    (
        traefik_service(
            "fo",
            "failover:\n  healthCheck: {}\n  service: {name: app-v1, port: 80, passiveHealthCheck: {}}\n"
            "  fallback: {name: app-v2, port: 80}\n",
        ),
        [
            "wrr.yaml:8: TraefikService default/fo: service default-app-v2-80 reports no status"
            " (the failover has healthCheck: {}): it needs a healthCheck"
        ],
    ),
    (
        "apiVersion: v1\nkind: Service\nmetadata: {name: lonely}\nspec: {ports: [{port: 80}]}\n---\n"
        + route("- {name: lonely, port: 80}\n"),
        ["wrr.yaml:13: IngressRoute default/app: no endpoints for service default/lonely"],
    ),
]


class BrokenReferenceTests(SynchronousTestCase):
    """Each broken route or TraefikService is a located error; everything else still routes."""

    def test_table(self) -> None:
        """Every row gives exactly its errors and keeps the good route."""
        for text, expected in BROKEN:
            result, errors, _ = build(text + GOOD_ROUTE)
            self.assertEqual(errors, expected, text)
            assert result.table is not None
            self.assertEqual(
                [r.rule for r in result.table.http_routers("web")], ["Host(`good`)"], text
            )

    def test_failedKeptForAPI(self) -> None:
        """Every row's errors are on the table's failed routers, failed TraefikServices or
        router warnings (as messages without their location); the good route is not failed."""
        for text, _expected in BROKEN:
            result, _, _ = build(text + GOOD_ROUTE)
            table = result.table
            assert table is not None
            recorded = {m for r in table.failed_routers for m in r.errors}
            recorded |= {m for s in table.failed_services for m in s.errors}
            recorded |= {m for w in table.router_warnings for m in w.errors}
            messages = {e.message for e in result.errors}
            self.assertEqual(recorded, messages, text)
            self.assertNotIn("Host(`good`)", [r.rule for r in table.failed_routers], text)
            self.assertEqual(
                [s.name for s in table.failed_services],
                [
                    normalize(e.resource.split(" ")[1])
                    for e in result.errors
                    if "TraefikSer" in e.resource
                ],
                text,
            )

    def test_laterFailedRouteReplaces(self) -> None:
        """A later route with the same match replaces an earlier one even when it fails, as
        a later key does in Traefik: the router is shown disabled and routes nothing."""
        text = (
            route("- {name: app-v1, port: 80}\n")
            + "    - match: Host(`a`)\n      services: [{name: nope, port: 80}]\n"
        )
        result, errors, warnings = build(text)
        table = result.table
        assert table is not None
        self.assertEqual(table.http_routers("web"), ())
        (failed,) = table.failed_routers
        key = router_key("default", "app", "Host(`a`)")
        self.assertEqual(
            (failed.protocol, failed.name, failed.entrypoints, failed.service, failed.errors),
            ("http", key, ("web", "admin"), key, ("service default/nope not found",)),
        )
        self.assertEqual(len(errors), 1)
        self.assertIn("replaces it", warnings[0])

    def test_cycleStopsWalks(self) -> None:
        """Services in a cycle are left out of the table, the ones outside it stay."""
        text = (
            BROKEN[11][0]
            + "---\n"
            + traefik_service("d", "weighted:\n  services:\n    - {name: app-v1, port: 80}\n")
        )
        result, _, _ = build(text)
        assert result.table is not None
        self.assertEqual(sorted(result.table.services), ["default-app-v1-80", "default-d"])


class WarningTests(SynchronousTestCase):
    """Configurations that build but probably do not do what was meant."""

    def test_allWeightsZero(self) -> None:
        """A weighted service whose children all weigh 0 answers 503: a warning says so."""
        text = traefik_service(
            "wrr", "weighted:\n  services:\n    - {name: app-v1, port: 80, weight: 0}\n"
        )
        text += "---\n" + route(
            "- {name: app-v1, port: 80, weight: 0}\n- {name: app-v2, port: 80, weight: 0}\n"
        )
        _, errors, warnings = build(text)
        self.assertEqual(errors, [])
        self.assertEqual(
            warnings,
            [
                "wrr.yaml:1: TraefikService default/wrr: no service with a weight above 0: requests get 503",
                "wrr.yaml:14: IngressRoute default/app: spec.routes[0]: no service with a weight above 0: requests get 503",
            ],
        )

    def test_sameMatchTwice(self) -> None:
        """Two routes with the same match share a key: the later replaces the earlier."""
        text = (
            route("- {name: app-v1, port: 80}\n")
            + "    - match: Host(`a`)\n      services: [{name: app-v2, port: 80}]\n"
        )
        result, errors, warnings = build(text)
        self.assertEqual(errors, [])
        self.assertEqual(
            warnings,
            [
                "wrr.yaml:9: IngressRoute default/app: spec.routes[1]: same match as the route at wrr.yaml:6, replaces it"
            ],
        )
        assert result.table is not None
        (router,) = result.table.http_routers("web")
        self.assertEqual(router.service.definition.servers[0].port, 9002)  # type: ignore[union-attr]


class TransportTests(SynchronousTestCase):
    """ServersTransport references reach the servers they apply to."""

    TRANSPORT = """\
apiVersion: traefik.io/v1alpha1
kind: ServersTransport
metadata: {name: fast, namespace: default}
spec:
  forwardingTimeouts: {dialTimeout: 2s, responseHeaderTimeout: 5s}
  maxIdleConnsPerHost: 10
---
"""

    def test_byNameAndQualified(self) -> None:
        """``fast`` in the route's namespace and ``default-fast@kubernetescrd`` (allowed with
        allowCrossNamespace only, as in Traefik) are the same."""
        expected = TransportSettings(
            dial_timeout=2.0, response_header_timeout=5.0, max_idle_conns_per_host=10
        )
        cross = STATIC + "providers:\n  kubernetesCRD: {allowCrossNamespace: true}\n"
        for reference, static in (("fast", STATIC), ("default-fast@kubernetescrd", cross)):
            result, errors, _ = build(
                self.TRANSPORT
                + route(f"- {{name: app-v1, port: 80, serversTransport: {reference}}}\n"),
                static=static,
            )
            self.assertEqual(errors, [])
            assert result.table is not None
            (router,) = result.table.http_routers("web")
            self.assertEqual(router.service.definition.servers[0].transport, expected)  # type: ignore[union-attr]

    def test_default(self) -> None:
        """No serversTransport, or default@internal: the default settings."""
        for extra in ("", ", serversTransport: default@internal"):
            result, _, _ = build(route(f"- {{name: app-v1, port: 80{extra}}}\n"))
            assert result.table is not None
            server = result.table.http_routers("web")[0].service.definition.servers[0]  # type: ignore[union-attr]
            self.assertEqual(server.transport, TransportSettings())

    def test_staticDefault(self) -> None:
        """The static serversTransport is the default: a route's servers, a health-checked
        one's (its checks use it), ``default@internal``; a named transport still wins."""
        static = STATIC + (
            "serversTransport:\n  insecureSkipVerify: true\n"
            "  forwardingTimeouts: {responseHeaderTimeout: 3s}\n"
        )
        default = TransportSettings(insecure_skip_verify=True, response_header_timeout=3.0)
        named = TransportSettings(
            dial_timeout=2.0, response_header_timeout=5.0, max_idle_conns_per_host=10
        )
        cases = [
            ("", default),
            (", serversTransport: default@internal", default),
            (", healthCheck: {path: /ok}", default),
            (", serversTransport: fast", named),
        ]
        for extra, expected in cases:
            with self.subTest(extra=extra):
                text = self.TRANSPORT + route(f"- {{name: app-v1, port: 80{extra}}}\n")
                result, errors, _ = build(text, static=static)
                self.assertEqual(errors, [])
                assert result.table is not None
                server = result.table.http_routers("web")[0].service.definition.servers[0]  # type: ignore[union-attr]
                self.assertEqual(server.transport, expected)


class ReuseTests(SynchronousTestCase):
    """A rebuild keeps the balancer state of services whose definition did not change."""

    def test_unchangedKept(self) -> None:
        """WRR position and mirror counters carry over; a changed service starts afresh."""
        first = build_table(load_directory(SEED))
        assert first.table is not None
        wrr = first.table.services["default-app-wrr"]
        assert isinstance(wrr, WeightedService)
        wrr.choose(None, [])
        second = build_table(load_directory(SEED), first.table)
        assert second.table is not None
        for name, node in first.table.services.items():
            self.assertIs(second.table.services[name], node, name)
        self.assertIs(second.table.http_routers("web")[2].service, wrr)

        one, _, _ = build(route("- {name: app-v1, port: 80}\n- {name: app-v2, port: 80}\n"))
        two, _, _ = build(
            route("- {name: app-v1, port: 80, weight: 5}\n- {name: app-v2, port: 80}\n"), one.table
        )
        assert one.table is not None and two.table is not None
        before = one.table.http_routers("web")[0].service
        after = two.table.http_routers("web")[0].service
        self.assertIsNot(before, after)
        assert isinstance(before, WeightedService) and isinstance(after, WeightedService)
        self.assertEqual([c is d for c, d in zip(before.children, after.children)], [True, True])

    def test_noStatic(self) -> None:
        """Without a static configuration there is no table, and no extra error."""
        result = build_table(load_files(None, [("backends.yaml", BACKENDS)]))
        self.assertEqual(result, BuildResult(None, (), ()))


NAMES = st.sampled_from(["app-v1", "app-v2", "app-v3", "t1", "t2", "t3"])
REFS = st.fixed_dictionaries(
    {"name": NAMES, "kind": st.sampled_from(["Service", "TraefikService"])},
    optional={
        "port": st.sampled_from([80, 81, "http", "web"]),
        "weight": st.integers(0, 3),
        "percent": st.integers(0, 100),
        "sticky": st.just({"cookie": {}}),
        "namespace": st.sampled_from(["default", "other"]),
    },
)


def ref_dict(ref: dict) -> dict:  # type: ignore[type-arg]
    """A ref as YAML data; percent only makes sense for mirrors, ports only for Services."""
    ref = {key: value for key, value in ref.items() if key != "percent"}
    if ref["kind"] == "Service":
        ref.setdefault("port", 80)
    return ref


TRAEFIK_SERVICES = st.lists(
    st.tuples(
        st.sampled_from(["t1", "t2", "t3"]),
        st.booleans(),
        st.lists(REFS, min_size=1, max_size=3),
    ),
    max_size=4,
    unique_by=lambda t: t[0],
)
ROUTES = st.lists(
    st.tuples(
        st.sampled_from(["Host(`a`)", "Host(`b`)", "Path(`/x`)", "Host(`a`"]),
        st.lists(REFS, max_size=3),
    ),
    max_size=4,
)


class ArbitraryGraphTests(SynchronousTestCase):
    """Random service graphs (missing names, cycles, bad ports) build without raising."""

    @settings(max_examples=200, deadline=None)
    @given(TRAEFIK_SERVICES, ROUTES)
    def test_neverRaises(self, services: list, routes: list) -> None:  # type: ignore[type-arg]
        """Every problem is a located error and every router that built resolves."""
        documents = []
        for name, weighted, refs in services:
            if weighted:
                spec = {"weighted": {"services": [ref_dict(r) for r in refs]}}
            else:
                mirrors = [dict(ref_dict(r), percent=r.get("percent", 50)) for r in refs[1:]]
                spec = {"mirroring": dict(ref_dict(refs[0]), mirrors=mirrors)}
            documents.append(
                {
                    "apiVersion": "traefik.io/v1alpha1",
                    "kind": "TraefikService",
                    "metadata": {"name": name},
                    "spec": spec,
                }
            )
        documents.append(
            {
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "IngressRoute",
                "metadata": {"name": "r"},
                "spec": {
                    "routes": [
                        {"match": match, "services": [ref_dict(r) for r in refs]}
                        for match, refs in routes
                    ]
                },
            }
        )
        loaded = load_files(
            STATIC, [("backends.yaml", BACKENDS), ("g.yaml", yaml.safe_dump_all(documents))]
        )
        result = build_table(loaded)
        for error in loaded.errors + result.errors + result.warnings:
            self.assertRegex(
                str(error), r"^g\.yaml:\d+: (TraefikService|IngressRoute) \w+/[\w.-]+: \S"
            )
        assert result.table is not None
        for router in result.table.routers:
            for _ in range(3):
                pick = resolve(router.service, None)
                self.assertTrue(
                    pick.server is None or pick.server.url.startswith("http://127.0.0.1:900")
                )


TLS_STATIC = """\
entryPoints:
  web: {address: ":8000"}
  websecure:
    address: ":8443"
    http:
      tls: {options: modern, domains: [{main: x.test, sans: [y.test]}]}
  ws2:
    address: ":8444"
    http:
      tls: {options: modern@file}
      redirections: {entryPoint: {to: websecure}}
providers:
  file: {filename: d.yml}
  kubernetesCRD: {}
"""
TLS_DYNAMIC = """\
http:
  routers:
    noeps: {rule: Host(`a`), service: noop@internal}
    owntls:
      {rule: Host(`c`), service: noop@internal, entryPoints: [websecure], tls: {options: other}}
    webonly: {rule: Host(`d`), service: noop@internal, entryPoints: [web]}
tcp:
  routers:
    t: {rule: HostSNI(`*`), service: ts, entryPoints: [websecure]}
  services:
    ts: {loadBalancer: {servers: [{address: "127.0.0.1:9"}]}}
tls:
  options:
    modern: {minVersion: VersionTLS13}
    other: {minVersion: VersionTLS12}
"""
TLS_CRD = """\
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: ir1}
spec:
  entryPoints: [websecure]
  routes: [{match: Host(`e`), services: [{name: app-v1, port: 80}]}]
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: ir2}
spec:
  entryPoints: [ws2]
  routes: [{match: Host(`f`), services: [{name: app-v1, port: 80}]}]
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: ir3}
spec:
  entryPoints: [websecure]
  routes: [{match: Host(`g`), services: [{name: app-v1, port: 80}]}]
  tls: {options: {name: other@file}}
"""


class EntrypointTLSTests(SynchronousTestCase):
    """``entryPoints.<name>.http.tls``: HTTP routers on it without tls of their own become
    HTTPS routers with its TLS (Traefik's applyModel), for every provider, at build time."""

    def test_routers(self) -> None:
        """(router, its entrypoints, its TLS options key or None for a plain router, the
        domains); TCP routers stay as they are; an unusable option disables the router."""
        loaded = load_files(
            TLS_STATIC, [("crd.yaml", BACKENDS + TLS_CRD)], dynamic=[("d.yml", TLS_DYNAMIC)]
        )
        self.assertEqual(loaded.errors, ())
        result = build_table(loaded)
        ir1 = router_key("default", "ir1", "Host(`e`)")
        ir2 = router_key("default", "ir2", "Host(`f`)")
        ir3 = router_key("default", "ir3", "Host(`g`)")
        self.assertEqual(
            [str(e) for e in result.errors],
            [
                "tsproxy.yaml:3: entrypoint websecure: http.tls.options: unknown TLS options:"
                f" modern@kubernetescrd (router {ir1}), router disabled"
            ],
        )
        domains = (("x.test", ("y.test",)),)
        expected = {
            "noeps@file": (("web",), None, ()),
            "websecure-noeps@file": (("websecure",), "modern@file", domains),
            "ws2-noeps@file": (("ws2",), "modern@file", ()),
            "owntls@file": (("websecure",), "other@file", ()),
            "webonly@file": (("web",), None, ()),
            ir2: (("ws2",), "modern@file", ()),
            ir3: (("websecure",), "other@file", ()),
            "ws2-to-websecure@internal": (("ws2",), "modern@file", ()),
        }
        table = result.table
        assert table is not None
        found = {}
        for router in table.routers:
            tls = router.tls
            if tls is None:
                found[router.name] = (router.entrypoints, None, ())
                continue
            options = tls.options.name if tls.options is not None else "default"
            pairs = tuple((d.main, d.sans) for d in tls.domains)
            found[router.name] = (router.entrypoints, options, pairs)
        self.assertEqual(found, expected)
        (failed,) = [f for f in table.failed_routers if f.protocol == "http"]
        self.assertEqual((failed.name, failed.entrypoints), (ir1, ("websecure",)))
        (tcp,) = table.tcp_routers
        self.assertIsNone(tcp.tls)
        routers = rawdata(table)["routers"]
        self.assertEqual(
            routers["websecure-noeps@file"]["tls"],
            {"options": "modern", "domains": [{"main": "x.test", "sans": ["y.test"]}]},
        )
        self.assertEqual(routers["ws2-noeps@file"]["tls"], {"options": "modern@file"})
        self.assertEqual(routers[ir1 + "@kubernetescrd"]["status"], "disabled")
        self.assertEqual(
            sorted(r.name for r in table.http_routers("websecure", tls=True)),
            sorted(["websecure-noeps@file", "owntls@file", ir3]),
        )
        self.assertEqual(table.http_routers("websecure", tls=False), ())
        self.assertEqual(table.http_routers("ws2", tls=False), ())

    def test_default_options(self) -> None:
        """``tls: {}`` (or options default) gives the default options; without http.tls the
        routers stay plain."""
        dynamic = "http:\n  routers:\n    r: {rule: Host(`a`), service: noop@internal}\n"
        static = "entryPoints:\n  web:\n    address: ':80'\n    http:\n      tls: {TLS}\n"
        static += "providers:\n  file: {filename: d.yml}\n"
        for tls, expected in (("{}", True), ("{options: default}", True), ("", False)):
            with self.subTest(tls=tls):
                text = static.replace("{TLS}", tls) if tls else static.split("    http:")[0]
                if not tls:
                    text += "providers:\n  file: {filename: d.yml}\n"
                loaded = load_files(text, [], dynamic=[("d.yml", dynamic)])
                self.assertEqual(loaded.errors, ())
                result = build_table(loaded)
                self.assertEqual(result.errors, ())
                assert result.table is not None
                (router,) = result.table.routers
                self.assertEqual(router.tls is not None, expected)
                if expected:
                    self.assertIsNone(router.tls.options)  # type: ignore[union-attr]

    def test_kv_and_ingress(self) -> None:
        """A Redis router and a Kubernetes Ingress on the entrypoint take its TLS too; a bare
        options name is their own provider's (Traefik 3.7: ``unknown TLS options:
        modern@redis``, router disabled), a qualified one is found."""
        import attrs

        from tests.providers.test_providers_kube import BACKEND, INGRESS_DOC
        from tsproxy.providers.kv import parse_kv

        doc = INGRESS_DOC.format(
            annotations="{}", cls="traefik", host="i.test", path="/", kind="Prefix"
        )
        pairs = {
            "traefik/http/routers/r/rule": "Host(`r.test`)",
            "traefik/http/routers/r/service": "noop@internal",
        }
        kv, errors, _ = parse_kv(pairs, "traefik", "redis")
        self.assertEqual(tuple(errors), ())
        static = "entryPoints:\n  websecure:\n    address: ':8443'\n    http:\n      tls: {TLS}\n"
        static += "providers:\n  file: {filename: d.yml}\n  redis: {}\n  kubernetesIngress: {}\n"
        dynamic = "tls:\n  options:\n    modern: {minVersion: VersionTLS13}\n"
        cases = [
            ("{options: modern@file}", [], "modern@file", "modern@file"),
            (
                "{options: modern}",
                [
                    "unknown TLS options: modern@kubernetes (router default-web-i-test@kubernetes)",
                    "unknown TLS options: modern@redis (router r@redis)",
                ],
                None,
                None,
            ),
        ]
        for tls, problems, ingress_options, kv_options in cases:
            with self.subTest(tls=tls):
                loaded = load_files(
                    static.replace("{TLS}", tls),
                    [("routes.yaml", BACKEND + doc)],
                    dynamic=[("d.yml", dynamic)],
                )
                self.assertEqual(loaded.errors, ())
                result = build_table(attrs.evolve(loaded, kv=loaded.kv + (("redis", kv),)))
                messages = sorted(str(e) for e in result.errors)
                self.assertEqual(len(messages), len(problems), messages)
                for message, problem in zip(messages, problems):
                    self.assertIn(problem, message)
                assert result.table is not None
                found = {}
                for router in result.table.routers:
                    assert router.tls is not None and router.tls.options is not None
                    found[router.name.split("@")[-1]] = router.tls.options.name
                expected = {}
                if ingress_options:
                    expected = {"kubernetes": ingress_options, "redis": kv_options}
                self.assertEqual(found, expected)
