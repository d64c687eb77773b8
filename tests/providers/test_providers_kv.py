"""Key-value providers (etcd, Redis): the key tree folded into Traefik's dynamic format, its
located errors, Traefik's own KV test data, and real etcd and Redis servers watched by
running proxies (changes applied within a second, the last configuration kept while the
store is down, watching resumed when it is back)."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List, Optional, Sequence

import treq
import yaml
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.kvservers import ETCD, NO_ETCD, NO_REDIS, REDIS, EtcdServer, RedisServer
from tests.providers.test_providers import (
    EQUIVALENT_CRD,
    EQUIVALENT_STATIC_YAML,
    EQUIVALENT_YAML,
    without_providers,
)
from tests.proxyfixture import ProxyTestCase, free_port
from tsproxy.api.model import rawdata
from tsproxy.config.load import load_files
from tsproxy.config.yamlio import CaselessMap, YAMLList
from tsproxy.providers.etcd import prefix_end
from tsproxy.providers.kv import kv_tree, parse_kv
from tsproxy.providers.kvwatch import Backoff
from tsproxy.runtime.build import build_table
from tsproxy.service import ProxyService

ENTRY = "entryPoints:\n  web: {address: ':8000'}\n"
DATA = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "traefik-kv"
)


def plain(value: object) -> object:
    """A folded tree as plain dicts and lists."""
    if isinstance(value, CaselessMap):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, YAMLList):
        return [plain(item) for item in value]
    return value


def flatten(value: object, prefix: str = "traefik") -> Dict[str, str]:
    """A dynamic configuration (parsed YAML) as Traefik's KV keys."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        if isinstance(value, bool):
            return {prefix: "true" if value else "false"}
        return {prefix: "" if value is None else str(value)}
    pairs: Dict[str, str] = {}
    for key, item in items:
        pairs.update(flatten(item, f"{prefix}/{key}"))
    return pairs


# -- the key tree ------------------------------------------------------------------------------

TREES = [
    # (keys, the folded tree)
    (
        {"traefik/http/routers/r/rule": "Host(`a`)", "traefik/http/routers/r/tls": ""},
        {"http": {"routers": {"r": {"rule": "Host(`a`)", "tls": None}}}},
    ),
    (
        {
            "traefik/http/routers/r/entryPoints/1": "b",
            "traefik/http/routers/r/entryPoints/0": "a",
            "traefik/http/routers/r/entryPoints/10": "c",
        },
        {"http": {"routers": {"r": {"entryPoints": ["a", "b", "c"]}}}},
    ),
    (
        # Keys of another root, the root itself and empty segments are left out.
        {
            "traefik": "x",
            "traefikx/http/routers/r/rule": "no",
            "other/http/routers/r/rule": "no",
            "traefik//http/routers/r//service": "s",
        },
        {"http": {"routers": {"r": {"service": "s"}}}},
    ),
    (
        # Case-insensitive: one key however it is spelled, the first spelling kept.
        {
            "traefik/HTTP/routers/r/rule": "Host(`a`)",
            "traefik/http/Routers/r/service": "s",
        },
        {"HTTP": {"routers": {"r": {"rule": "Host(`a`)", "service": "s"}}}},
    ),
]


class KVTreeTests(SynchronousTestCase):
    """Keys under the root key folded into mappings and lists."""

    def test_trees(self) -> None:
        """Every table case folds to its nested value."""
        for pairs, expected in TREES:
            tree = kv_tree(pairs, "traefik", "etcd")
            self.assertEqual(plain(tree.data), expected, pairs)

    def test_case_insensitive_fields(self) -> None:
        """Field names in any case read as the dynamic format's (entrypoints, loadbalancer,
        passhostheader), and values as the type the field wants."""
        pairs = {
            "traefik/http/routers/R/RULE": "Host(`a`)",
            "traefik/http/routers/R/entrypoints/0": "web",
            "traefik/http/routers/R/service": "s",
            "traefik/http/routers/R/priority": "7",
            "traefik/http/services/s/loadbalancer/passhostheader": "FALSE",
            "traefik/http/services/s/loadbalancer/strategy": "leasttime",
            "traefik/http/services/s/loadbalancer/servers/0/url": "http://10.0.0.1:80",
        }
        config, errors, _ = parse_kv(pairs, "traefik", "redis")
        self.assertEqual(errors, ())
        router = config.routers[0]
        self.assertEqual(
            (router.name, router.rule, router.entry_points, router.priority),
            ("R", "Host(`a`)", ("web",), 7),
        )
        self.assertFalse(config.services[0].load_balancer.pass_host_header)
        self.assertEqual(config.services[0].load_balancer.strategy, "leasttime")

    def test_failover_hrw_weights(self) -> None:
        """failover, highestRandomWeight and server weights read from keys in any case, as
        the file format's (``healthcheck`` with an empty value is ``healthCheck: {}``)."""
        pairs = {
            "traefik/http/services/fo/failover/service": "main",
            "traefik/http/services/fo/failover/fallback": "spare",
            "traefik/http/services/fo/failover/healthcheck": "",
            "traefik/http/services/h/highestrandomweight/services/0/name": "main",
            "traefik/http/services/h/highestrandomweight/services/0/weight": "3",
            "traefik/http/services/main/loadbalancer/servers/0/url": "http://10.0.0.1:80",
            "traefik/http/services/main/loadbalancer/servers/0/WEIGHT": "2",
        }
        config, errors, _ = parse_kv(pairs, "traefik", "etcd")
        self.assertEqual(errors, ())
        fo, h, main = config.services
        assert fo.failover is not None and h.highest_random_weight is not None
        self.assertEqual(
            (fo.failover.service, fo.failover.fallback, fo.failover.health_check),
            ("main", "spare", True),
        )
        child = h.highest_random_weight.services[0]
        self.assertEqual((child.name, child.amount), ("main", 3))
        self.assertEqual(main.load_balancer.servers[0].weight, 2)

    def test_tcp_middlewares(self) -> None:
        """tcp.middlewares read from keys in any case, as the file format's."""
        pairs = {
            "traefik/tcp/middlewares/m/ipallowlist/sourcerange/0": "10.0.0.0/8",
            "traefik/tcp/middlewares/n/InFlightConn/amount": "2",
        }
        config, errors, _ = parse_kv(pairs, "traefik", "redis")
        self.assertEqual(errors, ())
        self.assertEqual(
            [(m.name, m.kind) for m in config.tcp_middlewares],
            [("m", "ipAllowList"), ("n", "inFlightConn")],
        )
        self.assertEqual(config.tcp_middlewares[1].spec.amount, 2)

    def test_root_key(self) -> None:
        """rootKey chooses the tree; nothing under it is an empty configuration."""
        pairs = {"edge/http/routers/r/rule": "Host(`a`)", "edge/http/routers/r/service": "s"}
        config, errors, _ = parse_kv(pairs, "edge", "etcd")
        self.assertEqual([r.name for r in config.routers], ["r"])
        config, errors, _ = parse_kv(pairs, "traefik", "etcd")
        self.assertEqual((config.routers, errors), ((), ()))

    def test_presence(self) -> None:
        """``tls`` = "" or "true" turns TLS on with defaults; "false" leaves it off."""
        base = {"traefik/http/routers/r/rule": "Host(`a`)", "traefik/http/routers/r/service": "s"}
        for value, on in (("", True), ("true", True), ("TRUE", True), ("false", False)):
            pairs = dict(base, **{"traefik/http/routers/r/tls": value})
            config, errors, _ = parse_kv(pairs, "traefik", "etcd")
            self.assertEqual(errors, (), value)
            self.assertEqual(config.routers[0].tls is not None, on, value)

    def test_prefix_end(self) -> None:
        """etcd's range_end for a prefix: its last byte below 0xff plus one."""
        self.assertEqual(prefix_end(b"traefik/"), b"traefik0")
        self.assertEqual(prefix_end(b"a\xff"), b"b")
        self.assertEqual(prefix_end(b"\xff"), b"\0")

    def test_backoff(self) -> None:
        """Reconnection delays double up to the most, and start again after a success."""
        backoff = Backoff(0.1, 0.5)
        self.assertEqual([backoff.delay() for _ in range(5)], [0.1, 0.2, 0.4, 0.5, 0.5])
        backoff.reset()
        self.assertEqual(backoff.delay(), 0.1)


