"""Traefik's API documents for the seed configuration (conf/ as shipped): shapes, filters,
sorting, paging and errors, table-driven, plus TCP routers and services from stand-ins."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Tuple

import attrs
from twisted.trial.unittest import TestCase

from tests.proxyfixture import CONF
from tsproxy.api import model
from tsproxy.config.errors import Location
from tsproxy.config.load import load_directory, load_files
from tsproxy.config.resources import ObjectRef, RouteTLS, TLSDomain
from tsproxy.runtime.build import build_table

WRR_ROUTER = "default-app-wrr-846b2c19626676e0a8ba@kubernetescrd"
WRR_TLS_ROUTER = "default-app-wrr-tls-846b2c19626676e0a8ba@kubernetescrd"
TCP_ROUTER = "default-greeter-673acf455cb2dab0b43a@kubernetescrd"
COOKIE_ROUTER = "default-app-cookie-cee4cf3c85f95a310363@kubernetescrd"
MIRROR_ROUTER = "default-app-mirror-65a322ec6e94019ea3b7@kubernetescrd"
CONTEXT = model.APIContext("0.1.0", "2024-05-01T10:00:00.5Z")


def seed_table() -> Any:
    result = build_table(load_directory(CONF))
    assert not result.errors, result.errors
    return result.table


def get(table: Any, target: str, method: str = "GET", context: Any = CONTEXT) -> model.APIAnswer:
    path, _, query = target.partition("?")
    return model.answer(method, path, query, table, context)


def body(answer: model.APIAnswer) -> Any:
    return json.loads(answer.body)


def names(answer: model.APIAnswer) -> List[str]:
    return [item["name"] for item in body(answer)]


class SeedDocumentTests(TestCase):
    """Whole documents for the seed's routers and services, field for field."""

    def setUp(self) -> None:
        self.table = seed_table()

    def test_router(self) -> None:
        """A router: Traefik's fields, the service unqualified, priorityStr 0 for a default."""
        answer = get(self.table, "/api/http/routers/" + WRR_ROUTER)
        self.assertEqual((answer.status, answer.content_type), (200, "application/json"))
        self.assertEqual(
            body(answer),
            {
                "entryPoints": ["web"],
                "service": "default-app-wrr",
                "rule": "Host(`traefikservice-wrr.kubesre.lc`)",
                "status": "enabled",
                "using": ["web"],
                "priorityStr": "0",
                "name": WRR_ROUTER,
                "provider": "kubernetescrd",
            },
        )

    def test_weighted_service(self) -> None:
        """The WRR TraefikService: children and weights, usedBy, no serverStatus."""
        answer = get(self.table, "/api/http/services/default-app-wrr@kubernetescrd")
        self.assertEqual(
            body(answer),
            {
                "weighted": {
                    "services": [
                        {"name": "default-app-v1-80", "weight": 1},
                        {"name": "default-app-v2-80", "weight": 2},
                    ]
                },
                "status": "enabled",
                "usedBy": [WRR_ROUTER, WRR_TLS_ROUTER],
                "type": "weighted",
                "name": "default-app-wrr@kubernetescrd",
                "provider": "kubernetescrd",
            },
        )

    def test_other_services(self) -> None:
        """Sticky weighted, mirroring and load balancer services, as Traefik shows them."""
        cases: List[Tuple[str, Dict[str, Any]]] = [
            (
                "default-app-cookie@kubernetescrd",
                {
                    "weighted": {
                        "services": [
                            {"name": "default-app-v1-80", "weight": 1},
                            {"name": "default-app-v2-80", "weight": 2},
                        ],
                        "sticky": {"cookie": {"name": "cookie", "httpOnly": True, "path": "/"}},
                    },
                    "status": "enabled",
                    "usedBy": [COOKIE_ROUTER],
                    "type": "weighted",
                },
            ),
            (
                "default-app-mirror@kubernetescrd",
                {
                    "mirroring": {
                        "service": "default-app-v1-80",
                        "mirrorBody": True,
                        "maxBodySize": -1,
                        "mirrors": [{"name": "default-app-v2-80", "percent": 10}],
                    },
                    "status": "enabled",
                    "usedBy": [MIRROR_ROUTER],
                    "type": "mirroring",
                },
            ),
            (
                # Used only inside TraefikServices: no usedBy, as in Traefik.
                "default-app-v1-80@kubernetescrd",
                {
                    "loadBalancer": {
                        "servers": [{"url": "http://127.0.0.1:9001"}],
                        "strategy": "wrr",
                        "passHostHeader": True,
                        "responseForwarding": {"flushInterval": "100ms"},
                    },
                    "status": "enabled",
                    "serverStatus": {"http://127.0.0.1:9001": "UP"},
                    "type": "loadbalancer",
                },
            ),
            (
                "default-echo-0@kubernetescrd",
                {
                    "weighted": {
                        "services": [
                            {"name": "default-echo-0-echo-1-53", "weight": 1},
                            {"name": "default-echo-0-echo-2-53", "weight": 1},
                        ]
                    },
                    "status": "enabled",
                    "usedBy": ["default-echo-0@kubernetescrd"],
                    "type": "weighted",
                },
            ),
            (
                "default-echo-0-echo-1-53@kubernetescrd",
                {
                    "loadBalancer": {"servers": [{"address": "127.0.0.1:9053"}]},
                    "status": "enabled",
                    "type": "loadbalancer",
                },
            ),
        ]
        for name, expected in cases:
            kind = "udp" if "echo" in name else "http"
            expected = dict(expected, name=name, provider="kubernetescrd")
            self.assertEqual(body(get(self.table, f"/api/{kind}/services/{name}")), expected, name)

    def test_udp_router(self) -> None:
        """A UDP router: entrypoints, service, status and using, no rule."""
        self.assertEqual(
            body(get(self.table, "/api/udp/routers/default-echo-0@kubernetescrd")),
            {
                "entryPoints": ["udp"],
                "service": "default-echo-0",
                "status": "enabled",
                "using": ["udp"],
                "name": "default-echo-0@kubernetescrd",
                "provider": "kubernetescrd",
            },
        )

    def test_entrypoints(self) -> None:
        """Entrypoints: the address as written, Go durations, Traefik's field names."""
        self.assertEqual(
            body(get(self.table, "/api/entrypoints/web")),
            {
                "address": "127.0.0.1:8000",
                "transport": {
                    "lifeCycle": {"graceTimeOut": "10s"},
                    "respondingTimeouts": {"readTimeout": "1m0s", "idleTimeout": "3m0s"},
                },
                "forwardedHeaders": {},
                "udp": {"timeout": "3s", "maxSessions": 10000},
                "name": "web",
            },
        )
        self.assertEqual(
            names(get(self.table, "/api/entrypoints")),
            ["tcp", "traefik", "udp", "web", "websecure"],
        )
        self.assertEqual(
            body(get(self.table, "/api/entrypoints/udp"))["address"], "127.0.0.1:5300/udp"
        )

    def test_entrypointProxyProtocol(self) -> None:
        """proxyProtocol is listed as Traefik does, empty values left out."""
        from tsproxy.api.overview import entrypoints
        from tsproxy.config.static import parse_static

        static, errors, _ = parse_static(
            "entryPoints:\n  a:\n    address: ':80'\n    proxyProtocol: {trustedIPs: [10.0.0.0/8]}\n"
            "  b:\n    address: ':81'\n    proxyProtocol: {insecure: true}\n"
            "  c:\n    address: ':82'\n"
        )
        self.assertEqual(errors, ())
        assert static is not None
        listed = entrypoints(static)
        self.assertEqual(listed["a"]["proxyProtocol"], {"trustedIPs": ["10.0.0.0/8"]})
        self.assertEqual(listed["b"]["proxyProtocol"], {"insecure": True})
        self.assertNotIn("proxyProtocol", listed["c"])

    def test_overview(self) -> None:
        """Counts per kind, features and providers."""
        self.assertEqual(
            body(get(self.table, "/api/overview")),
            {
                "http": {
                    "routers": {"total": 4, "warnings": 0, "errors": 0},
                    "services": {"total": 5, "warnings": 0, "errors": 0},
                    "middlewares": {"total": 0, "warnings": 0, "errors": 0},
                },
                "tcp": {
                    "routers": {"total": 1, "warnings": 0, "errors": 0},
                    "services": {"total": 3, "warnings": 0, "errors": 0},
                    "middlewares": {"total": 0, "warnings": 0, "errors": 0},
                },
                "udp": {
                    "routers": {"total": 1, "warnings": 0, "errors": 0},
                    "services": {"total": 3, "warnings": 0, "errors": 0},
                },
                "features": {"tracing": "", "metrics": "Prometheus", "accessLog": False},
                "providers": ["KubernetesCRD"],
            },
        )

    def test_rawdata(self) -> None:
        """rawdata: maps by qualified name, routers without name/provider, empty maps left out."""
        document = body(get(self.table, "/api/rawdata"))
        self.assertEqual(
            sorted(document),
            ["routers", "services", "tcpRouters", "tcpServices", "udpRouters", "udpServices"],
        )
        self.assertEqual(
            list(document["routers"]), [COOKIE_ROUTER, MIRROR_ROUTER, WRR_ROUTER, WRR_TLS_ROUTER]
        )
        self.assertNotIn("name", document["routers"][WRR_ROUTER])
        self.assertEqual(
            document["services"]["default-app-v2-80@kubernetescrd"]["serverStatus"],
            {"http://127.0.0.1:9002": "UP"},
        )

    def test_version_and_stats(self) -> None:
        """version has Traefik's capitalised keys; stats say whether anything counts."""
        self.assertEqual(
            body(get(self.table, "/api/version")),
            {"Version": "0.1.0", "Codename": "tsproxy", "startDate": "2024-05-01T10:00:00.5Z"},
        )
        stats = body(get(self.table, "/api/tsproxy/stats"))
        self.assertEqual((stats["metrics"], stats["services"]), (False, {}))
        self.assertEqual(
            stats["health"]["default-app-v2-80@kubernetescrd"],
            {"up": True, "servers": {"http://127.0.0.1:9002": "UP"}},
        )
        self.assertEqual(stats["health"]["default-app-wrr@kubernetescrd"], {"up": True})
        counted = attrs.evolve(
            CONTEXT,
            stats={
                "services": {
                    "b@kubernetescrd": {"requests": 3},
                    "a@kubernetescrd": {"requests": 2, "errors": 1},
                }
            },
        )
        self.assertTrue(
            get(self.table, "/api/tsproxy/stats", context=counted).body.startswith(
                b'{"metrics":true,"services":{"a@kubernetescrd":{"requests":2,"errors":1},'
                b'"b@kubernetescrd":{"requests":3,"errors":0}},"health":{'
            )
        )


