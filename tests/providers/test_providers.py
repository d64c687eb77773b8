"""Providers: the file provider (YAML and TOML), static traefik.yml/.toml, the merge of
providers' names and references, the Kubernetes CRD provider's options, internal services."""

from __future__ import annotations

import base64
import json
import os
import re
import textwrap
from typing import Any, Dict, List, Sequence, Tuple

import treq
from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase

from tests.proxyfixture import ProxyTestCase
from tsproxy.api.model import rawdata
from tsproxy.balance.health import HealthCheckSpec, PassiveHealthSpec
from tsproxy.config.fileformat import parse_dynamic_files
from tsproxy.config.load import load_directory, load_files
from tsproxy.config.providers import parse_label_selector, selector_matches
from tsproxy.config.tomlio import toml_lines
from tsproxy.runtime.audit import review
from tsproxy.runtime.build import build_table
from tsproxy.runtime.internal import InternalService
from tsproxy.runtime.services import FailoverDef, HighestRandomWeightDef
from tsproxy.testing import listen_udp_echo

STATIC = 'entryPoints:\n  web:\n    address: ":8000"\n'
BACKENDS = """\
apiVersion: v1
kind: Service
metadata: {name: app-v1}
spec: {ports: [{name: http, port: 80}], clusterIP: 10.96.0.7}
---
apiVersion: v1
kind: Endpoints
metadata: {name: app-v1}
subsets: [{addresses: [{ip: 10.0.0.1}], ports: [{name: http, port: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: app-v1, namespace: other}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: app-v1, namespace: other}
subsets: [{addresses: [{ip: 10.0.0.9}], ports: [{name: http, port: 8080}]}]
"""


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def build(
    static: str, files: Sequence[Tuple[str, str]], dynamic: Sequence[Tuple[str, str]] = ()
) -> Tuple[Any, List[str]]:
    loaded = load_files(static, files, dynamic=dynamic)
    result = build_table(loaded)
    return result.table, [str(e) for e in loaded.errors + result.errors]


# -- the same configuration three ways -------------------------------------------------------

EQUIVALENT_CRD = """\
apiVersion: v1
kind: Service
metadata: {{name: app-v1}}
spec: {{ports: [{{name: http, port: 80}}]}}
---
apiVersion: v1
kind: Endpoints
metadata: {{name: app-v1}}
subsets: [{{addresses: [{{ip: 127.0.0.1}}], ports: [{{name: http, port: {v1}}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: app-v2}}
spec: {{ports: [{{name: http, port: 80}}]}}
---
apiVersion: v1
kind: Endpoints
metadata: {{name: app-v2}}
subsets: [{{addresses: [{{ip: 127.0.0.1}}], ports: [{{name: http, port: {v2}}}]}}]
---
apiVersion: traefik.io/v1alpha1
kind: TraefikService
metadata: {{name: wrr}}
spec:
  weighted:
    services:
      - {{name: app-v1, port: 80, weight: 3}}
      - {{name: app-v2, port: 80, weight: 1}}
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {{name: ir}}
spec:
  entryPoints: [web]
  routes:
    - match: Host(`a.test`)
      services: [{{name: app-v1, port: 80, passHostHeader: false}}]
    - match: Host(`b.test`)
      priority: 50
      services: [{{name: wrr, kind: TraefikService}}]
    - match: Host(`r.test`)
      services: [{{name: noop@internal, kind: TraefikService}}]
"""
# Traefik's CRD names: router (and single service) <ns>-<name>-<sha256(match)[:20]>.
EQUIVALENT_YAML = """\
http:
  routers:
    default-ir-adb61728c085b5eef2e5:
      entryPoints: [web]
      rule: Host(`a.test`)
      service: default-ir-adb61728c085b5eef2e5
    default-ir-74c9340d307309870881:
      entryPoints: [web]
      rule: Host(`b.test`)
      priority: 50
      service: default-wrr
    default-ir-cfe163ed19f8fa4fe15c:
      entryPoints: [web]
      rule: Host(`r.test`)
      service: noop@internal
  services:
    default-ir-adb61728c085b5eef2e5:
      loadBalancer:
        passHostHeader: false
        servers: [{{url: "http://127.0.0.1:{v1}"}}]
    default-wrr:
      weighted:
        services:
          - {{name: default-app-v1-80, weight: 3}}
          - {{name: default-app-v2-80, weight: 1}}
    default-app-v1-80:
      loadBalancer:
        servers: [{{url: "http://127.0.0.1:{v1}"}}]
    default-app-v2-80:
      loadBalancer:
        servers: [{{url: "http://127.0.0.1:{v2}"}}]
"""
EQUIVALENT_TOML = """\
[http.routers.default-ir-adb61728c085b5eef2e5]
entryPoints = ["web"]
rule = "Host(`a.test`)"
service = "default-ir-adb61728c085b5eef2e5"

[http.routers.default-ir-74c9340d307309870881]
entryPoints = ["web"]
rule = "Host(`b.test`)"
priority = 50
service = "default-wrr"

[http.routers.default-ir-cfe163ed19f8fa4fe15c]
entryPoints = ["web"]
rule = "Host(`r.test`)"
service = "noop@internal"

[http.services.default-ir-adb61728c085b5eef2e5.loadBalancer]
passHostHeader = false
[[http.services.default-ir-adb61728c085b5eef2e5.loadBalancer.servers]]
url = "http://127.0.0.1:{v1}"

[[http.services.default-wrr.weighted.services]]
name = "default-app-v1-80"
weight = 3
[[http.services.default-wrr.weighted.services]]
name = "default-app-v2-80"
weight = 1

[[http.services.default-app-v1-80.loadBalancer.servers]]
url = "http://127.0.0.1:{v1}"
[[http.services.default-app-v2-80.loadBalancer.servers]]
url = "http://127.0.0.1:{v2}"
"""
EQUIVALENT_STATIC_YAML = """\
entryPoints:
  web: {address: "127.0.0.1:0"}
  traefik: {address: "127.0.0.1:0"}
api: {insecure: true}
log: {level: ERROR}
"""
EQUIVALENT_STATIC_TOML = """\
[entryPoints.web]
address = "127.0.0.1:0"
[entryPoints.traefik]
address = "127.0.0.1:0"
[api]
insecure = true
[log]
level = "ERROR"
[providers.file]
filename = "{filename}"
"""
_SUFFIX = re.compile(r"@(file|kubernetescrd|etcd|redis)\b")


def without_providers(document: Any) -> Any:
    """The document with the provider suffixes (file, kubernetescrd, etcd, redis) removed."""
    return json.loads(_SUFFIX.sub("", json.dumps(document, sort_keys=True)))


class EquivalenceTests(ProxyTestCase):
    """The same routes as CRD files, as file-provider YAML and as file-provider TOML."""

    @defer.inlineCallbacks
    def run_variant(self, files: Dict[str, str]) -> Any:
        directory = self.mktemp()
        os.makedirs(directory)
        for name, text in files.items():
            with open(os.path.join(directory, name), "w") as stream:
                stream.write(text)
        self.config_dir = directory
        service = self.start_proxy()
        self.assertEqual([str(e) for e in review(load_directory(directory)).errors], [], files)
        api = "http://127.0.0.1:%d/api/rawdata" % service.port_of("traefik")
        response = yield treq.get(api, agent=self.agent)
        document = json.loads((yield treq.content(response)))
        answers = []
        for host in ("a.test", "b.test", "r.test"):
            response, body = yield self.get(host)
            answers.append((response.code, body[:40]))
        yield service.stopService()
        return document, answers

    @defer.inlineCallbacks
    def test_same_rawdata(self) -> None:
        """CRD files, a file-provider YAML and TOML give the same /api/rawdata (up to the
        provider suffixes) and route the same requests the same way."""
        ports = {"v1": self.start_app("app-v1"), "v2": self.start_app("app-v2")}
        crd = yield self.run_variant(
            {"traefik.yml": EQUIVALENT_STATIC_YAML, "routes.yaml": EQUIVALENT_CRD.format(**ports)}
        )
        static_file = EQUIVALENT_STATIC_YAML + "providers:\n  file: {filename: dynamic.yml}\n"
        yaml = yield self.run_variant(
            {"traefik.yaml": static_file, "dynamic.yml": EQUIVALENT_YAML.format(**ports)}
        )
        toml = yield self.run_variant(
            {
                "traefik.toml": EQUIVALENT_STATIC_TOML.format(filename="dyn.toml"),
                "dyn.toml": EQUIVALENT_TOML.format(**ports),
            }
        )
        self.assertEqual(without_providers(yaml[0]), without_providers(crd[0]))
        self.assertEqual(without_providers(toml[0]), without_providers(crd[0]))
        self.assertIn("default-ir-adb61728c085b5eef2e5@file", yaml[0]["routers"])
        self.assertIn("default-ir-adb61728c085b5eef2e5@kubernetescrd", crd[0]["routers"])
        self.assertEqual(crd[0]["services"]["noop@internal"]["status"], "enabled")
        self.assertEqual(yaml[1], crd[1])
        self.assertEqual(toml[1], crd[1])
        self.assertEqual([code for code, _ in crd[1]], [200, 200, 418])
        self.assertEqual(crd[1][2], (418, b""))


