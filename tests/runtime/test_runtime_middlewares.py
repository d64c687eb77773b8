"""Tests for tsproxy.runtime.middlewares and its use by the build: references resolved,
chains expanded, cycles and every broken reference disabling the router (fail closed),
entrypoint middlewares and redirections, steps kept across reloads."""

from __future__ import annotations

import textwrap
from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests import middlewarekinds
from tsproxy.config.load import load_files
from tsproxy.runtime.build import BuildResult, build_table, router_key
from tsproxy.runtime.services import resolve
from tsproxy.runtime.table import RoutingTable

STATIC = """\
entryPoints:
  web:
    address: ":8000"
  admin:
    address: ":8081"
  websecure:
    address: ":8443"
"""
#: STATIC with providers.kubernetesCRD.allowCrossNamespace.
CROSS = STATIC + "providers:\n  kubernetesCRD: {allowCrossNamespace: true}\n"
BACKEND = """\
apiVersion: v1
kind: Service
metadata: {name: app, namespace: ns}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: app, namespace: ns}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{name: http, port: 9001}]}]
"""


def route(middlewares: str = "", entrypoints: str = "[web]", service_extra: str = "") -> str:
    """IngressRoute ns/r with one route (line 7: the route, line 8 on: its middlewares)."""
    text = f"""\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {{name: r, namespace: ns}}
spec:
  entryPoints: {entrypoints}
  routes:
    - match: Host(`a`)
      middlewares: [{middlewares}]
      services:
        - {{name: app, port: 80{service_extra}}}
"""
    return text


def mw(name: str, spec: str, namespace: str = "ns", kind: str = "Middleware") -> str:
    return (
        f"---\napiVersion: traefik.io/v1alpha1\nkind: {kind}\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n"
        + textwrap.indent(textwrap.dedent(spec), "  ")
        + "\n"
    )


def build(
    text: str,
    static: str = STATIC,
    previous: Optional[RoutingTable] = None,
    reactor: Any = None,
) -> Tuple[BuildResult, List[str]]:
    loaded = load_files(static, [("backend.yaml", BACKEND), ("mw.yaml", text)])
    assert loaded.errors == (), loaded.errors
    result = build_table(loaded, previous, reactor)
    return result, [str(e) for e in result.errors]


def chain_of(table: RoutingTable, name: str = "ns-r-") -> List[str]:
    (router,) = [r for r in table.routers if r.name.startswith(name)]
    return [step_name for step_name, _ in router.chain]


def failed_errors(table: RoutingTable) -> Dict[str, Tuple[str, ...]]:
    return {f.name: f.errors for f in table.failed_routers}


