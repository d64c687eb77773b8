"""Routing through a running proxy: many rules of every matcher, checked by which backend
answered."""

from __future__ import annotations

from typing import Dict, List, Tuple

from twisted.internet import defer

from tests.proxyfixture import ENDPOINTS, SERVICE, STATIC, ProxyTestCase

# (match, priority or None, syntax or None, backend)
ROUTES: List[Tuple[str, object, object, str]] = [
    ("Host(`exact.test`)", None, None, "a"),
    ("Host(`exact.test`) && PathPrefix(`/api`)", None, None, "b"),
    ("Host(`exact.test`) && Path(`/api/v2/status`)", None, None, "c"),
    ("HostRegexp(`^[a-z]+\\.regex\\.test$`)", None, None, "d"),
    ("Host(`*.wild.test`)", None, None, "a"),
    ("Host(`m.test`) && Method(`POST`)", None, None, "b"),
    ("Host(`m.test`) && Method(`DELETE`)", None, None, "c"),
    ("Host(`m.test`)", None, None, "d"),
    ("Host(`h.test`) && Header(`X-Canary`, `yes`)", None, None, "b"),
    ("Host(`h.test`) && HeaderRegexp(`X-Version`, `^v[0-9]+$`)", None, None, "c"),
    ("Host(`h.test`)", None, None, "a"),
    ("Host(`q.test`) && Query(`beta`, `1`)", None, None, "b"),
    ("Host(`q.test`) && QueryRegexp(`user`, `^admin`)", None, None, "c"),
    ("Host(`q.test`)", None, None, "d"),
    ("Host(`ip.test`) && ClientIP(`127.0.0.0/8`)", None, None, "b"),
    ("Host(`ip.test`) && ClientIP(`10.0.0.0/8`)", None, None, "c"),
    ("Host(`p.test`) && PathRegexp(`^/items/[0-9]+$`)", None, None, "a"),
    ("Host(`p.test`) && (PathPrefix(`/x`) || PathPrefix(`/y`))", None, None, "b"),
    ("Host(`p.test`) && !PathPrefix(`/private`)", None, None, "c"),
    ("Host(`p.test`)", None, None, "d"),
    ("Host(`prio.test`) && PathPrefix(`/`)", 1000, None, "c"),
    ("Host(`prio.test`) && Path(`/a/much/longer/rule/path`)", None, None, "a"),
    ('HOST("quoted.test") && pathprefix("/Q")', None, None, "b"),
    ("HostHeader(`v2.test`) && PathPrefix(`/{id:[0-9]+}`)", None, "v2", "b"),
    ("HostHeader(`v2.test`)", None, "v2", "a"),
]

# (method, host, path, headers, expected backend or 404)
REQUESTS: List[Tuple[str, str, str, Dict[str, List[str]], str]] = [
    ("GET", "exact.test", "/", {}, "a"),
    ("GET", "EXACT.test", "/api/v1", {}, "b"),
    ("GET", "exact.test", "/api/v2/status", {}, "c"),
    ("GET", "exact.test:8080", "/apiary", {}, "b"),  # PathPrefix is a plain string prefix
    ("GET", "foo.regex.test", "/", {}, "d"),
    ("GET", "foo.bar.regex.test", "/", {}, "404"),
    ("GET", "one.wild.test", "/", {}, "a"),
    ("POST", "m.test", "/", {}, "b"),
    ("DELETE", "m.test", "/", {}, "c"),
    ("GET", "m.test", "/", {}, "d"),
    ("GET", "h.test", "/", {"X-Canary": ["yes"]}, "b"),
    ("GET", "h.test", "/", {"X-Version": ["v42"]}, "c"),
    ("GET", "h.test", "/", {"X-Version": ["beta"]}, "a"),
    ("GET", "q.test", "/?beta=1", {}, "b"),
    ("GET", "q.test", "/?user=administrator", {}, "c"),
    ("GET", "q.test", "/?beta=2", {}, "d"),
    ("GET", "ip.test", "/", {}, "b"),
    ("GET", "p.test", "/items/17", {}, "a"),
    ("GET", "p.test", "/items/x", {}, "c"),
    ("GET", "p.test", "/yes", {}, "b"),
    ("GET", "p.test", "/private/area", {}, "d"),
    ("GET", "prio.test", "/a/much/longer/rule/path", {}, "c"),
    ("GET", "quoted.test", "/Q/1", {}, "b"),
    ("GET", "quoted.test", "/q/1", {}, "404"),
    ("GET", "v2.test", "/123/x", {}, "b"),
    ("GET", "v2.test", "/abc", {}, "a"),
    ("GET", "nothing.test", "/", {}, "404"),
]


def _route_yaml() -> str:
    lines = [
        "apiVersion: traefik.io/v1alpha1",
        "kind: IngressRoute",
        "metadata:",
        "  name: many",
        "spec:",
        "  entryPoints: [web]",
        "  routes:",
    ]
    for match, priority, syntax, backend in ROUTES:
        lines.append("    - match: '%s'" % match.replace("'", "''"))
        lines.append("      kind: Rule")
        if priority is not None:
            lines.append("      priority: %d" % priority)
        if syntax is not None:
            lines.append("      syntax: %s" % syntax)
        lines.append("      services:")
        lines.append("        - name: %s" % backend)
        lines.append("          port: 80")
    return "\n".join(lines) + "\n"


class RoutingThroughProxyTests(ProxyTestCase):
    """25 routers of every matcher kind on one entrypoint, exercised by real requests."""

    @defer.inlineCallbacks
    def test_whichBackendAnswers(self) -> None:
        """Each request is answered by the backend its best-matching router names."""
        docs = []
        for name in "abcd":
            docs.append(SERVICE.format(name=name))
            docs.append(ENDPOINTS.format(name=name, port=self.start_app(name)))
        docs.append(_route_yaml())
        self.write("tsproxy.yaml", STATIC)
        self.write("routes.yaml", "---\n".join(docs))
        self.start_proxy()
        self.assertEqual(len(self.service.table.http_routers("web")), len(ROUTES))
        for method, host, path, headers, expected in REQUESTS:
            response, body = yield self.get(host, path=path, method=method, headers=headers)
            got = "404" if response.code == 404 else body.decode().strip().replace("Hello ", "")
            self.assertEqual(got, expected, (method, host, path, headers))
