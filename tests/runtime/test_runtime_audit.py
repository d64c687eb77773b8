"""Tests for tsproxy.runtime.audit: the review of a loaded configuration, routers never reached,
listeners that collide, and when two rules count as the same."""

from __future__ import annotations

from typing import List

from twisted.trial.unittest import SynchronousTestCase

from tests.runtime import test_runtime_build
from tsproxy.config.load import load_files
from tsproxy.config.static import EntryPoint
from tsproxy.rules.parse import parse
from tsproxy.runtime.audit import port_conflicts, review, rule_shape

# Entrypoints web and admin (TCP) and dns (UDP); Services app-v1 and app-v2 with endpoints.
STATIC = test_runtime_build.STATIC
BACKENDS = test_runtime_build.BACKENDS


def ingress(name: str, match: str, extra: str = "", route_extra: str = "") -> str:
    """An IngressRoute with one route to the app-v1 Service."""
    return (
        "---\napiVersion: traefik.io/v1alpha1\nkind: IngressRoute\n"
        f"metadata: {{name: {name}}}\nspec:\n{extra}  routes:\n"
        f"    - match: {match}\n{route_extra}      services: [{{name: app-v1, port: 80}}]\n"
    )


TLS_OPTIONS = "".join(
    f"---\napiVersion: traefik.io/v1alpha1\nkind: TLSOption\nmetadata: {{name: {name}}}\n"
    "spec: {minVersion: VersionTLS12}\n"
    for name in ("modern", "legacy")
)


def warnings_of(text: str) -> List[str]:
    files = [("backends.yaml", BACKENDS), ("routes.yaml", text), ("options.yaml", TLS_OPTIONS)]
    loaded = load_files(STATIC, files)
    result = review(loaded)
    assert result.errors == (), result.errors
    return [str(w) for w in result.warnings]


class RuleShapeTests(SynchronousTestCase):
    """Rules count as the same when only spacing, operand order, grouping or ! placement differ."""

    def test_table(self) -> None:
        """Each pair has the expected verdict."""
        cases = [
            ("Host(`a`)", "Host( `a` )", True),
            ("Host(`a`) && Path(`/x`)", "Path(`/x`) && Host(`a`)", True),
            (
                "(Host(`a`) && Path(`/x`)) && Method(`GET`)",
                "Host(`a`) && (Path(`/x`) && Method(`GET`))",
                True,
            ),
            ("!(Host(`a`) || Host(`b`))", "!Host(`b`) && !Host(`a`)", True),
            ("Host(`a`) || Host(`b`)", "Host(`b`) || Host(`a`)", True),
            ("Host(`a`)", "Host(`b`)", False),
            ("Host(`a`) && Path(`/x`)", "Host(`a`) || Path(`/x`)", False),
            ("Host(`a`)", "!Host(`a`)", False),
            ("Host(`a`, `b`)", "Host(`b`, `a`)", False),
            ("Host(`a`) && Path(`/x`)", "Host(`a`)", False),
        ]
        for one, other, same in cases:
            self.assertEqual(rule_shape(parse(one)) == rule_shape(parse(other)), same, (one, other))


class UnreachableTests(SynchronousTestCase):
    """A router whose rule an earlier router already has, on all its entrypoints, is reported."""

    def test_sameRuleSamePriority(self) -> None:
        """Two IngressRoutes, same rule: the one with the larger router name is never reached."""
        text = ingress("b", "Host(`a`)", route_extra="      priority: 9\n") + ingress(
            "a", "Host( `a` )", route_extra="      priority: 9\n"
        )
        self.assertEqual(
            warnings_of(text),
            [
                "routes.yaml:7: IngressRoute default/b: match Host(`a`): never reached on"
                " entrypoint web, admin: the route at routes.yaml:16 (IngressRoute default/a)"
                " has the same rule and is tried first"
            ],
        )

    def test_higherPriorityWins(self) -> None:
        """The same rule at a higher priority hides the other whatever the names."""
        text = ingress("a", "Host(`a`)") + ingress(
            "b", "Host(`a`)", route_extra="      priority: 99\n"
        )
        self.assertEqual(
            warnings_of(text),
            [
                "routes.yaml:7: IngressRoute default/a: match Host(`a`): never reached on"
                " entrypoint web, admin: the route at routes.yaml:15 (IngressRoute default/b)"
                " has the same rule and is tried first"
            ],
        )

    def test_reachableSomewhere(self) -> None:
        """Other rules, other entrypoints, TLS against plain, or another syntax: no warning."""
        on_web = "  entryPoints: [web]\n"
        on_admin = "  entryPoints: [admin]\n"
        tls = "  tls: {}\n"
        v2 = "      syntax: v2\n"
        cases = [
            ingress("a", "Host(`a`)") + ingress("b", "Host(`b`)"),
            ingress("a", "Host(`a`)", on_web) + ingress("b", "Host(`a`)", on_admin),
            ingress("a", "Host(`a`)", on_web) + ingress("b", "Host(`a`)"),
            ingress("a", "Host(`a`)") + ingress("b", "Host(`a`)", tls),
            ingress("a", "Host(`a`)") + ingress("b", "Host(`a`)", route_extra=v2),
            ingress("a", "Host(`a`)") + ingress("b", "Host(`a`) && Path(`/`)"),
        ]
        for text in cases:
            self.assertEqual(warnings_of(text), [], text)

    def test_differentWinners(self) -> None:
        """Hidden by a different route on each entrypoint: both are named."""
        text = (
            ingress("a", "Host(`a`)", "  entryPoints: [web]\n")
            + ingress("b", "Host(`a`)", "  entryPoints: [admin]\n")
            + ingress("c", "Host(`a`)")
        )
        self.assertEqual(
            warnings_of(text),
            [
                "routes.yaml:25: IngressRoute default/c: match Host(`a`): never reached on"
                " entrypoint web: the route at routes.yaml:8 (IngressRoute default/a) has the"
                " same rule and is tried first; never reached on entrypoint admin: the route"
                " at routes.yaml:17 (IngressRoute default/b) has the same rule and is tried first"
            ],
        )