KV_ERRORS = [
    (
        {
            "traefik/http/services/s/loadBalancer/strategy": "p3c",
            "traefik/http/services/s/loadBalancer/servers/0/url": "http://a:1",
        },
        "etcd:traefik/http/services/s/loadBalancer/strategy: service s:"
        ' http.services.s.loadBalancer.strategy: unsupported load-balancer strategy "p3c"'
        " (one of: wrr, p2c, hrw, leasttime)",
    ),
    (
        {
            "traefik/http/routers/r/rule": "Host(`a`)",
            "traefik/http/routers/r/service": "s",
            "traefik/http/routers/r/priority": "high",
        },
        "etcd:traefik/http/routers/r/priority: router r: http.routers.r.priority: must be an"
        " integer <= 9223372036854774807",
    ),
    (
        {"traefik/http/routers/r/service": "s"},
        "etcd:traefik/http/routers/r: router r: http.routers.r.rule: is required",
    ),
    (
        {"traefik/http/services/s/loadBalancer/servers/0/url": "ftp://x"},
        "etcd:traefik/http/services/s/loadBalancer/servers/0/url: service s:"
        " http.services.s.loadBalancer.servers[0].url: must be an http, https or h2c URL"
        " (like http://10.0.0.1:80)",
    ),
    (
        {
            "traefik/http/services/s/loadBalancer/passHostHeader": "maybe",
            "traefik/http/services/s/loadBalancer/servers/0/url": "http://a:1",
        },
        "etcd:traefik/http/services/s/loadBalancer/passHostHeader: service s:"
        " http.services.s.loadBalancer.passHostHeader: must be true or false",
    ),
    (
        {
            "traefik/http/routers/r/rule": "Host(`a`)",
            "traefik/http/routers/r/service": "s",
            "traefik/http/routers/r/colour": "red",
        },
        "etcd:traefik/http/routers/r/colour: router r: http.routers.r.colour: unknown field",
    ),
    (
        {"traefik/http/middlewares/m/noSuchKind/x": "1"},
        "etcd:traefik/http/middlewares/m/noSuchKind: middleware m: http.middlewares.m.noSuchKind:"
        " this middleware kind is not implemented yet",
    ),
    (
        {"traefik/tcp/services/t/loadBalancer/servers/0/address": "nope"},
        "etcd:traefik/tcp/services/t/loadBalancer/servers/0/address: TCP service t:"
        " tcp.services.t.loadBalancer.servers[0].address: must be host:port (like"
        " 10.0.0.1:5432 or [fd00::1]:53)",
    ),
    (
        {"traefik/colour": "red"},
        "etcd:traefik/colour: colour: unknown field",
    ),
    (
        {
            "traefik/http/routers/r/entryPoints/x": "web",
            "traefik/http/routers/r/rule": "H",
            "traefik/http/routers/r/service": "s",
        },
        "etcd:traefik/http/routers/r/entryPoints: router r: http.routers.r.entryPoints:"
        " must be a list",
    ),
]


class KVErrorTests(SynchronousTestCase):
    """A key that does not parse is an error at its key path."""

    def test_errors(self) -> None:
        """Every table case gives exactly its located error."""
        for pairs, expected in KV_ERRORS:
            _, errors, _ = parse_kv(pairs, "traefik", "etcd")
            self.assertEqual([str(e) for e in errors], [expected], pairs)

    def test_build_error_located(self) -> None:
        """An error found while building (an unknown service) names the router's key."""
        pairs = {"traefik/http/routers/r/rule": "Host(`a`)", "traefik/http/routers/r/service": "s"}
        config, _, _ = parse_kv(pairs, "traefik", "redis")
        loaded = load_files(ENTRY + "providers:\n  redis: {}\n", [])
        import attrs

        result = build_table(attrs.evolve(loaded, kv=(("redis", config),)))
        self.assertEqual(
            [str(e) for e in result.errors],
            ["redis:traefik/http/routers/r: router r: service s@redis does not exist"],
        )