# -- located errors ---------------------------------------------------------------------------

YAML_ERRORS = [
    (
        "http:\n  routers:\n    r: {service: s}\n",
        "d.yml:3: router r: http.routers.r.rule: is required",
    ),
    (
        "http:\n  services:\n    s:\n      loadBalancer:\n        servers: [{url: 'ftp://x'}]\n",
        "d.yml:5: service s: http.services.s.loadBalancer.servers[0].url: must be an http,"
        " https or h2c URL (like http://10.0.0.1:80)",
    ),
    (
        "http:\n  services:\n    s:\n      failover:\n        service: a\n"
        "        fallback: b\n        errors: {status: ['500-599']}\n",
        "d.yml:7: service s: http.services.s.failover.errors: failover on error statuses is"
        " not supported",
    ),
    (
        "http:\n  services:\n    s:\n      failover: {service: a}\n",
        "d.yml:4: service s: http.services.s.failover.fallback: is required",
    ),
    (
        "http:\n  services:\n    s:\n      failover:\n",
        "d.yml:3: service s: http.services.s: exactly one of loadBalancer, weighted,"
        " mirroring, failover or highestRandomWeight is required",
    ),
    (
        "http:\n  services:\n    s:\n      highestRandomWeight:\n"
        "        services: [{name: a, weight: -2}]\n",
        "d.yml:5: service s: http.services.s.highestRandomWeight.services[0].weight: must be"
        " an integer >= 0",
    ),
    (
        "http:\n  services:\n    s:\n      highestRandomWeight:\n"
        "        services: [{name: a}]\n        sticky: {cookie: {}}\n",
        "d.yml:6: service s: http.services.s.highestRandomWeight.sticky: unknown field",
    ),
    (
        "http:\n  services:\n    s:\n      loadBalancer:\n"
        "        servers: [{url: 'http://x/a?b=1'}]\n",
        "d.yml:5: service s: http.services.s.loadBalancer.servers[0].url: a query, fragment or"
        " user in a server URL is not supported",
    ),
    (
        "http:\n  services:\n    s:\n      loadBalancer:\n"
        "        servers: [{url: 'http://u@x/a'}]\n",
        "d.yml:5: service s: http.services.s.loadBalancer.servers[0].url: a query, fragment or"
        " user in a server URL is not supported",
    ),
    (
        "http:\n  services:\n    s:\n      loadBalancer:\n"
        "        servers: [{url: 'http://x/a b'}]\n",
        "d.yml:5: service s: http.services.s.loadBalancer.servers[0].url: the path '/a b' is"
        " not a valid URL path (escape it)",
    ),
    (
        "http:\n  services:\n    s:\n      loadBalancer:\n"
        "        servers: [{url: 'http://x/a%zz'}]\n",
        "d.yml:5: service s: http.services.s.loadBalancer.servers[0].url: the path '/a%zz' is"
        " not a valid URL path (escape it)",
    ),
    (
        "http:\n  services:\n    s:\n      loadBalancer:\n"
        "        servers: [{url: 'http://x/a', preservePath: maybe}]\n",
        "d.yml:5: service s: http.services.s.loadBalancer.servers[0].preservePath: must be"
        " true or false",
    ),
    (
        "http:\n  services:\n    s:\n      loadBalancer:\n"
        "        servers: [{url: 'http://x', weight: -1}]\n",
        "d.yml:5: service s: http.services.s.loadBalancer.servers[0].weight: must be an integer >= 0",
    ),
    (
        "http:\n  services:\n    s:\n      loadBalancer:\n        strategy: bogus\n",
        "d.yml:5: service s: http.services.s.loadBalancer.strategy: unsupported load-balancer"
        ' strategy "bogus" (one of: wrr, p2c, hrw, leasttime)',
    ),
    (
        "http:\n  services:\n    s:\n      loadBalancer:\n        strategy: WRR\n",
        "d.yml:5: service s: http.services.s.loadBalancer.strategy: unsupported load-balancer"
        ' strategy "WRR" (one of: wrr, p2c, hrw, leasttime)',
    ),
    (
        "http:\n  services:\n    s: {}\n",
        "d.yml:3: service s: http.services.s: exactly one of loadBalancer, weighted,"
        " mirroring, failover or highestRandomWeight is required",
    ),
    (
        "http:\n  routers:\n    r:\n      rule: Host(`a`)\n      service: s\n"
        "      tls: {certResolver: le}\n",
        "d.yml:6: router r: http.routers.r.tls.certResolver: ACME certificate resolvers are"
        " not supported",
    ),
    (
        "http:\n  middlewares:\n    ext:\n      plugin: {demo: {headerName: X}}\n",
        "d.yml:4: middleware ext: http.middlewares.ext.plugin: this middleware kind"
        " is not implemented yet",
    ),
    (
        "tcp:\n  services:\n    s:\n      loadBalancer:\n        servers: [{address: nope}]\n",
        "d.yml:5: TCP service s: tcp.services.s.loadBalancer.servers[0].address: must be"
        " host:port (like 10.0.0.1:5432 or [fd00::1]:53)",
    ),
    (
        "udp:\n  services:\n    s:\n      loadBalancer:\n"
        "        servers: [{address: '10.0.0.1:53', tls: true}]\n",
        "d.yml:5: UDP service s: udp.services.s.loadBalancer.servers[0].tls: UDP servers are"
        " not dialled with TLS",
    ),
    (
        "tcp:\n  middlewares:\n    m: {ipAllowList: {sourceRange: []}}\n",
        "d.yml:3: TCP middleware m: tcp.middlewares.m.ipAllowList.sourceRange: sourceRange is"
        " empty, IPAllowLister not created",
    ),
    (
        "tcp:\n  middlewares:\n    m:\n      ipWhiteList:\n        sourceRange: [10.0.0.300]\n",
        "d.yml:5: TCP middleware m: tcp.middlewares.m.ipWhiteList.sourceRange: cannot parse"
        " CIDRs: '10.0.0.300' is neither IP nor CIDR",
    ),
    (
        "tcp:\n  middlewares:\n    m:\n      inFlightConn: {amount: -1}\n",
        "d.yml:4: TCP middleware m: tcp.middlewares.m.inFlightConn.amount: must be an integer >= 0",
    ),
    (
        "tcp:\n  middlewares:\n    m:\n      inFlightConn: {amount: 1, extra: 2}\n",
        "d.yml:4: TCP middleware m: tcp.middlewares.m.inFlightConn.extra: unknown field",
    ),
    (
        "tcp:\n  middlewares:\n    m:\n      stripPrefix: {prefixes: [/a]}\n",
        "d.yml:4: TCP middleware m: tcp.middlewares.m.stripPrefix: not a TCP middleware kind"
        " (one of: inFlightConn, ipAllowList, ipWhiteList)",
    ),
    (
        "tcp:\n  middlewares:\n    m:\n      chain: {middlewares: [a]}\n",
        "d.yml:4: TCP middleware m: tcp.middlewares.m.chain: not a TCP middleware kind"
        " (one of: inFlightConn, ipAllowList, ipWhiteList)",
    ),
    (
        "tcp:\n  middlewares:\n    m:\n      inFlightConn: {amount: 1}\n"
        "      ipAllowList: {sourceRange: [10.0.0.0/8]}\n",
        "d.yml:3: TCP middleware m: tcp.middlewares.m: a middleware has exactly one kind"
        " (like ipAllowList)",
    ),
    (
        "http:\n  routers:\n    r:\n      rule: Host(`a`)\n      service: s\n      colour: red\n",
        "d.yml:6: router r: http.routers.r.colour: unknown field",
    ),
    (
        "http:\n  routers:\n    r:\n      rule: Host(`{{ .Host }}`)\n",
        "d.yml:4: Go templates ({{ ... }}) are not supported: the file is not read",
    ),
    (
        "http: [1\n",
        "d.yml:2: invalid YAML: expected ',' or ']', but got '<stream end>' (while parsing a"
        " flow sequence at line 1)",
    ),
]