class ListingTests(TestCase):
    """Filters, sorting and paging of the list endpoints."""

    def setUp(self) -> None:
        self.table = seed_table()

    def test_lists(self) -> None:
        """Each list, sorted by name (Traefik's default), with X-Next-Page."""
        cases = [
            ("/api/http/routers", [COOKIE_ROUTER, MIRROR_ROUTER, WRR_ROUTER, WRR_TLS_ROUTER]),
            (
                "/api/http/services",
                [
                    "default-app-cookie@kubernetescrd",
                    "default-app-mirror@kubernetescrd",
                    "default-app-v1-80@kubernetescrd",
                    "default-app-v2-80@kubernetescrd",
                    "default-app-wrr@kubernetescrd",
                ],
            ),
            ("/api/http/middlewares", []),
            ("/api/tcp/routers", [TCP_ROUTER]),
            (
                "/api/tcp/services",
                [
                    TCP_ROUTER.replace("@", "-greeter-1-7000@"),
                    TCP_ROUTER.replace("@", "-greeter-2-7000@"),
                    TCP_ROUTER,
                ],
            ),
            ("/api/tcp/middlewares", []),
            ("/api/udp/routers", ["default-echo-0@kubernetescrd"]),
            (
                "/api/udp/services",
                [
                    "default-echo-0-echo-1-53@kubernetescrd",
                    "default-echo-0-echo-2-53@kubernetescrd",
                    "default-echo-0@kubernetescrd",
                ],
            ),
        ]
        for path, expected in cases:
            answer = get(self.table, path)
            self.assertEqual((answer.status, names(answer)), (200, expected), path)
            self.assertEqual(answer.headers, (("X-Next-Page", "1"),), path)
            self.assertTrue(answer.body.endswith(b"\n"))

    def test_filters_and_sorting(self) -> None:
        """search (name or rule), status, serviceName, sortBy and direction."""
        cases = [
            ("/api/http/routers?search=WRR", [WRR_ROUTER, WRR_TLS_ROUTER]),
            ("/api/http/routers?search=copy.kubesre", [MIRROR_ROUTER]),
            ("/api/http/routers?status=enabled&search=cookie", [COOKIE_ROUTER]),
            ("/api/http/routers?status=disabled", []),
            (
                "/api/http/routers?serviceName=default-app-wrr@kubernetescrd",
                [WRR_ROUTER, WRR_TLS_ROUTER],
            ),
            ("/api/http/routers?serviceName=default-app-wrr", [WRR_ROUTER, WRR_TLS_ROUTER]),
            ("/api/http/routers?middlewareName=auth", []),
            (
                "/api/http/routers?sortBy=priority",
                [WRR_ROUTER, WRR_TLS_ROUTER, MIRROR_ROUTER, COOKIE_ROUTER],
            ),
            (
                "/api/http/routers?direction=desc",
                [WRR_TLS_ROUTER, WRR_ROUTER, MIRROR_ROUTER, COOKIE_ROUTER],
            ),
            (
                "/api/http/services?search=app-v",
                ["default-app-v1-80@kubernetescrd", "default-app-v2-80@kubernetescrd"],
            ),
            (
                "/api/http/services?sortBy=type&search=app-",
                [
                    "default-app-v1-80@kubernetescrd",
                    "default-app-v2-80@kubernetescrd",
                    "default-app-mirror@kubernetescrd",
                    "default-app-cookie@kubernetescrd",
                    "default-app-wrr@kubernetescrd",
                ],
            ),
            ("/api/udp/routers?serviceName=other", []),
        ]
        for target, expected in cases:
            self.assertEqual(names(get(self.table, target)), expected, target)

    def test_paging(self) -> None:
        """page/per_page slices, X-Next-Page says the next page or 1, bad values are 400."""
        cases: List[Tuple[str, int, Any, str]] = [
            (
                "/api/http/services?per_page=2",
                200,
                ["default-app-cookie", "default-app-mirror"],
                "2",
            ),
            (
                "/api/http/services?per_page=2&page=2",
                200,
                ["default-app-v1-80", "default-app-v2-80"],
                "3",
            ),
            ("/api/http/services?per_page=2&page=3", 200, ["default-app-wrr"], "1"),
            ("/api/http/services?per_page=5", 200, 5, "1"),
            (
                "/api/http/services?per_page=2&page=4",
                400,
                "invalid request: page: 4, per_page: 2",
                "",
            ),
            ("/api/http/routers?page=2", 400, "invalid request: page: 2, per_page: 100", ""),
            ("/api/http/middlewares?page=2", 400, "invalid request: page: 2, per_page: 100", ""),
            ("/api/http/routers?page=0", 400, "invalid request: page: 0", ""),
            ("/api/http/routers?page=-3", 400, "invalid request: page: -3", ""),
            ("/api/http/routers?per_page=abc", 400, "invalid request: per_page: 0", ""),
            ("/api/entrypoints?per_page=1&page=4", 200, ["web"], "5"),
            ("/api/entrypoints?per_page=1&page=5", 200, ["websecure"], "1"),
            (
                "/api/entrypoints?per_page=1&page=6",
                400,
                "invalid request: page: 6, per_page: 1",
                "",
            ),
        ]
        for target, status, expected, next_page in cases:
            answer = get(self.table, target)
            self.assertEqual(answer.status, status, target)
            if status != 200:
                self.assertEqual(body(answer), {"message": expected}, target)
                self.assertEqual(answer.content_type, "text/plain; charset=utf-8")
                continue
            self.assertEqual(answer.headers, (("X-Next-Page", next_page),), target)
            got = [name.rsplit("@", 1)[0] for name in names(answer)]
            self.assertEqual(len(got) if isinstance(expected, int) else got, expected, target)

    def test_errors(self) -> None:
        """Missing items, unknown paths, other methods and bad escapes, as Traefik answers."""
        cases = [
            ("GET", "/api/http/routers/nope", 404, b'{"message":"router not found: nope"}\n'),
            ("GET", "/api/http/routers/" + WRR_ROUTER[:-14], 404, None),
            ("GET", "/api/http/services/x@y", 404, b'{"message":"service not found: x@y"}\n'),
            ("GET", "/api/http/middlewares/m", 404, b'{"message":"middleware not found: m"}\n'),
            ("GET", "/api/tcp/routers/t", 404, b'{"message":"router not found: t"}\n'),
            ("GET", "/api/udp/services/u", 404, b'{"message":"service not found: u"}\n'),
            ("GET", "/api/entrypoints/nope", 404, b'{"message":"entry point not found: nope"}\n'),
            ("GET", "/api/entrypoints/w%65b", 200, None),
            # Not UTF-8 once unescaped: Go shows U+FFFD, and nothing raises.
            (
                "GET",
                "/api/http/routers/%FF",
                404,
                '{"message":"router not found: \ufffd"}\n'.encode(),
            ),
            ("GET", "/api/udp/services/%ED%A0%80", 404, None),
            (
                "GET",
                "/api/http/routers/a%zz",
                400,
                b'{"message":"unable to decode routerID: a%zz"}\n',
            ),
            ("GET", "/api/nope", 404, b"404 page not found\n"),
            ("GET", "/api/http/routers/", 404, b"404 page not found\n"),
            ("GET", "/api/http/routers/a/b", 404, b"404 page not found\n"),
            ("GET", "/apiary", 404, b"404 page not found\n"),
            ("POST", "/api/overview", 405, b""),
            ("HEAD", "/api/http/routers/" + WRR_ROUTER, 405, b""),
            ("DELETE", "/api/nope", 404, b"404 page not found\n"),
        ]
        for method, target, status, expected in cases:
            answer = get(self.table, target, method)
            self.assertEqual(answer.status, status, target)
            if expected is not None:
                self.assertEqual(answer.body, expected, target)