# -- Traefik's own KV test data ----------------------------------------------------------------

STATIC_TRAEFIK = """\
entryPoints:
  web: {address: ":8000"}
  traefik: {address: ":8080"}
api: {insecure: true}
providers:
  %s: {}
"""


def traefik_case(provider: str) -> Any:
    with open(os.path.join(DATA, f"{provider}-data.json")) as stream:
        pairs = json.load(stream)["data"]
    with open(os.path.join(DATA, f"rawdata-{provider}.json")) as stream:
        expected = json.load(stream)
    with open(os.path.join(DATA, "deviations.json")) as stream:
        deviations = json.load(stream)
    return pairs, expected, deviations


class TraefikDataTests(SynchronousTestCase):
    """integration/etcd_test.go and redis_test.go: their keys give Traefik's /api/rawdata,
    but for the deviations listed (with reasons) in tests/data/traefik-kv/deviations.json."""

    def check(self, provider: str) -> None:
        import attrs

        pairs, expected, deviations = traefik_case(provider)
        deviations = json.loads(json.dumps(deviations).replace("@P", f"@{provider}"))
        expected = json.loads(json.dumps(expected).replace("@redis", f"@{provider}"))
        config, errors, _ = parse_kv(pairs, "traefik", provider)
        loaded = load_files(STATIC_TRAEFIK % provider, [])
        table = build_table(attrs.evolve(loaded, kv=((provider, config),))).table
        document = rawdata(table)
        listed = [e.replace("P:", f"{provider}:", 1) for e in deviations["errors"]]
        self.assertEqual([str(e) for e in errors], listed)
        for section in ("routers", "services", "middlewares"):
            for name, want in expected.get(section, {}).items():
                deviation = deviations[section].get(name, {})
                got = document.get(section, {}).get(name)
                if deviation.get("absent"):
                    self.assertIsNone(got, name)
                    continue
                traefik = want
                want = dict(want, **deviation.get("ours", {}))
                for field in deviation.get("missing", ()):
                    del want[field]
                self.assertEqual(got, want, name)
                if deviation:
                    # A listed deviation that no longer differs must be removed from the list.
                    self.assertNotEqual(got, traefik, f"{name}: listed deviation is gone")
            for name in deviations[section]:
                self.assertIn(name, expected.get(section, {}), f"{name}: not in Traefik's data")

    def test_etcd(self) -> None:
        """The etcd test's keys."""
        self.check("etcd")

    def test_redis(self) -> None:
        """The Redis test's keys."""
        self.check("redis")


# -- middlewares -------------------------------------------------------------------------------

MW_STATIC = (
    ENTRY + "providers:\n  file: {filename: d.yml}\n  kubernetesCRD: {}\n  etcd: {}\n  redis: {}\n"
)
MW_CRD = """\
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: hdr, namespace: default}
spec: {headers: {customRequestHeaders: {X-Crd: "1"}}}
"""
MW_FILE = """\
http:
  middlewares:
    tag: {headers: {customRequestHeaders: {X-Tag: t}}}
"""
MW_ETCD = flatten(
    {
        "http": {
            "routers": {
                "bare": {"rule": "Host(`a`)", "service": "s", "middlewares": ["strip"]},
                "own": {"rule": "Host(`b`)", "service": "s", "middlewares": ["strip@etcd"]},
                "chained": {"rule": "Host(`c`)", "service": "s", "middlewares": ["all"]},
                "bad": {"rule": "Host(`d`)", "service": "s", "middlewares": ["strip", "nope"]},
            },
            "middlewares": {
                "strip": {"stripPrefix": {"prefixes": ["/api"]}},
                "all": {
                    "chain": {"middlewares": ["strip", "tag@file", "default-hdr@kubernetescrd"]}
                },
            },
            "services": {"s": {"loadBalancer": {"servers": [{"url": "http://10.0.0.5"}]}}},
        }
    }
)
MW_REDIS = flatten(
    {
        "http": {
            "routers": {
                "cross": {"rule": "Host(`e`)", "service": "s", "middlewares": ["strip@etcd"]},
                "wrong": {"rule": "Host(`f`)", "service": "s", "middlewares": ["strip"]},
            },
            "services": {"s": {"loadBalancer": {"servers": [{"url": "http://10.0.0.6"}]}}},
        }
    }
)


class KVMiddlewareTests(SynchronousTestCase):
    """Routers of the key-value providers run their middlewares as file routers do."""

    def test_references(self) -> None:
        """Bare names resolve in the router's own provider (a chain's too), x@etcd from
        another store, x@file and x@kubernetescrd across providers; a missing middleware
        disables only its router, with an error at its key path."""
        import attrs

        loaded = load_files(MW_STATIC, [("crd.yaml", MW_CRD)], dynamic=[("d.yml", MW_FILE)])
        kv = []
        for provider, pairs in (("etcd", MW_ETCD), ("redis", MW_REDIS)):
            config, errors, _ = parse_kv(pairs, "traefik", provider)
            self.assertEqual(errors, ())
            kv.append((provider, config))
        result = build_table(attrs.evolve(loaded, kv=tuple(kv)))
        self.assertEqual(
            sorted(str(e) for e in loaded.errors + result.errors),
            [
                "etcd:traefik/http/routers/bad: router bad: http.routers.bad.middlewares[1]:"
                ' middleware "nope@etcd" does not exist',
                "redis:traefik/http/routers/wrong: router wrong:"
                ' http.routers.wrong.middlewares[0]: middleware "strip@redis" does not exist',
            ],
        )
        chains = {r.name: [n for n, _ in r.chain] for r in result.table.routers}
        self.assertEqual(
            chains,
            {
                "bare@etcd": ["strip@etcd"],
                "own@etcd": ["strip@etcd"],
                "chained@etcd": ["strip@etcd", "tag@file", "default-hdr@kubernetescrd"],
                "cross@redis": ["strip@etcd"],
            },
        )
        routers = {r.name: r for r in result.table.routers}
        self.assertEqual(routers["chained@etcd"].middlewares, ("all@etcd",))
        failed = {r.name: r.middlewares for r in result.table.failed_routers}
        self.assertEqual(
            failed, {"bad@etcd": ("strip@etcd", "nope@etcd"), "wrong@redis": ("strip@redis",)}
        )
        document = rawdata(result.table)
        self.assertEqual(
            document["middlewares"]["strip@etcd"]["usedBy"],
            ["bad@etcd", "bare@etcd", "cross@redis", "own@etcd"],
        )