def entrypoint(name: str, host: str, port: int, protocol: str = "tcp") -> EntryPoint:
    return EntryPoint(name=name, host=host, port=port, protocol=protocol)


class PortConflictTests(SynchronousTestCase):
    """Listeners that cannot coexist are errors at the later entrypoint."""

    def test_table(self) -> None:
        """Each pair of (host, port, protocol) collides or not as the kernel would have it."""
        cases = [
            (("", 80), ("127.0.0.1", 80), True),
            (("0.0.0.0", 80), ("", 80), True),
            (("127.0.0.1", 80), ("127.0.0.2", 80), False),
            (("127.0.0.1", 80), ("127.0.0.1", 81), False),
            (("::", 80), ("127.0.0.1", 80), True),
            (("::1", 80), ("", 80), False),
            (("::1", 80), ("::1", 80), True),
            (("", 0), ("", 0), False),
        ]
        for (host_a, port_a), (host_b, port_b), collide in cases:
            found = port_conflicts(
                [entrypoint("a", host_a, port_a), entrypoint("b", host_b, port_b)]
            )
            self.assertEqual(len(found), int(collide), (host_a, host_b))
        self.assertEqual(
            port_conflicts([entrypoint("a", "", 53, "udp"), entrypoint("b", "", 53, "tcp")]), []
        )

    def test_message(self) -> None:
        """The error sits at the later entrypoint and names the earlier one with its line."""
        text = 'entryPoints:\n  a:\n    address: ":80"\n  b:\n    address: "127.0.0.1:80"\n'
        result = review(load_files(text, []))
        self.assertEqual(
            [str(e) for e in result.errors],
            [
                "tsproxy.yaml:4: entrypoint b: port 80/tcp is already taken by entrypoint a"
                " (tsproxy.yaml:2)"
            ],
        )


class ReviewTests(SynchronousTestCase):
    """The review gathers the loader's and the build's findings around one table."""

    def test_gathers(self) -> None:
        """Loader errors, build errors and notices all appear; the good route is in the table."""
        text = (
            ingress("good", "Host(`a`)")
            + ingress("bad", "Host(`b`)").replace("name: app-v1,", "name: nope,")
            + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"
            + "---\napiVersion: v1\nkind: Service\nmetadata: {name: app-v1}\nspec: {ports: [{port: 81}]}\n"
        )
        loaded = load_files(STATIC, [("backends.yaml", BACKENDS), ("routes.yaml", text)])
        result = review(loaded)
        self.assertEqual(
            [str(e) for e in result.errors],
            [
                "routes.yaml:22: Service default/app-v1: defined twice, this one is ignored"
                " (first at backends.yaml:1)",
                "routes.yaml:16: IngressRoute default/bad: service default/nope not found",
            ],
        )
        self.assertEqual(
            result.notices, ("routes.yaml:18: skipping Deployment default/d (kind not handled)",)
        )
        assert result.table is not None
        self.assertEqual([r.rule for r in result.table.http_routers("web")], ["Host(`a`)"])

    def test_noStatic(self) -> None:
        """Without tsproxy.yaml there is no table and the loader's error says why."""
        result = review(load_files(None, [("backends.yaml", BACKENDS)]))
        self.assertIsNone(result.table)
        self.assertEqual(
            [str(e) for e in result.errors],
            ["tsproxy.yaml:1: file not found: no entrypoints defined"],
        )