TOML_ERRORS = [
    (
        '[http.routers.r]\nservice = "s"\n',
        "d.toml:1: router r: http.routers.r.rule: is required",
    ),
    (
        '[http.services.s.loadBalancer]\npassHostHeader = "yes"\n',
        "d.toml:2: service s: http.services.s.loadBalancer.passHostHeader: must be true or false",
    ),
    (
        '[http.services.s.loadBalancer]\n[[http.services.s.loadBalancer.servers]]\nurl = "x"\n'
        '[[http.services.s.loadBalancer.servers]]\nurl = "ftp://y"\n',
        "d.toml:3: service s: http.services.s.loadBalancer.servers[0].url: must be an http,"
        " https or h2c URL (like http://10.0.0.1:80)",
    ),
    (
        '[http.routers.r]\nrule = "Host(`a`)"\nservice = "s"\nprority = 3\n',
        "d.toml:4: router r: http.routers.r.prority: unknown field",
    ),
    (
        '[http.services.s.loadBalancer]\nstrategy = "leastTime"\n',
        "d.toml:2: service s: http.services.s.loadBalancer.strategy: unsupported load-balancer"
        ' strategy "leastTime" (one of: wrr, p2c, hrw, leasttime)',
    ),
    ("[http.routers.r]\nrule = \n", "d.toml:2: invalid TOML: Invalid value"),
    (
        '[udp.routers.r]\nentryPoints = ["dns"]\n',
        "d.toml:1: UDP router r: udp.routers.r.service: is required",
    ),
]


class FileFormatErrorTests(SynchronousTestCase):
    """Every problem in a file-provider file is one located error (file, line, key path)."""

    def test_yaml(self) -> None:
        """YAML rows."""
        for text, expected in YAML_ERRORS:
            _, errors, _ = parse_dynamic_files([("d.yml", text)])
            self.assertEqual([str(e) for e in errors], [expected], text)

    def test_toml(self) -> None:
        """TOML rows: the line of the key where the scan finds it, the key path always."""
        for text, expected in TOML_ERRORS:
            _, errors, _ = parse_dynamic_files([("d.toml", text)])
            self.assertEqual([str(e) for e in errors], [expected], text)

    def test_defined_twice(self) -> None:
        """A name defined in two files keeps the first, with an error naming both places."""
        one = "http:\n  services:\n    s:\n      loadBalancer: {servers: []}\n"
        two = "[http.services.s.loadBalancer]\n"
        config, errors, _ = parse_dynamic_files([("a.yml", one), ("b.toml", two)])
        self.assertEqual(len(config.services), 1)
        self.assertEqual(
            [str(e) for e in errors],
            ["b.toml:1: service s: defined twice, this one is ignored (first at a.yml:3)"],
        )

    def test_toml_lines(self) -> None:
        """The TOML line scan: tables, arrays of tables (by index), dotted and quoted keys."""
        text = (
            '[a]\nx = 1\n"b.c".d = 2\n[[a.list]]\ny = 1\n[[a.list]]\ny = 2\n'
            's = """\nz = 9\n"""\nw = 3\n'
        )
        lines = toml_lines(text)
        self.assertEqual(
            {
                k: lines[k]
                for k in [
                    ("a",),
                    ("a", "x"),
                    ("a", "b.c", "d"),
                    ("a", "list", 0, "y"),
                    ("a", "list", 1, "y"),
                    ("a", "list", 1, "w"),
                ]
            },
            {
                ("a",): 1,
                ("a", "x"): 2,
                ("a", "b.c", "d"): 3,
                ("a", "list", 0, "y"): 5,
                ("a", "list", 1, "y"): 7,
                ("a", "list", 1, "w"): 11,
            },
        )
        self.assertNotIn(("a", "list", 1, "z"), lines)


class StrategyTests(SynchronousTestCase):
    """``strategy`` on a file loadBalancer and on a CRD service reference reaches the load
    balancer built, and the API shows it as Traefik's does."""

    def test_file_and_crd(self) -> None:
        """written -> the definition's strategy and the API's loadBalancer.strategy, for the
        file provider and the CRD provider alike (RoundRobin, v2's name, is wrr)."""
        for written, expected in [
            ("wrr", "wrr"),
            ("p2c", "p2c"),
            ("hrw", "hrw"),
            ("leasttime", "leasttime"),
            ("RoundRobin", "wrr"),
        ]:
            dynamic = (
                "http:\n  routers:\n    r: {rule: Host(`a`), service: s}\n  services:\n"
                f"    s:\n      loadBalancer:\n        strategy: {written}\n"
                '        servers: [{url: "http://10.0.0.5"}, {url: "http://10.0.0.6"}]\n'
            )
            crd = BACKENDS + dedent(
                f"""
                ---
                apiVersion: traefik.io/v1alpha1
                kind: IngressRoute
                metadata: {{name: ir}}
                spec:
                  routes:
                    - match: Host(`b`)
                      services: [{{name: app-v1, port: 80, strategy: {written}}}]
                """
            )
            static = STATIC + "providers:\n  file: {filename: d.yml}\n  kubernetesCRD: {}\n"
            table, errors = build(static, [("crd.yaml", crd)], [("d.yml", dynamic)])
            self.assertEqual(errors, [], written)
            services = rawdata(table)["services"]
            for router in table.routers:
                self.assertEqual(router.service.definition.strategy, expected, router.name)
                name = router.name.split("@")[0]
                key = "s@file" if name == "r" else f"{name}@kubernetescrd"
                balancer = services[key]["loadBalancer"]
                self.assertEqual(balancer["strategy"], expected, (written, key))
            self.assertEqual(len(table.routers), 2)

    def test_server_weights(self) -> None:
        """Server weights reach the load balancer as written, and the API lists ``weight``
        on the servers that have one (Traefik's rawdata); none written: no weights."""
        dynamic = (
            "http:\n  routers:\n    r: {rule: Host(`a`), service: s}\n"
            "    p: {rule: Host(`b`), service: plain}\n  services:\n"
            "    s:\n      loadBalancer:\n        servers:\n"
            '          - {url: "http://10.0.0.5", weight: 3}\n'
            '          - {url: "http://10.0.0.6"}\n'
            '          - {url: "http://10.0.0.7", weight: 0}\n'
            '    plain:\n      loadBalancer: {servers: [{url: "http://10.0.0.8"}]}\n'
        )
        static = STATIC + "providers:\n  file: {filename: d.yml}\n"
        table, errors = build(static, [], [("d.yml", dynamic)])
        self.assertEqual(errors, [])
        by_name = {router.name: router.service.definition for router in table.routers}
        self.assertEqual(by_name["r@file"].weights, (3, None, 0))
        self.assertEqual(by_name["p@file"].weights, ())
        services = rawdata(table)["services"]
        self.assertEqual(
            services["s@file"]["loadBalancer"]["servers"],
            [
                {"url": "http://10.0.0.5:80", "weight": 3},
                {"url": "http://10.0.0.6:80"},
                {"url": "http://10.0.0.7:80", "weight": 0},
            ],
        )
        self.assertEqual(
            services["plain@file"]["loadBalancer"]["servers"], [{"url": "http://10.0.0.8:80"}]
        )


class FileFailoverHRWTests(SynchronousTestCase):
    """File ``failover`` and ``highestRandomWeight`` services build the definitions the CRD
    provider's TraefikServices do, with Traefik's status rules, and the API shows them."""

    DYNAMIC = """\
http:
  routers:
    f: {rule: Host(`f`), service: fo}
    f2: {rule: Host(`f2`), service: fo2}
    h: {rule: Host(`h`), service: hrw}
    nomain: {rule: Host(`n`), service: nomain}
    nofall: {rule: Host(`b`), service: nofall}
    hbad: {rule: Host(`hb`), service: hbad}
    hzero: {rule: Host(`hz`), service: hzero}
  services:
    fo:
      failover: {service: main, fallback: plain}
    fo2:
      failover: {service: main, fallback: other, healthCheck: {}}
    hrw:
      highestRandomWeight:
        services: [{name: main, weight: 2}, {name: plain}]
    nomain:
      failover: {service: plain, fallback: main}
    nofall:
      failover: {service: main, fallback: plain, healthCheck: {}}
    hbad:
      highestRandomWeight:
        healthCheck: {}
        services: [{name: main}, {name: plain}]
    hzero:
      highestRandomWeight:
        services: [{name: main, weight: 0}]
    main:
      loadBalancer:
        healthCheck: {path: /h}
        servers: [{url: "http://10.0.0.5"}]
    other:
      loadBalancer:
        passiveHealthCheck: {}
        servers: [{url: "http://10.0.0.6"}]
    plain:
      loadBalancer: {servers: [{url: "http://10.0.0.7"}]}
"""

    def test_definitions_and_errors(self) -> None:
        """Good services become FailoverDef / HighestRandomWeightDef over the file's load
        balancers; a failover's main service, and children followed with
        ``healthCheck: {}``, that report no status are located errors disabling routers."""
        static = STATIC + "providers:\n  file: {filename: d.yml}\n"
        table, errors = build(static, [], [("d.yml", self.DYNAMIC)])
        why = "it needs a healthCheck (or healthCheck: {} on a weighted one)"
        self.assertEqual(
            errors,
            [
                f"d.yml:18: service nomain: service plain reports no status (the failover"
                f" follows it): {why}",
                f"d.yml:20: service nofall: service plain reports no status (the failover has"
                f" healthCheck: {{}}): {why}",
                f"d.yml:22: service hbad: service plain reports no status (the parent has"
                f" healthCheck: {{}}): {why}",
                "d.yml:6: router nomain: service nomain@file has errors (see d.yml:18)",
                "d.yml:7: router nofall: service nofall@file has errors (see d.yml:20)",
                "d.yml:8: router hbad: service hbad@file has errors (see d.yml:22)",
            ],
        )
        result = build_table(load_files(static, [], dynamic=[("d.yml", self.DYNAMIC)]))
        self.assertIn(
            "d.yml:26: service hzero: no service with a weight above 0: requests get 503",
            [str(w) for w in result.warnings],
        )
        by_name = {router.name: router.service.definition for router in table.routers}
        self.assertEqual(sorted(by_name), ["f2@file", "f@file", "h@file", "hzero@file"])
        fo, fo2, hrw = by_name["f@file"], by_name["f2@file"], by_name["h@file"]
        self.assertIsInstance(fo, FailoverDef)
        self.assertEqual(
            (fo.name, fo.main_name, fo.main.name, fo.fallback_name, fo.fallback.name),
            ("fo@file", "main", "main@file", "plain", "plain@file"),
        )
        self.assertEqual((fo.health_check, fo2.health_check), (False, True))
        self.assertIsInstance(hrw, HighestRandomWeightDef)
        self.assertEqual(
            [(c.name, c.weight, c.definition.name) for c in hrw.children],
            [("main", 2, "main@file"), ("plain", 1, "plain@file")],
        )
        services = rawdata(table)["services"]
        self.assertEqual(
            services["fo2@file"]["failover"],
            {"service": "main", "fallback": "other", "healthCheck": {}},
        )
        self.assertEqual(
            services["hrw@file"]["highestRandomWeight"],
            {"services": [{"name": "main", "weight": 2}, {"name": "plain", "weight": 1}]},
        )
        self.assertEqual(services["nomain@file"]["status"], "disabled")
        self.assertEqual(
            services["nomain@file"]["failover"], {"service": "plain", "fallback": "main"}
        )
        self.assertEqual(services["hbad@file"]["status"], "disabled")
        self.assertIn("highestRandomWeight", services["hbad@file"])