class ReferenceTests(SynchronousTestCase):
    """Each way of naming a middleware, and each way it can be wrong."""

    def setUp(self) -> None:
        middlewarekinds.register(self)

    def test_table(self) -> None:
        """A route's middlewares become its steps in order, or the router is disabled with
        the located error listed."""
        tag = mw("a", "testTag: {name: X-A, value: a}") + mw("b", "testTag: {name: X-B}")
        cases = [
            ("{name: a}, {name: b}", tag, ["ns-a@kubernetescrd", "ns-b@kubernetescrd"], []),
            (
                "{name: ns-b@kubernetescrd}, {name: a}",
                tag,
                ["ns-b@kubernetescrd", "ns-a@kubernetescrd"],
                [],
            ),
            (
                "{name: a, namespace: other}",
                tag + mw("a", "testDeny: {}", "other"),
                ["other-a@kubernetescrd"],
                [],
            ),
            (
                "{name: nope}",
                tag,
                None,
                [
                    "mw.yaml:8: IngressRoute ns/r: spec.routes[0].middlewares[0]: middleware"
                    ' "ns-nope@kubernetescrd" does not exist'
                ],
            ),
            (
                "{name: a}, {name: x@file}",
                tag,
                None,
                [
                    "mw.yaml:8: IngressRoute ns/r: spec.routes[0].middlewares[1]: middleware"
                    ' "x@file" does not exist'
                ],
            ),
            (
                "{name: a}, {name: x@docker}",
                tag,
                None,
                [
                    "mw.yaml:8: IngressRoute ns/r: spec.routes[0].middlewares[1]: middleware"
                    ' "x@docker": only kubernetescrd and file middlewares are known (provider'
                    " docker is not supported)"
                ],
            ),
            (
                "{name: rl}",
                mw("rl", "plugin: {demo: {}}"),
                None,
                [
                    "mw.yaml:16: Middleware ns/rl: spec.plugin: the plugin middleware is not"
                    " implemented by tsproxy",
                    "mw.yaml:8: IngressRoute ns/r: spec.routes[0].middlewares[0]: middleware"
                    ' "ns-rl@kubernetescrd" has errors (see mw.yaml:16)',
                ],
            ),
            (
                "{name: s}",
                mw("s", "testSecret: {secret: gone}"),
                None,
                [
                    "mw.yaml:16: Middleware ns/s: spec.testSecret: secret gone not found",
                    "mw.yaml:8: IngressRoute ns/r: spec.routes[0].middlewares[0]: middleware"
                    ' "ns-s@kubernetescrd" has errors (see mw.yaml:16)',
                ],
            ),
        ]
        for refs, extra, steps, errors in cases:
            with self.subTest(refs=refs):
                result, found = build(route(refs) + extra, CROSS)
                table = result.table
                assert table is not None
                self.assertEqual(sorted(found), sorted(errors))
                if steps is None:
                    self.assertEqual(table.routers, ())
                    (failed,) = table.failed_routers
                    self.assertEqual(failed.errors, (errors[-1].split("ns/r: ", 1)[1],))
                else:
                    self.assertEqual(chain_of(table), steps)

    def test_serviceMiddlewares(self) -> None:
        """A route's single service's middlewares run after the route's own."""
        text = route("{name: a}", service_extra=", middlewares: [{name: b}]")
        text += mw("a", "testTag: {name: X-A}") + mw("b", "testTag: {name: X-B}")
        result, errors = build(text)
        assert result.table is not None
        self.assertEqual(errors, [])
        self.assertEqual(chain_of(result.table), ["ns-a@kubernetescrd", "ns-b@kubernetescrd"])
        (router,) = result.table.routers
        self.assertEqual(router.middlewares, ("ns-a@kubernetescrd", "ns-b@kubernetescrd"))

    def test_weightedChildMiddlewares(self) -> None:
        """A weighted child's middlewares are run once it is picked (resolve hands them on);
        those of a mirroring service's children are an error, not ignored."""
        text = route("", service_extra=", middlewares: [{name: a}]").replace(
            "      services:\n", "      services:\n        - {name: app, port: 80}\n"
        )
        result, errors = build(text + mw("a", "testTag: {name: X-A}"))
        assert result.table is not None
        self.assertEqual(errors, [])
        (router,) = result.table.routers
        picked = [resolve(router.service, None).steps for _ in range(2)]
        self.assertEqual([[n for n, _ in steps] for steps in picked], [[], ["ns-a@kubernetescrd"]])
        weighted = """---
apiVersion: traefik.io/v1alpha1
kind: TraefikService
metadata: {name: w, namespace: ns}
spec:
  weighted:
    services: [{name: app, port: 80, middlewares: [{name: gone}]}]
"""
        result, errors = build(weighted)
        self.assertEqual(
            errors,
            [
                'mw.yaml:7: TraefikService ns/w: middlewares: middleware "ns-gone@kubernetescrd"'
                " does not exist"
            ],
        )
        mirror = """---
apiVersion: traefik.io/v1alpha1
kind: TraefikService
metadata: {name: m, namespace: ns}
spec:
  mirroring:
    name: app
    port: 80
    mirrors: [{name: app, port: 80, percent: 10, middlewares: [{name: a}]}]
"""
        result, errors = build(mirror + mw("a", "testTag: {name: X-A}"))
        self.assertEqual(
            errors,
            [
                "mw.yaml:9: TraefikService ns/m: middlewares on a service of a mirroring"
                " service are not supported yet"
            ],
        )