@attrs.frozen
class StandInServer:
    address: str
    tls: Any = None  # the TLS settings of a server dialled with TLS


@attrs.frozen(eq=False)
class StandInBalancer:
    name: str
    servers: Tuple[StandInServer, ...]


@attrs.frozen(eq=False)
class StandInWeighted:
    name: str
    children: Tuple[Tuple[Any, int], ...]


@attrs.frozen(eq=False)
class StandInTCPRouter:
    """The TCPRouter contract the routing table will carry (name, entrypoints, rule, ...)."""

    name: str
    entrypoints: Tuple[str, ...]
    rule: str
    priority: int
    service: Any
    source: Location
    tls: Any = None
    syntax: str = "v3"


class TCPTests(TestCase):
    """TCP routers and services, read through the table's tcp_routers and tcp_services."""

    def setUp(self) -> None:
        self.table = seed_table()
        db = StandInBalancer("default-db-5432", (StandInServer("10.0.0.1:5432"),))
        replica = StandInBalancer(
            "default-replica-5432",
            (StandInServer("10.0.0.3:5432"), StandInServer("10.0.0.2:5432", tls=object())),
        )
        split = StandInWeighted("default-db-split", ((db, 3), (replica, 1)))
        where = Location("tcp.yaml", 4, "IngressRouteTCP default/db")
        tls = RouteTLS(
            passthrough=True,
            options=ObjectRef("strict", "default"),
            domains=(TLSDomain("db.test", ("db2.test",)),),
        )
        self.table.tcp_routers = (
            StandInTCPRouter("default-db-a1", ("web",), "HostSNI(`db.test`)", 0, split, where, tls),
            StandInTCPRouter("default-any-b2", ("web",), "HostSNI(`*`)", 7, db, where),
        )
        self.table.tcp_services = {s.name: s for s in (db, replica, split)}

    def test_router(self) -> None:
        """A TLS passthrough router: Traefik's tls section, status, using."""
        self.assertEqual(
            body(get(self.table, "/api/tcp/routers/default-db-a1@kubernetescrd")),
            {
                "entryPoints": ["web"],
                "service": "default-db-split",
                "rule": "HostSNI(`db.test`)",
                "tls": {
                    "passthrough": True,
                    "options": "default-strict",
                    "domains": [{"main": "db.test", "sans": ["db2.test"]}],
                },
                "status": "enabled",
                "using": ["web"],
                "name": "default-db-a1@kubernetescrd",
                "provider": "kubernetescrd",
            },
        )
        self.assertEqual(
            body(get(self.table, "/api/tcp/routers/default-any-b2@kubernetescrd"))["priority"], 7
        )

    def test_services(self) -> None:
        """Load balancers (servers by address, ``tls`` for those dialled with TLS,
        serverStatus) and weighted services, usedBy."""
        services = {item["name"]: item for item in body(get(self.table, "/api/tcp/services"))}
        self.assertEqual(
            list(services),
            [
                "default-db-5432@kubernetescrd",
                "default-db-split@kubernetescrd",
                "default-replica-5432@kubernetescrd",
            ],
        )
        self.assertEqual(
            services["default-db-split@kubernetescrd"],
            {
                "weighted": {
                    "services": [
                        {"name": "default-db-5432", "weight": 3},
                        {"name": "default-replica-5432", "weight": 1},
                    ]
                },
                "status": "enabled",
                "usedBy": ["default-db-a1@kubernetescrd"],
                "type": "weighted",
                "name": "default-db-split@kubernetescrd",
                "provider": "kubernetescrd",
            },
        )
        self.assertEqual(
            services["default-replica-5432@kubernetescrd"],
            {
                "loadBalancer": {
                    "servers": [
                        {"address": "10.0.0.3:5432"},
                        {"address": "10.0.0.2:5432", "tls": True},
                    ]
                },
                "status": "enabled",
                "serverStatus": {"10.0.0.2:5432": "UP", "10.0.0.3:5432": "UP"},
                "type": "loadbalancer",
                "name": "default-replica-5432@kubernetescrd",
                "provider": "kubernetescrd",
            },
        )
        self.assertEqual(
            services["default-db-5432@kubernetescrd"]["usedBy"], ["default-any-b2@kubernetescrd"]
        )

    def test_overview_rawdata_and_filters(self) -> None:
        """TCP counts in the overview, tcpRouters/tcpServices in rawdata, TCP filters."""
        self.assertEqual(
            body(get(self.table, "/api/overview"))["tcp"]["routers"],
            {"total": 2, "warnings": 0, "errors": 0},
        )
        raw = body(get(self.table, "/api/rawdata"))
        self.assertEqual(len(raw["tcpRouters"]), 2)
        self.assertEqual(len(raw["tcpServices"]), 3)
        cases = [
            ("/api/tcp/routers?search=db.test", ["default-db-a1@kubernetescrd"]),
            ("/api/tcp/routers?serviceName=default-db-5432", ["default-any-b2@kubernetescrd"]),
            (
                "/api/tcp/routers?sortBy=priority&direction=desc",
                ["default-any-b2@kubernetescrd", "default-db-a1@kubernetescrd"],
            ),
            ("/api/tcp/services?search=replica", ["default-replica-5432@kubernetescrd"]),
        ]
        for target, expected in cases:
            self.assertEqual(names(get(self.table, target)), expected, target)