class FileTCPMiddlewareTests(SynchronousTestCase):
    """``tcp.middlewares`` of the file provider become the steps of the TCP routers naming
    them (this provider's by a bare name, others' qualified), as MiddlewareTCPs do."""

    DYNAMIC = """\
tcp:
  routers:
    ok: {rule: HostSNI(`*`), service: s, middlewares: [local, crd-only@kubernetescrd, one]}
    gone: {rule: HostSNI(`*`), service: s, middlewares: [nothing]}
    http: {rule: HostSNI(`*`), service: s, middlewares: [strip]}
  services:
    s: {loadBalancer: {servers: [{address: "10.0.0.5:80"}]}}
  middlewares:
    local: {ipAllowList: {sourceRange: ["127.0.0.0/8"]}}
    one: {inFlightConn: {amount: 1}}
http:
  middlewares:
    strip: {stripPrefix: {prefixes: [/a]}}
"""
    CRD = """\
apiVersion: traefik.io/v1alpha1
kind: MiddlewareTCP
metadata: {name: only, namespace: crd}
spec: {inFlightConn: {amount: 3}}
---
apiVersion: traefik.io/v1alpha1
kind: IngressRouteTCP
metadata: {name: t}
spec:
  routes:
    - match: HostSNI(`*`)
      middlewares: [{name: one@file}]
      services: [{name: app-v1, port: 80}]
"""

    def test_steps_and_errors(self) -> None:
        """Steps in the written order across providers; a CRD route reaches ``one@file``;
        a missing middleware, or an HTTP one, disables the router with a located error;
        the API lists the file TCP middlewares with their users."""
        static = STATIC + "providers:\n  file: {filename: d.yml}\n  kubernetesCRD: {}\n"
        table, errors = build(
            static, [("crd.yaml", BACKENDS + "---\n" + self.CRD)], [("d.yml", self.DYNAMIC)]
        )
        self.assertEqual(
            errors,
            [
                "d.yml:4: TCP router gone: tcp.routers.gone.middlewares[0]: middleware"
                ' "nothing@file" does not exist',
                "d.yml:5: TCP router http: tcp.routers.http.middlewares[0]: middleware"
                ' "strip@file" does not exist',
            ],
        )
        routers = {router.name: router for router in table.tcp_routers}
        ok = routers["ok@file"]
        self.assertEqual(ok.middlewares, ("local@file", "crd-only@kubernetescrd", "one@file"))
        self.assertEqual([name for name, _ in ok.chain], list(ok.middlewares))
        self.assertEqual(
            [type(step).__name__ for _, step in ok.chain],
            ["IPAllowListTCP", "InFlightConn", "InFlightConn"],
        )
        crd = [router for name, router in routers.items() if not name.endswith("@file")]
        self.assertEqual([router.middlewares for router in crd], [("one@file",)])
        self.assertIs(crd[0].chain[0][1], ok.chain[2][1])
        document = rawdata(table)
        self.assertEqual(document["tcpRouters"]["gone@file"]["status"], "disabled")
        used = document["tcpMiddlewares"]["one@file"]["usedBy"]
        self.assertEqual(sorted(used), sorted([f"{crd[0].name}@kubernetescrd", "ok@file"]))
        self.assertEqual(document["tcpMiddlewares"]["local@file"]["usedBy"], ["ok@file"])


class FileRouterTests(SynchronousTestCase):
    """File routers and services as routing-table parts, and references across providers."""

    def test_routers_fail_closed(self) -> None:
        """Routers naming a middleware that does not exist, unknown services or internal
        services not enabled are disabled with a located error; the others serve."""
        dynamic = dedent(
            """
            http:
              routers:
                ok: {rule: Host(`ok`), service: s}
                mw: {rule: Host(`mw`), service: s, middlewares: [auth]}
                gone: {rule: Host(`g`), service: nothing}
                api: {rule: Host(`api`), service: api@internal}
                crd: {rule: Host(`crd`), service: missing@kubernetescrd}
              services:
                s:
                  loadBalancer: {servers: [{url: "http://10.0.0.5"}]}
            """
        )
        static = STATIC + "providers:\n  file: {filename: d.yml}\n"
        table, errors = build(static, [], [("d.yml", dynamic)])
        self.assertEqual([r.name for r in table.routers], ["ok@file"])
        self.assertEqual(table.routers[0].service.definition.servers[0].url, "http://10.0.0.5:80")
        self.assertEqual(
            errors,
            [
                "d.yml:4: router mw: http.routers.mw.middlewares[0]: middleware"
                ' "auth@file" does not exist',
                "d.yml:5: router gone: service nothing@file does not exist",
                "d.yml:6: router api: service api@internal does not exist: the static"
                " configuration has no api",
                "d.yml:7: router crd: service missing@kubernetescrd does not exist",
            ],
        )
        document = rawdata(table)
        self.assertEqual(document["routers"]["mw@file"]["status"], "disabled")
        self.assertEqual(document["routers"]["mw@file"]["service"], "s")

    def test_health_checks(self) -> None:
        """A file load balancer's healthCheck and passiveHealthCheck are applied (not ignored);
        ``healthCheck: {}`` on weighted and mirroring services follows the children, and one
        whose child reports no status is an error that disables its routers."""
        dynamic = dedent(
            """
            http:
              routers:
                w: {rule: Host(`w`), service: w}
                bad: {rule: Host(`b`), service: bad}
                m: {rule: Host(`m`), service: m}
              services:
                w:
                  weighted:
                    healthCheck: {}
                    services: [{name: a}, {name: p}]
                bad:
                  weighted:
                    healthCheck: {}
                    services: [{name: a}, {name: plain}]
                m:
                  mirroring: {service: plain, healthCheck: {}}
                a:
                  loadBalancer:
                    healthCheck: {path: /h, interval: 2s, timeout: 1s}
                    servers: [{url: "http://10.0.0.5"}]
                p:
                  loadBalancer:
                    passiveHealthCheck: {maxFailedAttempts: 3}
                    servers: [{url: "http://10.0.0.6"}]
                plain:
                  loadBalancer: {servers: [{url: "http://10.0.0.7"}]}
            """
        )
        static = STATIC + "providers:\n  file: {filename: d.yml}\n"
        table, errors = build(static, [], [("d.yml", dynamic)])
        no_status = (
            "service plain reports no status (the parent has healthCheck: {}): it needs a"
            " healthCheck (or healthCheck: {} on a weighted one)"
        )
        self.assertEqual(
            errors,
            [
                f"d.yml:11: service bad: {no_status}",
                f"d.yml:15: service m: {no_status}",
                "d.yml:4: router bad: service bad@file has errors (see d.yml:11)",
                "d.yml:5: router m: service m@file has errors (see d.yml:15)",
            ],
        )
        (router,) = table.routers
        weighted = router.service.definition
        self.assertTrue(weighted.health_check)
        a, p = (child.definition for child in weighted.children)
        self.assertEqual(a.health_check, HealthCheckSpec("/h", interval=2.0, timeout=1.0))
        self.assertEqual((a.passive, p.health_check), (None, None))
        self.assertEqual(p.passive, PassiveHealthSpec(10.0, 3))

    def test_cross_provider(self) -> None:
        """A CRD route reaches a file service (name@file) and a file weighted service a CRD
        TraefikService; names keep their provider in the API."""
        crd = BACKENDS + dedent(
            """
            ---
            apiVersion: traefik.io/v1alpha1
            kind: TraefikService
            metadata: {name: wrr}
            spec:
              weighted:
                services: [{name: app-v1, port: 80}]
            ---
            apiVersion: traefik.io/v1alpha1
            kind: IngressRoute
            metadata: {name: ir}
            spec:
              routes:
                - match: Host(`c`)
                  services: [{name: mixed@file, kind: TraefikService}]
            """
        )
        dynamic = dedent(
            """
            http:
              services:
                mixed:
                  weighted:
                    services: [{name: default-wrr@kubernetescrd, weight: 2}, {name: s}]
                s:
                  loadBalancer: {servers: [{url: "http://10.0.0.5:81"}]}
            """
        )
        static = STATIC + "providers:\n  file: {filename: d.yml}\n  kubernetesCRD: {}\n"
        table, errors = build(static, [("crd.yaml", crd)], [("d.yml", dynamic)])
        self.assertEqual(errors, [])
        (router,) = table.routers
        self.assertEqual(router.service.name, "mixed@file")
        children = [(c.name, c.weight) for c in router.service.definition.children]
        self.assertEqual(children, [("default-wrr@kubernetescrd", 2), ("s", 1)])
        document = rawdata(table)
        name = router.name + "@kubernetescrd"
        self.assertEqual(list(document["routers"]), [name])
        self.assertEqual(document["routers"][name]["service"], "mixed@file")
        self.assertEqual(
            sorted(document["services"]),
            [
                "default-app-v1-80@kubernetescrd",
                "default-wrr@kubernetescrd",
                "mixed@file",
                "s@file",
            ],
        )
        self.assertEqual(document["services"]["mixed@file"]["usedBy"], [name])

    def test_crd_child_service(self) -> None:
        """A file service may name a child service the CRD provider made
        (``<ns>-<service>-<port>@kubernetescrd``), as in Traefik; one no CRD object made does
        not exist."""
        crd = BACKENDS + dedent(
            """
            ---
            apiVersion: traefik.io/v1alpha1
            kind: TraefikService
            metadata: {name: wrr}
            spec:
              weighted:
                services: [{name: app-v1, port: 80}]
            """
        )
        dynamic = dedent(
            """
            http:
              routers:
                r: {rule: Host(`r`), service: default-app-v1-80@kubernetescrd}
                s: {rule: Host(`s`), service: other-app-v1-80@kubernetescrd}
            """
        )
        static = STATIC + "providers:\n  file: {filename: d.yml}\n  kubernetesCRD: {}\n"
        table, errors = build(static, [("crd.yaml", crd)], [("d.yml", dynamic)])
        self.assertEqual(
            errors, ["d.yml:4: router s: service other-app-v1-80@kubernetescrd does not exist"]
        )
        (router,) = table.routers
        self.assertEqual(router.service.name, "default-app-v1-80")
        self.assertEqual(
            rawdata(table)["routers"]["r@file"]["service"], "default-app-v1-80@kubernetescrd"
        )