# -- the static configuration ------------------------------------------------------------------


class StaticTests(SynchronousTestCase):
    """providers.etcd and providers.redis in the static configuration."""

    def test_defaults(self) -> None:
        """Traefik's defaults: 127.0.0.1:2379 / :6379, rootKey traefik, db 0, no TLS; the
        overview lists them."""
        static = load_files(ENTRY + "providers:\n  etcd: {}\n  redis:\n", []).static
        assert static is not None
        etcd, redis = static.providers.kv
        self.assertEqual(
            (etcd.endpoints, etcd.root_key, etcd.tls), (("127.0.0.1:2379",), "traefik", None)
        )
        self.assertEqual((redis.endpoints, redis.db), (("127.0.0.1:6379",), 0))
        self.assertEqual(static.providers.names, ("Etcd", "Redis"))

    def test_options(self) -> None:
        """Every option read."""
        text = (
            "providers:\n  redis:\n    endpoints: [10.0.0.1:6380]\n    rootKey: /edge/\n"
            "    username: u\n    password: p\n    db: 3\n"
            "    tls: {ca: ca.pem, cert: c.pem, key: k.pem, insecureSkipVerify: true}\n"
        )
        loaded = load_files(ENTRY + text, [])
        self.assertEqual(loaded.errors, ())
        redis = loaded.static.providers.redis
        self.assertEqual(
            (redis.endpoints, redis.root_key, redis.username, redis.password, redis.db),
            (("10.0.0.1:6380",), "edge", "u", "p", 3),
        )
        self.assertEqual(
            (redis.tls.ca, redis.tls.cert, redis.tls.key, redis.tls.insecure_skip_verify),
            ("ca.pem", "c.pem", "k.pem", True),
        )

    def test_errors(self) -> None:
        """Wrong options are located errors."""
        cases = [
            (
                "providers:\n  etcd: {endpoints: [nope]}\n",
                "tsproxy.yaml:4: providers.etcd.endpoints[0]: 'nope': must be host:port (like"
                " 127.0.0.1:2379)",
            ),
            ("providers:\n  etcd: {db: 1}\n", "tsproxy.yaml:4: providers.etcd.db: unknown field"),
            (
                "providers:\n  redis: {sentinel: {masterName: m}}\n",
                "tsproxy.yaml:4: providers.redis.sentinel: Redis Sentinel is not supported yet",
            ),
            (
                "providers:\n  redis:\n    tls: {cert: c.pem}\n",
                "tsproxy.yaml:5: providers.redis.tls: cert and key go together",
            ),
            (
                "providers:\n  consul: {}\n",
                "tsproxy.yaml:4: providers.consul: this provider is not supported yet",
            ),
        ]
        for text, expected in cases:
            loaded = load_files(ENTRY + text, [])
            self.assertEqual([str(e) for e in loaded.errors], [expected], text)


# -- real servers ------------------------------------------------------------------------------

WEIGHTED = {
    "traefik/http/routers/app/rule": "Host(`app.test`)",
    "traefik/http/routers/app/entryPoints/0": "web",
    "traefik/http/routers/app/service": "split",
    "traefik/http/services/split/weighted/services/0/name": "v1",
    "traefik/http/services/split/weighted/services/0/weight": "1",
    "traefik/http/services/split/weighted/services/1/name": "v2",
    "traefik/http/services/split/weighted/services/1/weight": "0",
}


#: ``user:pass`` as htpasswd writes it with SHA1.
USER_SHA1 = "user:{SHA}nU4eI71bcnBGqeO0t9tXvY1u5oQ="


def static_for(provider: str, endpoint: str) -> str:
    return (
        "entryPoints:\n  web: {address: '127.0.0.1:0'}\n  traefik: {address: '127.0.0.1:0'}\n"
        "api: {insecure: true}\nlog: {level: ERROR}\n"
        f"providers:\n  providersThrottleDuration: 0s\n  {provider}:\n"
        f"    endpoints: ['{endpoint}']\n"
    )