class CrossNamespaceTests(SynchronousTestCase):
    """Without allowCrossNamespace a middleware reference out of its resource's namespace,
    or written ``x@kubernetescrd``, disables the router, as Traefik's makeMiddlewareKeys."""

    def setUp(self) -> None:
        middlewarekinds.register(self)

    def test_table(self) -> None:
        """Route, service, chain, weighted child and TCP references: refused with a located
        error unless allowed; same-namespace ones always pass."""
        other = mw("a", "testTag: {name: X-A}", "other") + mw("a", "testTag: {name: X-A}")
        tcp = """apiVersion: traefik.io/v1alpha1
kind: IngressRouteTCP
metadata: {name: t, namespace: ns}
spec:
  entryPoints: [web]
  routes:
    - match: HostSNI(`*`)
      middlewares: [%s]
      services: [{name: app, port: 80}]
"""
        tcp_other = mw("ip", "ipAllowList: {sourceRange: [127.0.0.1]}", "other", "MiddlewareTCP")
        weighted = """apiVersion: traefik.io/v1alpha1
kind: TraefikService
metadata: {name: w, namespace: ns}
spec:
  weighted:
    services: [{name: app, port: 80, middlewares: [%s]}]
"""
        not_in = "middleware other/a is not in the namespace of its referrer (ns)"
        hidden = 'invalid reference to middleware "other-a@kubernetescrd"'
        cases = [
            # (text, error when not allowed (None: fine either way), where)
            (route("{name: a}") + other, None, ""),
            (route("{name: a, namespace: ns}") + other, None, ""),
            (route("{name: a, namespace: other}") + other, not_in, "mw.yaml:8: IngressRoute"),
            (route("{name: other-a@kubernetescrd}") + other, hidden, "mw.yaml:8: IngressRoute"),
            (route("{name: ns-a@kubernetescrd}") + other, 'middleware "ns-a@kubernetescrd"', ""),
            (
                route("", service_extra=", middlewares: [{name: a, namespace: other}]") + other,
                not_in,
                "mw.yaml:10: IngressRoute",
            ),
            (
                route("{name: c}")
                + other
                + mw("c", "chain: {middlewares: [{name: a, namespace: other}]}"),
                not_in,
                "mw.yaml:",
            ),
            (weighted % "{name: a, namespace: other}" + other, not_in, "mw.yaml:6: Traefik"),
            (tcp % "{name: ip, namespace: other}" + tcp_other, "middleware other/ip is", "mw"),
        ]
        for text, error, where in cases:
            for static in (STATIC, CROSS):
                with self.subTest(text=text, static=static):
                    result, errors = build(text, static)
                    refused = static is STATIC and error is not None
                    if error == 'middleware "ns-a@kubernetescrd"':
                        # Traefik refuses even a same-namespace name@kubernetescrd.
                        refused = static is STATIC
                    if not refused:
                        self.assertEqual(errors, [])
                        continue
                    self.assertTrue(any(error in e for e in errors), errors)
                    self.assertTrue(any(e.startswith(where) for e in errors), errors)
                    if "allowCrossNamespace" not in " ".join(errors):
                        self.fail(errors)
                    table = result.table
                    assert table is not None
                    if "IngressRoute " in where or where == "mw.yaml:":
                        self.assertEqual(table.routers, ())
                        self.assertTrue(table.failed_routers)
                    if where == "mw":
                        self.assertEqual(table.tcp_routers, ())

    def test_secretStaysInItsNamespace(self) -> None:
        """A middleware's Secret is looked up in the middleware's own namespace only."""
        secret = """---
apiVersion: v1
kind: Secret
metadata: {name: users, namespace: other}
stringData: {users: "u:p"}
"""
        text = route("{name: s}") + mw("s", "testSecret: {secret: users}") + secret
        result, errors = build(text, CROSS)
        self.assertTrue(any("secret users not found" in e for e in errors), errors)
        assert result.table is not None
        self.assertEqual(result.table.routers, ())


class SecretTypeTests(SynchronousTestCase):
    """The build context tells a step a Secret's type (basicAuth reads by it)."""

    def test_basicAuthByType(self) -> None:
        """A kubernetes.io/basic-auth Secret is one user; an Opaque Secret with the same
        two keys is not (Traefik wants exactly one key of htpasswd lines there)."""
        secret = """---
apiVersion: v1
kind: Secret
metadata: {name: users, namespace: ns}
type: %s
stringData: {username: u, password: p}
"""
        text = route("{name: ba}") + mw("ba", "basicAuth: {secret: users}")
        result, errors = build(text + secret % "kubernetes.io/basic-auth")
        self.assertEqual(errors, [])
        assert result.table is not None
        self.assertEqual(len(result.table.routers), 1)
        result, errors = build(text + secret % "Opaque")
        self.assertTrue(any("spec.basicAuth:" in e for e in errors), errors)
        assert result.table is not None
        self.assertEqual(result.table.routers, ())