def ingress_tcp(name: str, match: str, extra: str = "") -> str:
    """An IngressRouteTCP with one route to the app-v1 Service; ``extra`` goes in its spec."""
    return (
        "---\napiVersion: traefik.io/v1alpha1\nkind: IngressRouteTCP\n"
        f"metadata: {{name: {name}}}\nspec:\n{extra}  routes:\n"
        f"    - match: {match}\n      services: [{{name: app-v1, port: 80}}]\n"
    )


class TCPAuditTests(SynchronousTestCase):
    """TCP routers get the same review as HTTP ones, plus the ones HTTP routers starve."""

    def test_behindHTTPRouters(self) -> None:
        """A plain TCP router whose every entrypoint has HTTP routers never gets a
        connection: non-TLS bytes go to the HTTP routers there."""
        text = ingress("site", "Host(`a`)") + ingress_tcp("db", "HostSNI(`*`)")
        self.assertEqual(
            warnings_of(text),
            [
                "routes.yaml:15: IngressRouteTCP default/db: match HostSNI(`*`): never gets a"
                " connection: non-TLS connections on entrypoint web, admin go to the HTTP"
                " routers there (like the route at routes.yaml:7 (IngressRoute default/site));"
                " give this route an entrypoint without HTTP routers, or TLS"
            ],
        )

    def test_notBehindHTTPRouters(self) -> None:
        """An entrypoint without HTTP routers, a TLS TCP router, or HTTPS routers only: the
        TCP router is reachable, no warning."""
        on_web = "  entryPoints: [web]\n"
        on_admin = "  entryPoints: [admin]\n"
        cases = [
            ingress("site", "Host(`a`)", on_web) + ingress_tcp("db", "HostSNI(`*`)", on_admin),
            ingress("site", "Host(`a`)", on_web) + ingress_tcp("db", "HostSNI(`*`)"),
            ingress("site", "Host(`a`)")
            + ingress_tcp("db", "HostSNI(`db`)", "  tls: {passthrough: true}\n"),
            ingress("site", "Host(`a`)", "  tls: {}\n") + ingress_tcp("db", "HostSNI(`*`)"),
        ]
        for text in cases:
            self.assertEqual(warnings_of(text), [], text)

    def test_sameRule(self) -> None:
        """Two IngressRouteTCP with the same rule on the same entrypoints: the one tried
        second is never reached; a TLS router and a plain one with that rule do not clash."""
        text = ingress_tcp("b", "ClientIP(`10.0.0.0/8`)") + ingress_tcp(
            "a", "ClientIP( `10.0.0.0/8` )"
        )
        self.assertEqual(
            warnings_of(text),
            [
                "routes.yaml:7: IngressRouteTCP default/b: match ClientIP(`10.0.0.0/8`): never"
                " reached on entrypoint web, admin: the route at routes.yaml:15 (IngressRouteTCP"
                " default/a) has the same rule and is tried first"
            ],
        )
        text = ingress_tcp("b", "HostSNI(`*`)") + ingress_tcp(
            "a", "HostSNI(`*`)", "  tls: {passthrough: true}\n"
        )
        self.assertEqual(warnings_of(text), [])

    def test_httpsOptionConflicts(self) -> None:
        """HTTPS routes of one host with different TLS options: each is warned that the host
        gets the default options; the same options on both are fine."""
        text = ingress("one", "Host(`a`)", "  tls: {options: {name: modern}}\n") + ingress(
            "two", "Host(`a`) && Path(`/x`)", "  tls: {options: {name: legacy}}\n"
        )
        self.assertEqual(
            warnings_of(text),
            [
                "routes.yaml:8: IngressRoute default/one: match Host(`a`): host a has HTTPS"
                " routes with different TLS options (routes.yaml:17 (IngressRoute default/two)):"
                " it gets the default TLS options",
                "routes.yaml:17: IngressRoute default/two: match Host(`a`) && Path(`/x`): host"
                " a has HTTPS routes with different TLS options (routes.yaml:8 (IngressRoute"
                " default/one)): it gets the default TLS options",
            ],
        )
        same = text.replace("legacy", "modern")
        self.assertEqual(warnings_of(same), [])

    def test_buildErrorsLocated(self) -> None:
        """A TCP route with a problem is an error at its file:line, the review keeps the rest."""
        text = ingress_tcp("db", "HostSNI(`db`)") + ingress_tcp("ok", "HostSNI(`*`)")
        loaded = load_files(STATIC, [("backends.yaml", BACKENDS), ("routes.yaml", text)])
        result = review(loaded)
        self.assertEqual(
            [str(e) for e in result.errors],
            [
                "routes.yaml:7: IngressRouteTCP default/db: spec.routes[0].match: HostSNI or"
                " HostSNIRegexp other than HostSNI(`*`) needs TLS (spec.tls): without it there"
                " is no SNI to match, route dropped"
            ],
        )
        assert result.table is not None
        self.assertEqual([r.rule for r in result.table.tcp_routers], ["HostSNI(`*`)"])