# -- the Kubernetes CRD provider's options ----------------------------------------------------

ROUTE = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {{name: ir, namespace: {namespace}{extra}}}
spec:
  routes:
    - match: Host(`a`)
      services: [{{name: app-v1, port: 80{ref}}}]
"""


class CRDOptionTests(SynchronousTestCase):
    """allowCrossNamespace, nativeLB, nodePortLB, namespaces, labelSelector, ingressClass."""

    def servers(
        self, options: str, route: str, extra_files: str = ""
    ) -> Tuple[List[str], List[str]]:
        static = STATIC + "providers:\n  kubernetesCRD:\n" + options
        table, errors = build(static, [("b.yaml", BACKENDS + extra_files), ("r.yaml", route)])
        urls = [s.url for r in table.routers for s in r.service.definition.servers]
        return urls, errors

    def test_cross_namespace(self) -> None:
        """A route in one namespace reaches another's Service only with allowCrossNamespace;
        refused, the route is disabled with a located error."""
        route = ROUTE.format(namespace="default", extra="", ref=", namespace: other")
        self.assertEqual(
            self.servers("    allowCrossNamespace: false\n", route),
            (
                [],
                [
                    "r.yaml:7: IngressRoute default/ir: other/app-v1 is in another namespace:"
                    " cross-namespace references need"
                    " providers.kubernetesCRD.allowCrossNamespace"
                ],
            ),
        )
        self.assertEqual(
            self.servers("    allowCrossNamespace: true\n", route), (["http://10.0.0.9:8080"], [])
        )

    def test_cross_namespace_traefik_service(self) -> None:
        """The same for a TraefikService reference."""
        wrr = dedent(
            """
            ---
            apiVersion: traefik.io/v1alpha1
            kind: TraefikService
            metadata: {name: wrr, namespace: other}
            spec: {weighted: {services: [{name: app-v1, port: 80}]}}
            """
        )
        route = ROUTE.format(
            namespace="default", extra="", ref=", name: wrr, kind: TraefikService, namespace: other"
        ).replace("name: app-v1, port: 80, ", "")
        _, errors = self.servers("    allowCrossNamespace: false\n", route, wrr)
        self.assertEqual(len(errors), 1)
        self.assertIn("other/wrr is in another namespace", errors[0])

    def test_cross_namespace_tls_options(self) -> None:
        """An IngressRoute or IngressRouteTCP using another namespace's TLSOption is disabled
        without allowCrossNamespace (as in Traefik), and works with it."""
        option = dedent(
            """
            ---
            apiVersion: traefik.io/v1alpha1
            kind: TLSOption
            metadata: {name: loose, namespace: other}
            spec: {minVersion: VersionTLS10}
            """
        )
        route = ROUTE.format(namespace="default", extra="", ref="")
        route += "  tls:\n    options: {name: loose, namespace: other}\n"
        tcp = dedent(
            """
            ---
            apiVersion: traefik.io/v1alpha1
            kind: IngressRouteTCP
            metadata: {name: t}
            spec:
              routes:
                - match: HostSNI(`t`)
                  services: [{name: app-v1, port: 80}]
              tls:
                options: {name: loose, namespace: other}
            """
        )
        text = route + tcp
        problem = (
            "spec.tls.options: TLSOption other/loose is in another namespace: cross-namespace"
            " references need providers.kubernetesCRD.allowCrossNamespace"
        )
        self.assertEqual(
            self.servers("    allowCrossNamespace: false\n", text, option),
            (
                [],
                [
                    f"r.yaml:6: IngressRoute default/ir: {problem}",
                    f"r.yaml:16: IngressRouteTCP default/t: {problem}",
                ],
            ),
        )
        self.assertEqual(
            self.servers("    allowCrossNamespace: true\n", text, option),
            (["http://10.0.0.1:8080"], []),
        )

    def test_native_and_node_port(self) -> None:
        """nativeLB sends to the ClusterIP; nodePortLB to every Node's InternalIP at the node
        port, and is an error without Nodes."""
        native = ROUTE.format(namespace="default", extra="", ref=", nativeLB: true")
        self.assertEqual(
            self.servers("    namespaces: []\n", native), (["http://10.96.0.7:80"], [])
        )
        self.assertEqual(
            self.servers(
                "    nativeLBByDefault: true\n", ROUTE.format(namespace="default", extra="", ref="")
            ),
            (["http://10.96.0.7:80"], []),
        )
        node_port = dedent(
            """
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: np}
            spec: {type: NodePort, ports: [{name: http, port: 80, nodePort: 30080}]}
            """
        )
        nodes = dedent(
            """
            ---
            apiVersion: v1
            kind: Node
            metadata: {name: n1}
            status: {addresses: [{type: InternalIP, address: 192.168.1.4}, {type: Hostname, address: n1}]}
            """
        )
        route = ROUTE.format(namespace="default", extra="", ref=", nodePortLB: true").replace(
            "app-v1", "np"
        )
        self.assertEqual(
            self.servers("    namespaces: []\n", route, node_port + nodes),
            (["http://192.168.1.4:30080"], []),
        )
        self.assertEqual(
            self.servers("    namespaces: []\n", route, node_port),
            (
                [],
                [
                    "r.yaml:7: IngressRoute default/ir: nodePortLB: no Node with an InternalIP"
                    " address in the configuration"
                ],
            ),
        )

    def test_external_and_empty(self) -> None:
        """ExternalName Services and Services without endpoints need their options."""
        external = dedent(
            """
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: ext}
            spec: {type: ExternalName, externalName: example.org, ports: [{port: 80}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: empty}
            spec: {ports: [{name: http, port: 80}]}
            """
        )
        ext = ROUTE.format(namespace="default", extra="", ref="").replace("app-v1", "ext")
        empty = ROUTE.format(namespace="default", extra="", ref="").replace("app-v1", "empty")
        self.assertEqual(
            self.servers("    allowExternalNameServices: false\n", ext, external)[1],
            [
                "r.yaml:7: IngressRoute default/ir: service default/ext is an ExternalName Service:"
                " those need providers.kubernetesCRD.allowExternalNameServices"
            ],
        )
        self.assertEqual(
            self.servers("    allowExternalNameServices: true\n", ext, external),
            (["http://example.org:80"], []),
        )
        self.assertEqual(
            self.servers("    allowEmptyServices: false\n", empty, external)[1],
            ["r.yaml:7: IngressRoute default/ir: no endpoints for service default/empty"],
        )
        self.assertEqual(self.servers("    allowEmptyServices: true\n", empty, external), ([], []))

    def test_filters(self) -> None:
        """namespaces, labelSelector and ingressClass decide which routes the provider sees."""
        rows = [
            ("    namespaces: [default]\n", "default", "", 1),
            ("    namespaces: [web]\n", "default", "", 0),
            ("    labelSelector: app=web\n", "default", ", labels: {app: web}", 1),
            ("    labelSelector: app=web\n", "default", ", labels: {app: db}", 0),
            ("    labelSelector: '!legacy'\n", "default", "", 1),
            ("    ingressClass: internal\n", "default", "", 0),
            (
                "    ingressClass: internal\n",
                "default",
                ", annotations: {kubernetes.io/ingress.class: internal}",
                1,
            ),
        ]
        for options, namespace, extra, count in rows:
            route = ROUTE.format(namespace=namespace, extra=extra, ref="")
            static = STATIC + "providers:\n  kubernetesCRD:\n" + options
            table, errors = build(static, [("b.yaml", BACKENDS), ("r.yaml", route)])
            self.assertEqual((len(table.routers), errors), (count, []), (options, extra))

    def test_label_selector(self) -> None:
        """Kubernetes selector syntax: equality, inequality, sets, existence."""
        selector = parse_label_selector("app=web, tier!=db, env in (a, b), !legacy, team")
        self.assertTrue(selector_matches(selector, {"app": "web", "env": "a", "team": "x"}))
        for labels in (
            {"app": "web", "env": "c", "team": "x"},
            {"app": "web", "env": "a", "team": "x", "legacy": "1"},
            {"app": "web", "env": "a"},
            {"app": "web", "env": "a", "team": "x", "tier": "db"},
        ):
            self.assertFalse(selector_matches(selector, labels), labels)
        self.assertRaises(ValueError, parse_label_selector, "app in a")

    def test_api_server_options(self) -> None:
        """endpoint, token and certAuthFilePath are read (the API-server mode, tested in
        tests.providers.test_providers_kube); an endpoint that is not a URL is an error; providers
        tsproxy does not have are errors too."""
        text = "endpoint: https://k8s:6443\n    token: x\n    certAuthFilePath: /ca"
        loaded = load_files(STATIC + "providers:\n  kubernetesCRD:\n    " + text + "\n", [])
        self.assertEqual(loaded.errors, ())
        api = loaded.static.providers.crd.api
        self.assertEqual(
            (api.endpoint, api.token, api.cert_auth_file_path), ("https://k8s:6443", "x", "/ca")
        )
        loaded = load_files(STATIC + "providers:\n  kubernetesCRD:\n    endpoint: k8s\n", [])
        self.assertEqual(
            [str(e) for e in loaded.errors],
            [
                "tsproxy.yaml:6: providers.kubernetesCRD.endpoint: must be an http:// or https:// URL"
            ],
        )
        loaded = load_files(STATIC + "providers:\n  consul: {endpoints: [x]}\n", [])
        self.assertEqual(
            [str(e) for e in loaded.errors],
            ["tsproxy.yaml:5: providers.consul: this provider is not supported yet"],
        )


# -- static files, secrets, internal services -----------------------------------------------------


class StaticFileTests(SynchronousTestCase):
    """traefik.yml, traefik.yaml and traefik.toml are read like tsproxy.yaml."""

    def directory(self, files: Dict[str, str]) -> str:
        path = self.mktemp()
        os.makedirs(path)
        for name, text in files.items():
            full = os.path.join(path, name)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as stream:
                stream.write(text)
        return path

    def test_names(self) -> None:
        """Each static file name is recognised; its entrypoints are read."""
        toml = '[entryPoints.web]\naddress = ":8000"\n'
        for name, text in (
            ("traefik.yml", STATIC),
            ("traefik.yaml", STATIC),
            ("traefik.toml", toml),
        ):
            loaded = load_directory(self.directory({name: text}))
            self.assertEqual(loaded.errors, ())
            assert loaded.static is not None
            self.assertEqual([e.name for e in loaded.static.entrypoints], ["web"], name)
            self.assertTrue(loaded.static.path.endswith(name))

    def test_toml_errors(self) -> None:
        """A TOML static file's errors carry its line and key path."""
        text = '[entryPoints.web]\naddress = ":8000"\n[providers.file]\nfilename = "a"\ndirectory = "b"\n'
        loaded = load_directory(self.directory({"traefik.toml": text}))
        self.assertEqual(
            [str(e) for e in loaded.errors],
            ["traefik.toml:3: providers.file: exactly one of filename or directory is required"],
        )
        loaded = load_directory(
            self.directory({"traefik.toml": '[entryPoints.web]\naddres = ":1"\n'})
        )
        self.assertEqual(
            [str(e) for e in loaded.errors],
            ["traefik.toml:1: entryPoints.web.address: is required"],
        )

    def test_two_static_files(self) -> None:
        """Two static files: the first of tsproxy.yaml, traefik.yml, ... is read, the other
        is an error."""
        loaded = load_directory(self.directory({"tsproxy.yaml": STATIC, "traefik.toml": ""}))
        self.assertEqual(
            [str(e) for e in loaded.errors],
            ["traefik.toml:1: a second static configuration file: tsproxy.yaml is the one read"],
        )

    def test_file_provider_directory(self) -> None:
        """providers.file.directory reads YAML and TOML recursively; a file-provider document
        or a TOML file among the CRD files is an error; files of the configuration directory
        the file provider claims are not read as CRDs."""
        static = STATIC + "providers:\n  file: {directory: dyn}\n  kubernetesCRD: {}\n"
        route = "http:\n  routers:\n    r: {rule: Host(`a`), service: s}\n  services:\n    s: {loadBalancer: {servers: []}}\n"
        path = self.directory(
            {
                "traefik.yml": static,
                "dyn/a.yml": route,
                "dyn/sub/b.toml": '[http.routers.t]\nrule = "Host(`t`)"\nservice = "s"\n',
                "stray.yaml": route,
                "stray.toml": "",
            }
        )
        result = review(load_directory(path))
        self.assertEqual(
            [str(e) for e in result.errors],
            [
                "stray.toml:1: TOML files here are not read (this directory holds Kubernetes"
                " YAML): name it in providers.file of the static configuration",
                "stray.yaml:1: this is Traefik's dynamic configuration format (the file"
                " provider's): name the file in providers.file of the static configuration",
            ],
        )
        self.assertEqual(sorted(r.name for r in result.table.routers), ["r@file", "t@file"])
        self.assertEqual(result.table.providers, ("KubernetesCRD", "File"))

    def test_missing_file(self) -> None:
        """A file provider file that cannot be read is an error at providers.file."""
        static = STATIC + "providers:\n  file: {filename: nothing.yml}\n"
        loaded = load_directory(self.directory({"tsproxy.yaml": static}))
        self.assertEqual(
            [str(e) for e in loaded.errors],
            ["tsproxy.yaml:5: providers.file: cannot read nothing.yml: no such file"],
        )


class SecretTests(SynchronousTestCase):
    """Secrets as Kubernetes reads them."""

    def secret(self, body: str) -> Tuple[Any, List[str]]:
        text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n" + body
        loaded = load_files(STATIC, [("s.yaml", text)])
        return loaded.resources, [str(e) for e in loaded.errors]

    def test_wrapped_base64(self) -> None:
        """Base64 wrapped over lines (as `base64` writes it) decodes like Go's decoder."""
        value = b"x" * 100
        wrapped = base64.encodebytes(value).decode()  # 76-character lines
        self.assertIn("\n", wrapped.strip())
        body = "data:\n  key: |\n" + "".join("    " + line + "\n" for line in wrapped.splitlines())
        resources, errors = self.secret(body)
        self.assertEqual(errors, [])
        self.assertEqual(resources[0].get("key"), value)

    def test_string_data_and_basic_auth(self) -> None:
        """stringData is plain text; a basic-auth Secret needs username or password."""
        resources, errors = self.secret(
            "type: kubernetes.io/basic-auth\nstringData: {username: u, password: p}\n"
        )
        self.assertEqual((errors, resources[0].get("password")), ([], b"p"))
        _, errors = self.secret("type: kubernetes.io/basic-auth\nstringData: {user: u}\n")
        self.assertEqual(
            errors,
            [
                "s.yaml:4: Secret default/s: type: a kubernetes.io/basic-auth Secret needs username"
                " or password"
            ],
        )
        _, errors = self.secret("data: {key: 'not base64!'}\n")
        self.assertEqual(errors, ["s.yaml:4: Secret default/s: data.key: is not valid base64"])


class InternalServiceTests(ProxyTestCase):
    """Traefik's internal services as a router's service, through a running proxy."""

    @defer.inlineCallbacks
    def test_internal_targets(self) -> None:
        """noop@internal answers 418 with no body (as Traefik), api@internal and
        ping@internal serve their paths on the router's entrypoint, 404 elsewhere."""
        self.write(
            "traefik.yml",
            "entryPoints:\n  web: {address: '127.0.0.1:0'}\napi: {}\nping: {manualRouting: true}\n"
            "log: {level: ERROR}\nproviders:\n  file: {filename: d.yml}\n",
        )
        self.write(
            "d.yml",
            dedent(
                """
                http:
                  routers:
                    noop: {rule: Host(`noop`), service: noop@internal}
                    api: {rule: Host(`api`), service: api@internal}
                    ping: {rule: Host(`ping`), service: ping@internal}
                """
            ),
        )
        service = self.start_proxy()
        self.assertIsInstance(service.table.routers[0].service, InternalService)
        response, body = yield self.get("noop", "/anything")
        self.assertEqual((response.code, body), (418, b""))
        response, body = yield self.get("api", "/api/rawdata")
        document = json.loads(body)
        self.assertEqual(response.code, 200)
        self.assertEqual(document["routers"]["noop@file"]["service"], "noop@internal")
        self.assertEqual(
            document["services"]["api@internal"], {"status": "enabled", "usedBy": ["api@file"]}
        )
        response, body = yield self.get("api", "/elsewhere")
        self.assertEqual(response.code, 404)
        response, body = yield self.get("ping", "/ping")
        self.assertEqual((response.code, body), (200, b"OK"))


class FileTLSTests(SynchronousTestCase):
    """The file provider's tls section: certificates from files or inline, options, the
    default store; through the same TLS manager the CRD Secrets feed."""

    def test_certificates_options_store(self) -> None:
        """SNI picks the file certificate, other names get the default store's certificate,
        and a router's tls.options names an x@file option that takes effect."""
        import ssl

        from tests.certs import make_ca, make_leaf
        from tests.tlsclient import client_context, memory_handshake

        ca = make_ca()
        leaf = make_leaf(ca, "secure.test", dns=["secure.test"])
        fallback = make_leaf(ca, "default.test", dns=["default.test"])
        directory = self.mktemp()
        os.makedirs(os.path.join(directory, "certs"))
        for name, data in (("certs/s.crt", leaf.cert_pem), ("certs/s.key", leaf.key_pem)):
            with open(os.path.join(directory, name), "wb") as stream:
                stream.write(data)
        indent = "\n" + " " * 10
        dynamic = dedent(
            """
            http:
              routers:
                secure:
                  rule: Host(`secure.test`)
                  service: s
                  tls: {options: modern}
              services:
                s: {loadBalancer: {servers: [{url: "http://10.0.0.5"}]}}
            tls:
              certificates:
                - {certFile: certs/s.crt, keyFile: certs/s.key}
              options:
                modern: {minVersion: VersionTLS13}
              stores:
                default:
                  defaultCertificate:
                    certFile: |
                      CERT
                    keyFile: |
                      KEY
            """
        )
        dynamic = dynamic.replace("CERT", indent.join(fallback.cert_pem.decode().splitlines()))
        dynamic = dynamic.replace("KEY", indent.join(fallback.key_pem.decode().splitlines()))
        files = {
            "traefik.yml": STATIC + "providers:\n  file: {filename: dynamic.yml}\n",
            "dynamic.yml": dynamic,
        }
        for name, text in files.items():
            with open(os.path.join(directory, name), "w") as stream:
                stream.write(text)
        result = review(load_directory(directory))
        self.assertEqual([str(e) for e in result.errors], [])
        manager = result.table.tls
        (router,) = result.table.routers
        option = router.tls.options
        self.assertEqual((option.name, option.namespace), ("modern@file", ""))
        creator = manager.server_creator("secure.test", option)
        seen = memory_handshake(creator.context, client_context(), "secure.test")
        self.assertEqual((seen.cn, seen.version, seen.error), ("secure.test", "TLSv1.3", ""))
        old = client_context(maximum=ssl.TLSVersion.TLSv1_2)
        self.assertNotEqual(memory_handshake(creator.context, old, "secure.test").error, "")
        other = manager.server_creator("other.test", None)
        self.assertEqual(
            memory_handshake(other.context, client_context(), "other.test").cn, "default.test"
        )
        self.assertEqual(
            rawdata(result.table)["routers"]["secure@file"]["tls"], {"options": "modern"}
        )

    def test_errors(self) -> None:
        """A certificate file that cannot be read, an unknown option field, ACME stores."""
        rows = [
            (
                "tls:\n  certificates:\n    - {certFile: nothing.crt, keyFile: nothing.key}\n",
                "d.yml:3: tls.certificates[0].certFile: cannot read nothing.crt: no such file",
            ),
            (
                "tls:\n  options:\n    o: {minVersion: TLS9}\n",
                "d.yml:3: tls.options.o.minVersion: must be one of: , VersionTLS10,"
                " VersionTLS11, VersionTLS12, VersionTLS13",
            ),
            (
                "tls:\n  stores:\n    default: {defaultGeneratedCert: {resolver: le}}\n",
                "d.yml:3: tls.stores.default.defaultGeneratedCert: ACME resolvers are not"
                " supported",
            ),
        ]

        def missing(name: str) -> bytes:
            raise FileNotFoundError(2, "no such file")

        for text, expected in rows:
            _, errors, _ = parse_dynamic_files([("d.yml", text)], missing)
            self.assertEqual([str(e) for e in errors], [expected], text)


class FileLayer4Tests(ProxyTestCase):
    """The file provider's tcp and udp sections, through a running proxy."""

    @defer.inlineCallbacks
    def test_tcp_and_udp(self) -> None:
        """A file TCP router relays to its weighted service's servers (both get a
        connection); a file UDP router answers through its service; the API lists them."""
        from tests.tcpfixture import socket_session
        from tests.udpfixture import UDPClient
        from tsproxy.testing import listen_tcp_greeter

        greeters = []
        for name in ("g1", "g2"):
            listening = listen_tcp_greeter(reactor, name)
            self.addCleanup(listening.stopListening)
            greeters.append(listening.getHost().port)
        echo = listen_udp_echo(reactor, "echo", prefix=b"echo ")
        self.addCleanup(echo.stopListening)
        self.write(
            "traefik.yml",
            "entryPoints:\n  tcp: {address: '127.0.0.1:0'}\n  dns: {address: '127.0.0.1:0/udp'}\n"
            "log: {level: ERROR}\nproviders:\n  file: {filename: d.toml}\n",
        )
        self.write(
            "d.toml",
            dedent(
                f"""
                [tcp.routers.all]
                entryPoints = ["tcp"]
                rule = "HostSNI(`*`)"
                service = "split"
                [[tcp.services.split.weighted.services]]
                name = "one"
                weight = 1
                [[tcp.services.split.weighted.services]]
                name = "two"
                weight = 1
                [[tcp.services.one.loadBalancer.servers]]
                address = "127.0.0.1:{greeters[0]}"
                [[tcp.services.two.loadBalancer.servers]]
                address = "127.0.0.1:{greeters[1]}"

                [udp.routers.dns]
                entryPoints = ["dns"]
                service = "echo"
                [[udp.services.echo.loadBalancer.servers]]
                address = "127.0.0.1:{echo.getHost().port}"
                """
            ),
        )
        service = self.start_proxy()
        port = service.port_of("tcp")
        seen = []
        for _ in range(2):
            got = yield socket_session(port, first_read=True, half_close=True)
            seen.append(got)
        self.assertEqual(sorted(seen), [b"HELLO g1\r\nBYE\r\n", b"HELLO g2\r\nBYE\r\n"])
        self.assertEqual([r.name for r in service.table.tcp_routers], ["all@file"])
        client = UDPClient()
        listening = reactor.listenUDP(0, client, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        reply = yield client.exchange(service.port_of("dns"), b"ping")
        self.assertEqual(reply, b"echo ping")
        document = rawdata(service.table)
        self.assertEqual(document["tcpRouters"]["all@file"]["service"], "split")
        self.assertEqual(document["udpRouters"]["dns@file"]["status"], "enabled")
        self.assertEqual(sorted(document["tcpServices"]), ["one@file", "split@file", "two@file"])


class FileWatchTests(ProxyTestCase):
    """providers.file.watch: a change to the file provider's files reloads the proxy."""

    @defer.inlineCallbacks
    def test_change_reloads(self) -> None:
        """A router added to a watched file-provider directory is routed after the reload,
        without SIGHUP and with the configuration directory itself not watched."""
        from twisted.internet.task import deferLater

        os.makedirs(os.path.join(self.config_dir, "dyn"))
        self.write(
            "traefik.yml",
            "entryPoints:\n  web: {address: '127.0.0.1:0'}\nlog: {level: ERROR}\n"
            "providers:\n  providersThrottleDuration: 0s\n  file: {directory: dyn}\n",
        )
        self.write(
            "dyn/a.yml", "http:\n  routers:\n    a: {rule: Host(`a`), service: noop@internal}\n"
        )
        service = self.start_proxy()
        self.assertIsNotNone(service.file_watcher)
        response, _ = yield self.get("b")
        self.assertEqual(response.code, 404)
        self.write(
            "dyn/b.toml", '[http.routers.b]\nrule = "Host(`b`)"\nservice = "noop@internal"\n'
        )
        for _ in range(100):
            if len(service.table.routers) == 2:
                break
            yield deferLater(reactor, 0.05, lambda: None)
        response, _ = yield self.get("b")
        self.assertEqual(response.code, 418)

    @defer.inlineCallbacks
    def test_throttle(self) -> None:
        """providersThrottleDuration: a reload asked for sooner after the last one waits for
        the rest of it, and later asks join the one waiting."""
        from twisted.internet.task import Clock, deferLater

        clock = Clock()
        os.makedirs(os.path.join(self.config_dir, "dyn"))
        self.write(
            "traefik.yml",
            "entryPoints:\n  web: {address: '127.0.0.1:0'}\nlog: {level: ERROR}\n"
            "providers:\n  providersThrottleDuration: 10s\n"
            "  file: {directory: dyn, watch: false}\n",
        )
        route = "http:\n  routers:\n    {0}: {{rule: Host(`{0}`), service: noop@internal}}\n"
        self.write("dyn/a.yml", route.format("a"))
        service = self.start_proxy(clock=clock)
        self.write("dyn/b.yml", route.format("b"))
        clock.advance(4)
        service.reload_soon()
        pending = service._throttled
        self.assertIsNotNone(pending)
        self.assertEqual(pending.getTime(), 10)
        service.reload_soon()
        self.assertIs(service._throttled, pending)
        yield deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(len(service.table.routers), 1)
        clock.advance(6)
        for _ in range(100):
            if len(service.table.routers) == 2:
                break
            yield deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(sorted(r.name for r in service.table.routers), ["a@file", "b@file"])


class TLSConflictTests(SynchronousTestCase):
    """A TLS option named default in both providers: both dropped, an error at each."""

    def test_default_option_twice(self) -> None:
        """Each definition is reported at its own file and line."""
        crd = (
            "apiVersion: traefik.io/v1alpha1\nkind: TLSOption\nmetadata: {name: default}\n"
            "spec: {minVersion: VersionTLS12}\n"
        )
        dynamic = "tls:\n  options:\n    default: {minVersion: VersionTLS13}\n"
        static = STATIC + "providers:\n  file: {filename: d.yml}\n  kubernetesCRD: {}\n"
        _, errors = build(static, [("o.yaml", crd)], [("d.yml", dynamic)])
        message = "TLSOption named default defined in several namespaces (@file, default): all are ignored"
        self.assertEqual(
            errors,
            [
                f"o.yaml:1: TLSOption default/default: {message}",
                f"d.yml:3: tls option default: {message}",
            ],
        )


class SameDirectoryTests(SynchronousTestCase):
    """providers.file.directory may be the configuration directory itself."""

    def test_split_by_provider(self) -> None:
        """The file provider then reads every YAML and TOML file there except the static
        one, and the CRD provider reads none of them."""
        path = self.mktemp()
        os.makedirs(path)
        files = {
            "traefik.yml": STATIC + "providers:\n  file: {directory: .}\n",
            "a.yml": "http:\n  routers:\n    a: {rule: Host(`a`), service: noop@internal}\n",
            "b.toml": '[http.routers.b]\nrule = "Host(`b`)"\nservice = "noop@internal"\n',
        }
        for name, text in files.items():
            with open(os.path.join(path, name), "w") as stream:
                stream.write(text)
        result = review(load_directory(path))
        self.assertEqual([str(e) for e in result.errors], [])
        self.assertEqual(sorted(r.name for r in result.table.routers), ["a@file", "b@file"])
        self.assertEqual(result.table.providers, ("File",))


class CrossProviderTLSOptionTests(SynchronousTestCase):
    """A CRD route may use a file TLS option by its qualified name."""

    def test_crd_route_file_option(self) -> None:
        """tls.options.name: modern@file finds the file option; the API shows it qualified."""
        crd = BACKENDS + dedent(
            """
            ---
            apiVersion: traefik.io/v1alpha1
            kind: IngressRoute
            metadata: {name: ir}
            spec:
              routes:
                - match: Host(`a`)
                  services: [{name: app-v1, port: 80}]
              tls:
                options: {name: modern@file}
            """
        )
        dynamic = "tls:\n  options:\n    modern: {minVersion: VersionTLS13}\n"
        static = STATIC + "providers:\n  file: {filename: d.yml}\n  kubernetesCRD: {}\n"
        table, errors = build(static, [("crd.yaml", crd)], [("d.yml", dynamic)])
        self.assertEqual(errors, [])
        (router,) = table.routers
        self.assertIsNone(table.tls.option_problem(router.tls.options))
        self.assertEqual(table.tls.option_settings(router.tls.options).min_version, 0x0304)
        info = rawdata(table)["routers"][router.name + "@kubernetescrd"]
        self.assertEqual(info["tls"], {"options": "modern@file"})


class FileMiddlewareTests(SynchronousTestCase):
    """File routers run their chains, resolved as Traefik resolves them."""

    STATIC = (
        'entryPoints:\n  web:\n    address: ":8000"\n  guarded:\n    address: ":8001"\n'
        "    http:\n      middlewares: [tag@file]\n"
        "providers:\n  file: {filename: d.yml}\n  kubernetesCRD: {}\n"
    )
    CRD = """\
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: hdr, namespace: default}
spec: {headers: {customRequestHeaders: {X-Crd: "1"}}}
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: r, namespace: default}
spec:
  entryPoints: [web]
  routes:
    - match: Host(`crd`)
      middlewares: [{name: strip@file}]
      services: [{name: s@file, kind: TraefikService}]
"""
    DYNAMIC = """\
http:
  routers:
    one: {rule: Host(`one`), service: s, entryPoints: [web], middlewares: [all]}
    both: {rule: Host(`both`), service: s, middlewares: [strip]}
    bad: {rule: Host(`bad`), service: s, entryPoints: [web], middlewares: [strip, nope]}
  middlewares:
    strip: {stripPrefix: {prefixes: [/api]}}
    tag: {headers: {customRequestHeaders: {X-Tag: t}}}
    all: {chain: {middlewares: [strip, default-hdr@kubernetescrd, tag@file]}}
  services:
    s:
      loadBalancer: {servers: [{url: "http://10.0.0.5"}]}
"""

    def test_chains(self) -> None:
        """A file chain mixing bare, @file and @kubernetescrd names; entrypoint middlewares
        first with one router per such entrypoint; a CRD route naming x@file; a missing
        middleware disables only its router, located."""
        table, errors = build(self.STATIC, [("crd.yaml", self.CRD)], [("d.yml", self.DYNAMIC)])
        self.assertEqual(
            errors,
            [
                "d.yml:5: router bad: http.routers.bad.middlewares[1]: middleware"
                ' "nope@file" does not exist'
            ],
        )
        chains = {r.name: [n for n, _ in r.chain] for r in table.routers}
        self.assertEqual(
            chains["one@file"], ["strip@file", "default-hdr@kubernetescrd", "tag@file"]
        )
        self.assertEqual(chains["both@file"], ["strip@file"])
        self.assertEqual(chains["guarded-both@file"], ["tag@file", "strip@file"])
        (crd,) = [name for name in chains if name.startswith("default-r-")]
        self.assertEqual(chains[crd], ["strip@file"])
        self.assertNotIn("bad@file", chains)
        routers = {r.name: r for r in table.routers}
        self.assertEqual(routers["one@file"].middlewares, ("all@file",))
        self.assertEqual(routers["guarded-both@file"].middlewares, ("tag@file", "strip@file"))
        (failed,) = table.failed_routers
        self.assertEqual(failed.name, "bad@file")
        self.assertEqual(failed.middlewares, ("strip@file", "nope@file"))
        document = rawdata(table)
        self.assertEqual(document["routers"]["bad@file"]["status"], "disabled")
        self.assertIn("all@file", document["middlewares"])