class ChainTests(SynchronousTestCase):
    """Chains expand in place, nest, and a reference cycle is a located error."""

    def setUp(self) -> None:
        middlewarekinds.register(self)

    def test_nested(self) -> None:
        """chain(a, chain(b, c), a) runs a, b, c, a; the API lists the chain by its name."""
        text = route("{name: outer}")
        text += mw("outer", "chain: {middlewares: [{name: a}, {name: inner}, {name: a}]}")
        text += mw("inner", "chain: {middlewares: [{name: b}, {name: c}]}")
        for name in "abc":
            text += mw(name, f"testTag: {{name: X-{name}}}")
        result, errors = build(text)
        table = result.table
        assert table is not None
        self.assertEqual(errors, [])
        self.assertEqual(chain_of(table), [f"ns-{n}@kubernetescrd" for n in "abca"])
        self.assertEqual(table.routers[0].middlewares, ("ns-outer@kubernetescrd",))
        used = {m.name: m.used_by for m in table.middlewares}
        self.assertEqual(
            used["ns-outer@kubernetescrd"], (table.routers[0].name + "@kubernetescrd",)
        )
        self.assertEqual(used["ns-a@kubernetescrd"], ())  # only routers count, as in Traefik

    def test_cycle(self) -> None:
        """x -> a -> b -> a: a and b carry the cycle, x and the router are disabled."""
        text = route("{name: x}")
        text += mw("x", "chain: {middlewares: [{name: a}]}")
        text += mw("a", "chain: {middlewares: [{name: b}]}")
        text += mw("b", "chain: {middlewares: [{name: a}]}")
        result, errors = build(text)
        table = result.table
        assert table is not None
        self.assertEqual(table.routers, ())
        cycle = "reference cycle: ns-a@kubernetescrd -> ns-b@kubernetescrd -> ns-a@kubernetescrd"
        self.assertEqual(
            sorted(errors),
            sorted(
                [
                    f"mw.yaml:22: Middleware ns/a: spec.chain.middlewares[0]: {cycle}",
                    f"mw.yaml:28: Middleware ns/b: spec.chain.middlewares[0]: {cycle}",
                    "mw.yaml:16: Middleware ns/x: spec.chain.middlewares[0]: middleware"
                    ' "ns-a@kubernetescrd" has errors (see mw.yaml:22)',
                    "mw.yaml:8: IngressRoute ns/r: spec.routes[0].middlewares[0]: middleware"
                    ' "ns-x@kubernetescrd" has errors (see mw.yaml:16)',
                ]
            ),
        )
        status = {m.name: m.errors for m in table.middlewares}
        self.assertTrue(all(status.values()))

    def test_selfReference(self) -> None:
        """A chain naming itself is a cycle of one."""
        result, errors = build(route("{name: a}") + mw("a", "chain: {middlewares: [{name: a}]}"))
        self.assertIn(
            "mw.yaml:16: Middleware ns/a: spec.chain.middlewares[0]: reference cycle:"
            " ns-a@kubernetescrd -> ns-a@kubernetescrd",
            errors,
        )

    def test_unusedBrokenMiddlewareIsAnError(self) -> None:
        """A middleware nobody uses is still built and its error reported (check fails)."""
        result, errors = build(route("") + mw("rl", "plugin: {demo: {}}"))
        assert result.table is not None
        self.assertEqual(len(result.table.routers), 1)
        self.assertEqual(len(errors), 1)


STATIC_MODEL = """\
entryPoints:
  web:
    address: ":8000"
    http:
      middlewares: [ns-a@kubernetescrd]
      redirections:
        entryPoint: {to: websecure, scheme: https, permanent: false, priority: 5}
  admin:
    address: ":8081"
    http:
      middlewares: [ns-b@kubernetescrd, ns-a]
  websecure:
    address: ":8443"
"""