class KVServerTestCase(ProxyTestCase):
    """Proxies watching a real store."""

    def setUp(self) -> None:
        super().setUp()
        self.ports = {"v1": self.start_app("app-v1"), "v2": self.start_app("app-v2")}

    def keys(self) -> Dict[str, str]:
        pairs = dict(WEIGHTED)
        for name, port in self.ports.items():
            pairs[f"traefik/http/services/{name}/loadBalancer/servers/0/url"] = (
                f"http://127.0.0.1:{port}"
            )
        return pairs

    def proxy(self, provider: str, endpoint: str) -> ProxyService:
        directory = self.mktemp()
        os.makedirs(directory)
        with open(os.path.join(directory, "traefik.yml"), "w") as stream:
            stream.write(static_for(provider, endpoint))
        service = ProxyService(directory, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        for watcher in service.kv_watchers:
            watcher.backoff = Backoff(0.05, 0.5)
        return service

    @defer.inlineCallbacks
    def until(self, check: Any, seconds: float = 10.0) -> Any:
        """Wait (polling every 10 ms) until ``check()`` is true; the seconds it took."""
        start = time.monotonic()
        while not check():
            if time.monotonic() - start > seconds:
                self.fail(f"not within {seconds} s: {check}")
            yield deferLater(reactor, 0.01, lambda: None)
        return time.monotonic() - start

    @defer.inlineCallbacks
    def answers(self, service: ProxyService, count: int = 4) -> Any:
        """Who answered ``count`` requests for app.test through ``service``."""
        names = []
        for _ in range(count):
            response = yield treq.get(
                "http://127.0.0.1:%d/" % service.port_of("web"),
                headers={"Host": ["app.test"]},
                agent=self.agent,
            )
            body = yield treq.content(response)
            names.append(body.split()[1].decode() if response.code == 200 else response.code)
        return names

    def weight_of_v2(self, service: ProxyService) -> Optional[int]:
        split = service.table.services.get("split@" + service.kv_watchers[0].provider)
        if split is None:
            return None
        return int(dict((c.name, c.weight) for c in split.definition.children)["v2"])


class EtcdTests(KVServerTestCase):
    """The etcd provider against a real etcd."""

    def setUp(self) -> None:
        if ETCD is None:
            raise SkipTest(NO_ETCD)
        super().setUp()
        self.etcd = EtcdServer(self.mktemp())
        self.etcd.start()
        self.addCleanup(self.etcd.stop)

    @defer.inlineCallbacks
    def test_two_proxies_one_store(self) -> None:
        """Two proxies on one etcd: one weight changed once is applied by both within 1 s;
        etcd killed, both keep serving the last configuration; etcd back, both watch again
        and apply the next change."""
        self.etcd.put(self.keys())
        proxies = [self.proxy("etcd", self.etcd.endpoint) for _ in range(2)]
        for service in proxies:
            yield self.until(lambda s=service: self.weight_of_v2(s) == 0)
            self.assertEqual((yield self.answers(service)), ["app-v1"] * 4)
        self.etcd.put({"traefik/http/services/split/weighted/services/1/weight": "1000000"})
        for service in proxies:
            took = yield self.until(lambda s=service: self.weight_of_v2(s) == 1000000, 1.0)
            self.assertLess(took, 1.0)
        for service in proxies:
            names = yield self.answers(service)
            self.assertGreaterEqual(names.count("app-v2"), 3, names)
        self.etcd.stop()
        yield deferLater(reactor, 0.3, lambda: None)
        for service in proxies:
            names = yield self.answers(service)
            self.assertGreaterEqual(names.count("app-v2"), 3, names)
        self.etcd.start()
        self.etcd.put({"traefik/http/services/split/weighted/services/1/weight": "0"})
        for service in proxies:
            yield self.until(lambda s=service: self.weight_of_v2(s) == 0, 10.0)
            self.assertEqual((yield self.answers(service)), ["app-v1"] * 4)

    @defer.inlineCallbacks
    def test_middlewares_applied(self) -> None:
        """A router's stripPrefix and basicAuth middlewares from etcd run on real requests:
        no credentials get 401 and reach no backend; with them the backend sees the path
        without its prefix; a middleware added later to the store is applied."""
        keys = self.keys()
        keys.update(
            flatten(
                {
                    "http": {
                        "routers": {
                            "app": {"middlewares": ["auth", "strip@etcd"]},
                        },
                        "middlewares": {
                            "strip": {"stripPrefix": {"prefixes": ["/api"]}},
                            # user:pass, htpasswd SHA1
                            "auth": {"basicAuth": {"users": [USER_SHA1]}},
                        },
                    }
                }
            )
        )
        keys["traefik/http/services/split/weighted/services/1/weight"] = "0"
        self.etcd.put(keys)
        service = self.proxy("etcd", self.etcd.endpoint)
        yield self.until(lambda: "app@etcd" in {r.name for r in service.table.routers})
        url = "http://127.0.0.1:%d/api/x" % service.port_of("web")
        response = yield treq.get(url, headers={"Host": ["app.test"]}, agent=self.agent)
        yield treq.content(response)
        self.assertEqual(response.code, 401)
        self.assertEqual(self.apps["app-v1"].requests, [])
        auth = {"Host": ["app.test"], "Authorization": ["Basic dXNlcjpwYXNz"]}
        response = yield treq.get(url, headers=auth, agent=self.agent)
        self.assertEqual((yield treq.content(response)), b"Hello app-v1\n")
        self.assertEqual(self.apps["app-v1"].requests[-1]["path"], "/x")
        self.etcd.put(
            {
                "traefik/http/routers/app/middlewares/2": "tag",
                "traefik/http/middlewares/tag/headers/customRequestHeaders/X-Tag": "t",
            }
        )
        yield self.until(
            lambda: any(r.name == "app@etcd" and len(r.chain) == 3 for r in service.table.routers)
        )
        response = yield treq.get(url, headers=auth, agent=self.agent)
        yield treq.content(response)
        self.assertEqual(self.apps["app-v1"].requests[-1]["headers"]["x-tag"], ["t"])

    @defer.inlineCallbacks
    def test_two_processes_one_store(self) -> None:
        """Two tsproxy processes (the installed `twist tsproxy`) on one etcd: one weight
        change is followed by both; etcd killed, both keep serving the last configuration;
        etcd back, both watch again and follow the next change."""
        import sys

        from tests.service.test_tap import _Collect

        twist = os.path.join(os.path.dirname(sys.executable), "twist")
        if not os.path.exists(twist):
            raise SkipTest("twist is not installed next to " + sys.executable)
        self.etcd.put(self.keys())
        ports = []
        for _ in range(2):
            directory = os.path.abspath(self.mktemp())
            os.makedirs(directory)
            port = free_port()
            with open(os.path.join(directory, "traefik.yml"), "w") as stream:
                stream.write(
                    static_for("etcd", self.etcd.endpoint).replace(
                        "web: {address: '127.0.0.1:0'}", f"web: {{address: '127.0.0.1:{port}'}}"
                    )
                )
            collect = _Collect()
            process = reactor.spawnProcess(
                collect, twist, [twist, "tsproxy", "-c", directory], env=dict(os.environ)
            )

            def stop(process: Any = process, collect: _Collect = collect) -> Any:
                if process.pid:
                    process.signalProcess("TERM")
                return collect.ended

            self.addCleanup(stop)
            ports.append(port)

        @defer.inlineCallbacks
        def names(port: int) -> Any:
            found = []
            for _ in range(4):
                try:
                    response = yield treq.get(
                        "http://127.0.0.1:%d/" % port,
                        headers={"Host": ["app.test"]},
                        agent=self.agent,
                    )
                    body = yield treq.content(response)
                except Exception:
                    return []
                found.append(body.split()[1].decode() if response.code == 200 else "")
            return found

        @defer.inlineCallbacks
        def until_all(port: int, name: str, seconds: float) -> Any:
            start = time.monotonic()
            while True:
                found = yield names(port)
                if found and all(n == name for n in found):
                    return
                if time.monotonic() - start > seconds:
                    self.fail(f"port {port}: {found} after {seconds} s, wanted {name}")
                yield deferLater(reactor, 0.05, lambda: None)

        for port in ports:
            yield until_all(port, "app-v1", 30.0)  # the interpreter starts, then watches
        self.etcd.put({"traefik/http/services/split/weighted/services/0/weight": "0"})
        self.etcd.put({"traefik/http/services/split/weighted/services/1/weight": "1"})
        for port in ports:
            yield until_all(port, "app-v2", 5.0)
        self.etcd.stop()
        yield deferLater(reactor, 0.3, lambda: None)
        for port in ports:
            self.assertEqual((yield names(port)), ["app-v2"] * 4)
        self.etcd.start()
        self.etcd.put({"traefik/http/services/split/weighted/services/0/weight": "1"})
        self.etcd.put({"traefik/http/services/split/weighted/services/1/weight": "0"})
        for port in ports:
            yield until_all(port, "app-v1", 20.0)  # reconnection backs off up to 5 s

    @defer.inlineCallbacks
    def test_username_password(self) -> None:
        """With etcd's authentication on, username and password get a token the range and
        the watch carry; /api/overview lists the provider."""
        self.etcd.put(self.keys())
        self.etcd.call("/v3/auth/role/add", {"name": "root"})
        self.etcd.call("/v3/auth/user/add", {"name": "root", "password": "pw"})
        self.etcd.call("/v3/auth/user/grant", {"user": "root", "role": "root"})
        self.etcd.call("/v3/auth/enable", {})
        directory = self.mktemp()
        os.makedirs(directory)
        with open(os.path.join(directory, "traefik.yml"), "w") as stream:
            stream.write(
                static_for("etcd", self.etcd.endpoint) + "    username: root\n    password: pw\n"
            )
        service = ProxyService(directory, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        yield self.until(lambda: self.weight_of_v2(service) == 0)
        token = self.etcd.call("/v3/auth/authenticate", {"name": "root", "password": "pw"})["token"]
        self.etcd.token = token
        self.etcd.put({"traefik/http/services/split/weighted/services/1/weight": "9"})
        took = yield self.until(lambda: self.weight_of_v2(service) == 9, 1.0)
        self.assertLess(took, 1.0)
        api = "http://127.0.0.1:%d/api/overview" % service.port_of("traefik")
        response = yield treq.get(api, agent=self.agent)
        overview = json.loads((yield treq.content(response)))
        self.assertEqual(overview["providers"], ["Etcd"])

    @defer.inlineCallbacks
    def test_bad_key_keeps_last(self) -> None:
        """A key that does not parse: the reload is refused with the key's path, the last
        configuration keeps serving; fixed, the next change applies; the key tree removed,
        the routes go (an empty tree is a valid, empty configuration)."""
        self.etcd.put(self.keys())
        service = self.proxy("etcd", self.etcd.endpoint)
        yield self.until(lambda: self.weight_of_v2(service) == 0)
        table = service.table
        self.etcd.put({"traefik/http/routers/app/priority": "high"})
        yield self.until(lambda: service._refused)
        self.assertIs(service.table, table)
        loaded = service._with_kv(load_files(static_for("etcd", self.etcd.endpoint), []))
        self.assertIn(
            "etcd:traefik/http/routers/app/priority: router app: http.routers.app.priority:"
            " must be an integer <= 9223372036854774807",
            [str(e) for e in loaded.errors],
        )
        self.assertEqual((yield self.answers(service)), ["app-v1"] * 4)
        self.etcd.put({"traefik/http/routers/app/priority": "5"})
        yield self.until(lambda: service.table is not table)
        self.etcd.call(
            "/v3/kv/deleterange",
            {"key": "dHJhZWZpay8=", "range_end": "dHJhZWZpazA="},  # traefik/ .. traefik0
        )
        yield self.until(lambda: not service.table.routers)
        self.assertEqual((yield self.answers(service, 1)), [404])


def both_uses(ca: Any, leaf: Any) -> Any:
    """``leaf`` re-signed for server and client authentication (etcd's gateway dials its own
    gRPC port with the server's certificate when clients must present one)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from tests.certs import Issued

    builder = (
        x509.CertificateBuilder()
        .subject_name(leaf.cert.subject)
        .issuer_name(ca.cert.subject)
        .public_key(leaf.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(leaf.cert.not_valid_before_utc)
        .not_valid_after(leaf.cert.not_valid_after_utc)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            leaf.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    return Issued(builder.sign(ca.key, hashes.SHA256()), leaf.key)


class EtcdTLSTests(KVServerTestCase):
    """providers.etcd.tls against an etcd serving HTTPS and asking for client certificates."""

    def setUp(self) -> None:
        if ETCD is None:
            raise SkipTest(NO_ETCD)
        super().setUp()
        from tests.certs import make_ca, make_leaf

        ca = make_ca()
        server = both_uses(ca, make_leaf(ca, "etcd", dns=["localhost"], ips=["127.0.0.1"]))
        client = make_leaf(ca, "tsproxy", client=True)
        self.files: Dict[str, str] = {}
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        for name, data in (
            ("ca.pem", ca.cert_pem),
            ("server.pem", server.cert_pem),
            ("server-key.pem", server.key_pem),
            ("client.pem", client.cert_pem),
            ("client-key.pem", client.key_pem),
        ):
            self.files[name] = os.path.join(directory, name)
            with open(self.files[name], "wb") as stream:
                stream.write(data)
        f = self.files
        tls = (
            f["ca.pem"],
            f["server.pem"],
            f["server-key.pem"],
            f["client.pem"],
            f["client-key.pem"],
        )
        self.etcd = EtcdServer(self.mktemp(), tls)
        self.etcd.start()
        self.addCleanup(self.etcd.stop)
        self.etcd.put(self.keys())

    def tls_proxy(self, tls: str) -> ProxyService:
        directory = self.mktemp()
        os.makedirs(directory)
        with open(os.path.join(directory, "traefik.yml"), "w") as stream:
            stream.write(static_for("etcd", self.etcd.endpoint) + f"    tls: {tls}\n")
        service = ProxyService(directory, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    @defer.inlineCallbacks
    def test_verified(self) -> None:
        """ca verifies the server, cert/key are presented: the keys are read; a CA that did
        not sign the server's certificate reads nothing; insecureSkipVerify reads again."""
        f = self.files
        good = self.tls_proxy(
            f"{{ca: {f['ca.pem']}, cert: {f['client.pem']}, key: {f['client-key.pem']}}}"
        )
        yield self.until(lambda: self.weight_of_v2(good) == 0)
        self.assertEqual((yield self.answers(good)), ["app-v1"] * 4)
        from tests.certs import make_ca

        other = os.path.join(os.path.dirname(f["ca.pem"]), "other.pem")
        with open(other, "wb") as stream:
            stream.write(make_ca("another CA").cert_pem)
        wrong = self.tls_proxy(
            f"{{ca: {other}, cert: {f['client.pem']}, key: {f['client-key.pem']}}}"
        )
        yield deferLater(reactor, 0.5, lambda: None)
        self.assertEqual(len(wrong.table.routers), 0)
        self.assertIsNone(wrong.kv_watchers[0].pairs)
        skip = self.tls_proxy(
            f"{{insecureSkipVerify: true, cert: {f['client.pem']}, key: {f['client-key.pem']}}}"
        )
        yield self.until(lambda: self.weight_of_v2(skip) == 0)


class RedisTests(KVServerTestCase):
    """The Redis provider against a real Redis."""

    def start_redis(self, *extra: str) -> RedisServer:
        if REDIS is None:
            raise SkipTest(NO_REDIS)
        server = RedisServer(self.mktemp(), *extra)
        server.start()
        self.addCleanup(server.stop)
        return server

    @defer.inlineCallbacks
    def test_two_proxies_one_store(self) -> None:
        """Two proxies on one Redis: keyspace notifications (turned on by the provider) apply
        one weight change in both within 1 s; Redis killed, both keep serving; Redis back,
        both watch again."""
        redis = self.start_redis()
        redis.put(self.keys())
        proxies = [self.proxy("redis", redis.endpoint) for _ in range(2)]
        for service in proxies:
            yield self.until(lambda s=service: self.weight_of_v2(s) == 0)
        self.assertEqual(redis.command_(["CONFIG", "GET", "notify-keyspace-events"]), "2")
        redis.put({"traefik/http/services/split/weighted/services/1/weight": "1000000"})
        for service in proxies:
            took = yield self.until(lambda s=service: self.weight_of_v2(s) == 1000000, 1.0)
            self.assertLess(took, 1.0)
            names = yield self.answers(service)
            self.assertGreaterEqual(names.count("app-v2"), 3, names)
        redis.stop()
        yield deferLater(reactor, 0.3, lambda: None)
        for service in proxies:
            names = yield self.answers(service)
            self.assertGreaterEqual(names.count("app-v2"), 3, names)
        redis.start()
        redis.put({"traefik/http/services/split/weighted/services/1/weight": "0"})
        for service in proxies:
            yield self.until(lambda s=service: self.weight_of_v2(s) == 0, 10.0)
            self.assertEqual((yield self.answers(service)), ["app-v1"] * 4)

    @defer.inlineCallbacks
    def test_config_not_allowed(self) -> None:
        """Where CONFIG is refused, changes still apply: at the periodic resync (and at once
        when the server's own notify-keyspace-events has them)."""
        redis = self.start_redis("--rename-command", "CONFIG", "")
        redis.put(self.keys())
        service = self.proxy("redis", redis.endpoint)
        service.kv_watchers[0].resync = 0.3
        yield self.until(lambda: self.weight_of_v2(service) == 0)
        redis.put({"traefik/http/services/split/weighted/services/1/weight": "7"})
        took = yield self.until(lambda: self.weight_of_v2(service) == 7, 5.0)
        self.assertLess(took, 2.0)

    @defer.inlineCallbacks
    def test_db_and_password(self) -> None:
        """``db`` selects the database (its notifications only); ``password`` is sent."""
        redis = self.start_redis("--requirepass", "s3cret")
        directory = self.mktemp()
        os.makedirs(directory)
        with open(os.path.join(directory, "traefik.yml"), "w") as stream:
            stream.write(static_for("redis", redis.endpoint) + "    db: 2\n    password: s3cret\n")
        # Keys in db 2 (MSET after SELECT on one connection).
        payload: List[str] = ["MSET"]
        for key, value in self.keys().items():
            payload += [key, value]
        _redis_in_db(redis, "s3cret", 2, payload)
        service = ProxyService(directory, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        yield self.until(lambda: self.weight_of_v2(service) == 0)
        _redis_in_db(
            redis,
            "s3cret",
            2,
            ["SET", "traefik/http/services/split/weighted/services/1/weight", "3"],
        )
        took = yield self.until(lambda: self.weight_of_v2(service) == 3, 1.0)
        self.assertLess(took, 1.0)


class RedisACLTests(KVServerTestCase):
    """providers.redis.username: a Redis 6+ ACL user."""

    @defer.inlineCallbacks
    def test_acl_user(self) -> None:
        """AUTH with username and password; the user's keys are read and watched."""
        if REDIS is None:
            raise SkipTest(NO_REDIS)
        redis = RedisServer(self.mktemp())
        redis.start()
        self.addCleanup(redis.stop)
        redis.command_(["ACL", "SETUSER", "edge", "on", ">pw", "~traefik/*", "&*", "+@all"])
        redis.command_(["ACL", "SETUSER", "default", "off"])
        directory = self.mktemp()
        os.makedirs(directory)
        with open(os.path.join(directory, "traefik.yml"), "w") as stream:
            stream.write(
                static_for("redis", redis.endpoint) + "    username: edge\n    password: pw\n"
            )
        words: List[str] = ["MSET"]
        for key, value in self.keys().items():
            words += [key, value]
        _redis_as(redis, ["AUTH", "edge", "pw"], words)
        service = ProxyService(directory, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        yield self.until(lambda: self.weight_of_v2(service) == 0)
        _redis_as(
            redis,
            ["AUTH", "edge", "pw"],
            ["SET", "traefik/http/services/split/weighted/services/1/weight", "4"],
        )
        took = yield self.until(lambda: self.weight_of_v2(service) == 4, 1.0)
        self.assertLess(took, 1.0)


def _redis_as(redis: RedisServer, auth: Sequence[str], words: Sequence[str]) -> None:
    """AUTH then one command on one connection."""
    import socket

    def encode(parts: Sequence[str]) -> bytes:
        out = f"*{len(parts)}\r\n".encode()
        for part in parts:
            data = part.encode()
            out += b"$%d\r\n%s\r\n" % (len(data), data)
        return out

    with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as sock:
        sock.sendall(encode(auth) + encode(words))
        reader = sock.makefile("rb")
        for _ in range(2):
            line = reader.readline()
            assert line.startswith(b"+"), line


def _redis_in_db(redis: RedisServer, password: str, db: int, words: Sequence[str]) -> None:
    """AUTH, SELECT and one command on one connection."""
    import socket

    def encode(parts: Sequence[str]) -> bytes:
        out = f"*{len(parts)}\r\n".encode()
        for part in parts:
            data = part.encode()
            out += b"$%d\r\n%s\r\n" % (len(data), data)
        return out

    with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as sock:
        sock.sendall(encode(["AUTH", password]) + encode(["SELECT", str(db)]) + encode(words))
        reader = sock.makefile("rb")
        for _ in range(3):
            line = reader.readline()
            assert line.startswith(b"+"), line


# -- the same configuration from every provider ------------------------------------------------


class EquivalenceTests(KVServerTestCase):
    """The configuration of tests.providers.test_providers.EquivalenceTests as CRD files, in etcd and in
    Redis: the same /api/rawdata (up to the provider suffixes) and the same answers."""

    @defer.inlineCallbacks
    def variant(self, service: ProxyService, routers: int) -> Any:
        yield self.until(lambda: len(service.table.routers) == routers)
        api = "http://127.0.0.1:%d/api/rawdata" % service.port_of("traefik")
        response = yield treq.get(api, agent=self.agent)
        document = json.loads((yield treq.content(response)))
        answers = []
        for host in ("a.test", "b.test", "r.test"):
            response = yield treq.get(
                "http://127.0.0.1:%d/" % service.port_of("web"),
                headers={"Host": [host]},
                agent=self.agent,
            )
            body = yield treq.content(response)
            answers.append((response.code, body[:40]))
        return document, answers

    @defer.inlineCallbacks
    def test_same_rawdata(self) -> None:
        """CRD files, the file provider's YAML, etcd keys and Redis keys: one rawdata."""
        if ETCD is None or REDIS is None:
            raise SkipTest(NO_ETCD if ETCD is None else NO_REDIS)
        ports = self.ports
        crd_dir = self.mktemp()
        os.makedirs(crd_dir)
        with open(os.path.join(crd_dir, "traefik.yml"), "w") as stream:
            stream.write(EQUIVALENT_STATIC_YAML)
        with open(os.path.join(crd_dir, "routes.yaml"), "w") as stream:
            stream.write(EQUIVALENT_CRD.format(**ports))
        crd_service = ProxyService(crd_dir, reactor)
        crd_service.startService()
        self.addCleanup(crd_service.stopService)
        crd = yield self.variant(crd_service, 3)
        keys = flatten(yaml.safe_load(EQUIVALENT_YAML.format(**ports)))
        etcd = EtcdServer(self.mktemp())
        etcd.start()
        self.addCleanup(etcd.stop)
        etcd.put(keys)
        redis = RedisServer(self.mktemp())
        redis.start()
        self.addCleanup(redis.stop)
        redis.put(keys)
        from_etcd = yield self.variant(self.proxy("etcd", etcd.endpoint), 3)
        from_redis = yield self.variant(self.proxy("redis", redis.endpoint), 3)
        self.assertEqual(without_providers(from_etcd[0]), without_providers(crd[0]))
        self.assertEqual(without_providers(from_redis[0]), without_providers(crd[0]))
        self.assertIn("default-ir-adb61728c085b5eef2e5@etcd", from_etcd[0]["routers"])
        self.assertIn("default-wrr@redis", from_redis[0]["services"])
        self.assertEqual(from_etcd[1], crd[1])
        self.assertEqual(from_redis[1], crd[1])
        self.assertEqual([code for code, _ in crd[1]], [200, 200, 418])