class EncodingTests(TestCase):
    """Go's formats: durations and JSON."""

    def test_go_duration(self) -> None:
        """time.Duration.String for the values entrypoints carry."""
        cases = [
            (0, "0s"),
            (3, "3s"),
            (10, "10s"),
            (60, "1m0s"),
            (90.5, "1m30.5s"),
            (180, "3m0s"),
            (3600, "1h0m0s"),
            (3725, "1h2m5s"),
            (0.5, "500ms"),
            (0.0015, "1.5ms"),
            (0.000002, "2µs"),
            (1e-9, "1ns"),
            (-2, "-2s"),
        ]
        for seconds, expected in cases:
            self.assertEqual(model.go_duration(seconds), expected, seconds)

    def test_go_json(self) -> None:
        """Compact, HTML characters escaped, non-ASCII kept, one newline at the end."""
        self.assertEqual(
            model.go_json({"rule": "Host(`a`) && Path(`/<x>`)", "é": [1, True, None]}),
            '{"rule":"Host(`a`) \\u0026\\u0026 Path(`/\\u003cx\\u003e`)","é":[1,true,null]}\n'.encode(),
        )


# A configuration with one problem of each kind: an HTTP route to a Service that does not
# exist, a TCP HostSNI route without TLS, a TraefikService reference cycle (and a route to
# it), a UDP route to a Service that does not exist, and a route listing a missing entrypoint.
BROKEN_STATIC = """\
entryPoints:
  web:
    address: "127.0.0.1:8000"
  dns:
    address: "127.0.0.1:5353/udp"
"""
BROKEN = """\
apiVersion: v1
kind: Service
metadata: {name: app}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: app}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{name: http, port: 9001}]}]
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: web}
spec:
  entryPoints: [web]
  routes:
    - match: Host(`good.test`)
      services: [{name: app, port: 80}]
    - match: Host(`bad.test`)
      priority: 7
      services: [{name: nope, port: 80}]
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: loop}
spec:
  entryPoints: [web, missing]
  routes:
    - match: Host(`loop.test`)
      services: [{name: loop-a, kind: TraefikService}]
    - match: Host(`half.test`)
      services: [{name: app, port: 80}]
---
apiVersion: traefik.io/v1alpha1
kind: TraefikService
metadata: {name: loop-a}
spec:
  weighted:
    services: [{name: loop-b, kind: TraefikService, weight: 2}]
---
apiVersion: traefik.io/v1alpha1
kind: TraefikService
metadata: {name: loop-b}
spec:
  mirroring:
    name: loop-a
    kind: TraefikService
    mirrors: [{name: app, port: 80, percent: 10}]
---
apiVersion: traefik.io/v1alpha1
kind: IngressRouteTCP
metadata: {name: db}
spec:
  entryPoints: [web]
  routes:
    - match: HostSNI(`db.test`)
      services: [{name: app, port: 80}]
---
apiVersion: traefik.io/v1alpha1
kind: IngressRouteUDP
metadata: {name: echo}
spec:
  entryPoints: [dns]
  routes:
    - services: [{name: nope, port: 53}]
"""
GOOD = "default-web-" + hashlib.sha256(b"Host(`good.test`)").hexdigest()[:20] + "@kubernetescrd"
BAD = "default-web-" + hashlib.sha256(b"Host(`bad.test`)").hexdigest()[:20] + "@kubernetescrd"
LOOP = "default-loop-" + hashlib.sha256(b"Host(`loop.test`)").hexdigest()[:20] + "@kubernetescrd"
HALF = "default-loop-" + hashlib.sha256(b"Host(`half.test`)").hexdigest()[:20] + "@kubernetescrd"
DB = "default-db-" + hashlib.sha256(b"HostSNI(`db.test`)").hexdigest()[:20] + "@kubernetescrd"
ECHO = "default-echo-0@kubernetescrd"
CYCLE = "reference cycle: default/loop-a -> default/loop-b -> default/loop-a"