class EntryPointTests(SynchronousTestCase):
    """``http.middlewares`` and ``http.redirections`` of the static configuration."""

    def setUp(self) -> None:
        middlewarekinds.register(self)

    def test_splitPerEntrypoint(self) -> None:
        """A router on several entrypoints with middlewares is split into <ep>-<router>."""
        text = route("{name: c}", entrypoints="[web, admin, websecure]")
        for name in "abc":
            text += mw(name, f"testTag: {{name: X-{name}}}")
        result, errors = build(text, STATIC_MODEL)
        table = result.table
        assert table is not None
        self.assertEqual(errors, [])
        steps = {
            (r.name.split("-ns-")[0], r.entrypoints): [n.split("@")[0] for n, _ in r.chain]
            for r in table.routers
        }
        self.assertEqual(
            steps,
            {
                (router_key("ns", "r", "Host(`a`)"), ("websecure",)): ["ns-c"],
                ("web", ("web",)): ["ns-a", "ns-c"],
                ("admin", ("admin",)): ["ns-b", "ns-a", "ns-c"],
                ("web-to-websecure@internal", ("web",)): ["ns-a", "redirect-web-to-websecure"],
            },
        )

    def test_missingEntrypointMiddlewareDisables(self) -> None:
        """An entrypoint middleware that does not exist disables the routers on it."""
        result, errors = build(route("", entrypoints="[web]"), STATIC_MODEL)
        table = result.table
        assert table is not None
        self.assertEqual([r.name for r in table.routers], [])
        self.assertEqual(len(table.failed_routers), 1)
        self.assertIn('middleware "ns-a@kubernetescrd" does not exist', errors[0])

    def test_redirection(self) -> None:
        """The redirection router: catch-all rule, its priority, redirect to the port."""
        text = route("", entrypoints="[websecure]") + mw("a", "testTag: {name: X-a}")
        result, errors = build(text, STATIC_MODEL.replace("ns-b@kubernetescrd, ", ""))
        table = result.table
        assert table is not None
        self.assertEqual(errors, [])
        (router,) = [r for r in table.routers if r.name.endswith("@internal")]
        self.assertEqual(
            (router.rule, router.priority, router.middlewares),
            (
                "HostRegexp(`^.+$`)",
                5,
                ("ns-a@kubernetescrd", "redirect-web-to-websecure@internal"),
            ),
        )
        step = router.chain[-1][1]
        self.assertEqual((step.scheme, step.port, step.permanent), ("https", "8443", False))


class ReuseTests(SynchronousTestCase):
    """Steps are kept across reloads while their spec and Secrets are unchanged."""

    def setUp(self) -> None:
        middlewarekinds.register(self)

    def test_keptAndRebuilt(self) -> None:
        """Same spec: the same object (its state kept); another spec or Secret: a new one."""
        secret = (
            "---\napiVersion: v1\nkind: Secret\nmetadata: {name: tok, namespace: ns}\n"
            "stringData: {token: %s}\n"
        )
        text = route("{name: a}, {name: s}") + mw("a", "testTag: {name: X-a}")
        text += mw("s", "testSecret: {secret: tok}") + secret % "one"
        first, _ = build(text)
        again, _ = build(text, previous=first.table)
        assert first.table is not None and again.table is not None
        before = [step for _, step in first.table.routers[0].chain]
        after = [step for _, step in again.table.routers[0].chain]
        self.assertEqual([a is b for a, b in zip(before, after)], [True, True])
        changed, _ = build(text.replace("one", "two"), previous=again.table)
        assert changed.table is not None
        steps = [step for _, step in changed.table.routers[0].chain]
        self.assertIs(steps[0], before[0])
        self.assertIsNot(steps[1], before[1])
        self.assertEqual(steps[1].data, {"token": b"two"})

    def test_tcpStepKept(self) -> None:
        """An inFlightConn keeps its counts across a reload that leaves it unchanged."""
        text = """apiVersion: traefik.io/v1alpha1
kind: IngressRouteTCP
metadata: {name: t, namespace: ns}
spec:
  routes:
    - match: HostSNI(`*`)
      middlewares: [{name: n}]
      services: [{name: app, port: 80}]
"""
        text += mw("n", "inFlightConn: {amount: 1}", kind="MiddlewareTCP")
        first, _ = build(text)
        assert first.table is not None
        step = first.table.tcp_routers[0].chain[0][1]
        self.assertIsNotNone(step.admit("10.0.0.1"))
        again, _ = build(text, previous=first.table)
        assert again.table is not None
        kept = again.table.tcp_routers[0].chain[0][1]
        self.assertIs(kept, step)
        self.assertIsNone(kept.admit("10.0.0.1"))

    def test_reactorHandedOn(self) -> None:
        """Steps are built with the reactor given to the build."""
        clock = Clock()
        result, _ = build(route("{name: l}") + mw("l", "testLater: {after: 1s}"), reactor=clock)
        assert result.table is not None
        self.assertIs(result.table.routers[0].chain[0][1].reactor, clock)


class TCPTests(SynchronousTestCase):
    """MiddlewareTCP references on IngressRouteTCP routes."""

    def test_table(self) -> None:
        """Steps in order, or the TCP router disabled with the located error."""
        head = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRouteTCP
metadata: {name: t, namespace: ns}
spec:
  entryPoints: [web]
  routes:
    - match: HostSNI(`*`)
      middlewares: [%s]
      services: [{name: app, port: 80}]