def broken_table() -> Any:
    loaded = load_files(BROKEN_STATIC, [("broken.yaml", BROKEN)])
    assert loaded.errors == (), loaded.errors
    result = build_table(loaded)
    assert len(result.errors) == 7, result.errors
    return result.table


class DisabledTests(TestCase):
    """What failed to build shows as Traefik shows it: status "disabled" with its errors;
    a router missing one of its entrypoints has status "warning"."""

    def setUp(self) -> None:
        self.table = broken_table()

    def test_disabled_router(self) -> None:
        """A route to an unknown Service: the router as configured, its error, disabled."""
        answer = get(self.table, "/api/http/routers/" + BAD)
        self.assertEqual(
            answer.body,
            b'{"entryPoints":["web"],"service":"' + BAD[:-14].encode() + b'","rule":'
            b'"Host(`bad.test`)","priority":7,"error":["service default/nope not found"],'
            b'"status":"disabled","using":["web"],"priorityStr":"7","name":"'
            + BAD.encode()
            + b'","provider":"kubernetescrd"}\n',
        )

    def test_documents(self) -> None:
        """Every kind of failure, field for field where it matters."""
        loop_errors = [
            "entrypoint missing not found",
            "TraefikService default/loop-a has errors (see broken.yaml:39)",
        ]
        sni_error = (
            "spec.routes[0].match: HostSNI or HostSNIRegexp other than HostSNI(`*`) needs TLS"
            " (spec.tls): without it there is no SNI to match, route dropped"
        )
        cases: List[Tuple[str, Dict[str, Any]]] = [
            (
                "/api/http/routers/" + LOOP,
                {
                    "entryPoints": ["web", "missing"],
                    "service": "default-loop-a",
                    "error": loop_errors,
                    "status": "disabled",
                    "using": ["web"],
                },
            ),
            (
                "/api/http/routers/" + HALF,
                {
                    "entryPoints": ["web", "missing"],
                    "error": ["entrypoint missing not found"],
                    "status": "warning",
                    "using": ["web"],
                },
            ),
            ("/api/http/routers/" + GOOD, {"status": "enabled", "using": ["web"]}),
            (
                "/api/http/services/default-loop-a@kubernetescrd",
                {
                    "weighted": {"services": [{"name": "default-loop-b", "weight": 2}]},
                    "error": [CYCLE],
                    "status": "disabled",
                    "usedBy": [LOOP],
                    "type": "weighted",
                    "name": "default-loop-a@kubernetescrd",
                    "provider": "kubernetescrd",
                },
            ),
            (
                "/api/http/services/default-loop-b@kubernetescrd",
                {
                    "mirroring": {
                        "service": "default-loop-a",
                        "mirrorBody": True,
                        "maxBodySize": -1,
                        "mirrors": [{"name": "default-app-80", "percent": 10}],
                    },
                    "error": [CYCLE],
                    "status": "disabled",
                    "type": "mirroring",
                    "name": "default-loop-b@kubernetescrd",
                    "provider": "kubernetescrd",
                },
            ),
            (
                "/api/tcp/routers/" + DB,
                {
                    "entryPoints": ["web"],
                    "service": DB[:-14],
                    "rule": "HostSNI(`db.test`)",
                    "error": [sni_error],
                    "status": "disabled",
                    "using": ["web"],
                    "name": DB,
                    "provider": "kubernetescrd",
                },
            ),
            (
                "/api/udp/routers/" + ECHO,
                {
                    "entryPoints": ["dns"],
                    "service": "default-echo-0",
                    "error": ["service default/nope not found, route dropped"],
                    "status": "disabled",
                    "using": ["dns"],
                    "name": ECHO,
                    "provider": "kubernetescrd",
                },
            ),
        ]
        for target, expected in cases:
            answer = get(self.table, target)
            self.assertEqual(answer.status, 200, target)
            document = body(answer)
            self.assertEqual({k: document.get(k) for k in expected}, expected, target)
            if "error" in document:
                keys = list(document)
                # Traefik's field order: the error list right before the status.
                self.assertEqual(keys.index("error") + 1, keys.index("status"), target)

    def test_overview(self) -> None:
        """Disabled ones count as errors, routers with warnings as warnings."""
        overview = body(get(self.table, "/api/overview"))
        cases = [
            ("http", "routers", {"total": 4, "warnings": 1, "errors": 2}),
            ("http", "services", {"total": 4, "warnings": 0, "errors": 2}),
            ("tcp", "routers", {"total": 1, "warnings": 0, "errors": 1}),
            ("tcp", "services", {"total": 0, "warnings": 0, "errors": 0}),
            ("udp", "routers", {"total": 1, "warnings": 0, "errors": 1}),
            ("udp", "services", {"total": 0, "warnings": 0, "errors": 0}),
        ]
        for scheme, kind, expected in cases:
            self.assertEqual(overview[scheme][kind], expected, (scheme, kind))

    def test_filters(self) -> None:
        """status=disabled/warning/enabled (any case), and the disabled ones in search,
        serviceName, sorting and usedBy."""
        cases = [
            ("/api/http/routers?status=disabled", sorted([BAD, LOOP])),
            ("/api/http/routers?status=DISABLED", sorted([BAD, LOOP])),
            ("/api/http/routers?status=warning", [HALF]),
            ("/api/http/routers?status=enabled", [GOOD]),
            ("/api/http/routers?search=bad.test", [BAD]),
            ("/api/http/routers?serviceName=default-loop-a@kubernetescrd", [LOOP]),
            ("/api/http/routers?sortBy=status&search=.test", sorted([BAD, LOOP]) + [GOOD, HALF]),
            (
                "/api/http/services?status=disabled",
                ["default-loop-a@kubernetescrd", "default-loop-b@kubernetescrd"],
            ),
            ("/api/http/services?status=enabled&search=loop-a", []),
            ("/api/tcp/routers?status=disabled", [DB]),
            ("/api/tcp/routers?status=enabled", []),
            ("/api/udp/routers?status=disabled", [ECHO]),
            ("/api/udp/routers?serviceName=default-echo-0", [ECHO]),
        ]
        for target, expected in cases:
            self.assertEqual(names(get(self.table, target)), expected, target)

    def test_rawdata(self) -> None:
        """rawdata lists the disabled routers and services with their errors."""
        raw = body(get(self.table, "/api/rawdata"))
        self.assertEqual(list(raw["routers"]), sorted([GOOD, BAD, LOOP, HALF]))
        self.assertEqual(raw["routers"][BAD]["status"], "disabled")
        self.assertEqual(raw["routers"][BAD]["error"], ["service default/nope not found"])
        self.assertNotIn("name", raw["routers"][BAD])
        self.assertEqual(raw["services"]["default-loop-b@kubernetescrd"]["error"], [CYCLE])
        self.assertEqual(raw["tcpRouters"][DB]["status"], "disabled")
        self.assertEqual(raw["udpRouters"][ECHO]["status"], "disabled")
        self.assertNotIn("udpServices", raw)