"""
        defs = mw("ip", "ipAllowList: {sourceRange: [127.0.0.1]}", kind="MiddlewareTCP")
        defs += mw("n", "inFlightConn: {amount: 2}", kind="MiddlewareTCP")
        defs += mw("h", "testTag: {name: X}")  # an HTTP Middleware is not a MiddlewareTCP
        cases = [
            ("{name: ip}, {name: n}", ["ns-ip@kubernetescrd", "ns-n@kubernetescrd"], ""),
            ("{name: h}", None, 'middleware "ns-h@kubernetescrd" does not exist'),
        ]
        middlewarekinds.register(self)
        for refs, steps, error in cases:
            with self.subTest(refs=refs):
                result, errors = build((head % refs) + defs)
                table = result.table
                assert table is not None
                if steps is None:
                    self.assertEqual(table.tcp_routers, ())
                    self.assertIn(error, errors[0])
                    self.assertTrue(errors[0].startswith("mw.yaml:7: IngressRouteTCP ns/t:"))
                else:
                    self.assertEqual(errors, [])
                    (router,) = table.tcp_routers
                    self.assertEqual([n for n, _ in router.chain], steps)
                    self.assertEqual(router.middlewares, tuple(steps))


class UnsupportedTests(SynchronousTestCase):
    """Settings that used to be ignored with a notice and would weaken security or change
    routing now disable what uses them (or fail the document), located."""

    def test_table(self) -> None:
        """(documents, the errors, whether a router survives)."""
        transport = (
            "---\napiVersion: traefik.io/v1alpha1\nkind: ServersTransport\n"
            "metadata: {name: pinned, namespace: ns}\nspec: {rootCAsSecrets: [ca], minVersion: VersionTLS13}\n"
        )
        tcp = """\
---
apiVersion: traefik.io/v1alpha1
kind: IngressRouteTCP
metadata: {name: t, namespace: ns}
spec:
  routes:
    - match: HostSNI(`*`)
      services: [{name: app, port: 80, %s}]
"""
        cases = [
            (
                route("", service_extra=", serversTransport: pinned") + transport,
                [
                    "mw.yaml:10: IngressRoute ns/r: serversTransport pinned: minVersion not"
                    " supported yet (backend TLS would be weaker than configured)"
                ],
            ),
            (
                tcp % "tls: true",
                [
                    "mw.yaml:8: IngressRouteTCP ns/t: spec.routes[0].services[0].tls: dialling"
                    " the server with TLS through the default TCP transport needs"
                    " tcpServersTransport.tls.insecureSkipVerify: true in the static"
                    " configuration (it has no serverName to verify the certificate by: Traefik"
                    " fails every connection), route dropped"
                ],
            ),
            (
                tcp % "serversTransport: st",
                [
                    "mw.yaml:8: IngressRouteTCP ns/t: spec.routes[0].services[0].serversTransport:"
                    " ServersTransportTCP st not found in namespace ns, route dropped"
                ],
            ),
        ]
        for text, errors in cases:
            with self.subTest(errors=errors):
                result, found = build(text)
                assert result.table is not None
                self.assertEqual(found, errors)
                self.assertEqual((result.table.routers, result.table.tcp_routers), ((), ()))

    def test_parentRefs(self) -> None:
        """An IngressRoute with parentRefs (multi-layer routing) is an error, not served."""
        text = route("").replace("  routes:", "  parentRefs: [{name: p}]\n  routes:", 1)
        loaded = load_files(STATIC, [("mw.yaml", text)])
        self.assertEqual(
            [str(e) for e in loaded.errors],
            [
                "mw.yaml:6: IngressRoute ns/r: spec.parentRefs: multi-layer routing is not supported yet"
            ],
        )


class ExplainTests(SynchronousTestCase):
    """`tsproxy route` shows the steps a request would run through."""

    def test_steps(self) -> None:
        """The chosen router's steps, in order, on a line of their own."""
        from tsproxy.explain import explain
        from tsproxy.rules import HTTPRequestInfo

        middlewarekinds.register(self)
        text = route("{name: a}, {name: b}")
        text += mw("a", "testTag: {name: X-A}") + mw("b", "testDeny: {}")
        result, _ = build(text)
        req = HTTPRequestInfo.from_request("GET", "/", [("Host", "a")], "10.0.0.1")
        status, shown = explain(result.table, "web", req, False)
        self.assertEqual(status, 0)
        self.assertIn("\nsteps     ns-a@kubernetescrd, ns-b@kubernetescrd\n", shown)
