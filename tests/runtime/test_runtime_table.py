"""Tests for tsproxy.runtime.table: routers per entrypoint, evaluation order, lookups."""

from __future__ import annotations

from typing import Optional

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.config.load import load_files
from tsproxy.rules import HTTPRequestInfo
from tsproxy.runtime.build import build_table
from tsproxy.runtime.table import RoutingTable

STATIC = 'entryPoints:\n  web:\n    address: ":8000"\n  admin:\n    address: ":8080"\n'
ROUTES = """\
apiVersion: v1
kind: Service
metadata: {name: app}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: app}
subsets: [{addresses: [{ip: 10.0.0.1}], ports: [{port: 80}]}]
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: b}
spec:
  routes:
    - match: PathPrefix(`/`)
      priority: 1
      services: [{name: app, port: 80}]
    - match: Host(`a.example`)
      services: [{name: app, port: 80}]
    - match: Host(`b.example`) || Host(`c.example`)
      priority: 19
      services: [{name: app, port: 80}]
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: a}
spec:
  entryPoints: [admin]
  routes:
    - match: Host(`a.example`)
      services: [{name: app, port: 80}]
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: secure}
spec:
  routes:
    - match: Host(`secure.example`)
      priority: 1000
      services: [{name: app, port: 80}]
  tls: {}
"""


def table() -> RoutingTable:
    result = build_table(load_files(STATIC, [("r.yaml", ROUTES)]))
    assert result.errors == () and result.table is not None, result.errors
    return result.table


def route(table: RoutingTable, entrypoint: str, host: str, path: str = "/x") -> Optional[str]:
    req = HTTPRequestInfo.from_request("GET", path, [("Host", host)], "127.0.0.1")
    router = table.http_route(entrypoint, req)
    return None if router is None else router.rule


class RoutingTableTests(SynchronousTestCase):
    """What each entrypoint routes, in which order."""

    def test_order(self) -> None:
        """Priority descending (0 means the rule's length), then router name; TLS routers left out."""
        routing = table()
        self.assertEqual(
            [(r.rule, r.priority) for r in routing.http_routers("web")],
            [
                ("Host(`b.example`) || Host(`c.example`)", 19),
                ("Host(`a.example`)", 17),
                ("PathPrefix(`/`)", 1),
            ],
        )
        admin = routing.http_routers("admin")
        self.assertEqual([r.priority for r in admin], [19, 17, 17, 1])
        self.assertEqual([r.name[:10] for r in admin[1:3]], ["default-a-", "default-b-"])
        self.assertEqual(routing.http_routers("nope"), ())
        self.assertEqual(len(routing.routers), 5)
        # The TLS router is an HTTPS router: only requests that came over TLS see it.
        self.assertEqual(
            [r.rule for r in routing.http_routers("web", tls=True)], ["Host(`secure.example`)"]
        )
        secure = HTTPRequestInfo.from_request("GET", "/", [("Host", "secure.example")], "::1")
        https = routing.http_route("web", secure, tls=True)
        self.assertEqual(https.rule if https is not None else None, "Host(`secure.example`)")

    def test_lookup(self) -> None:
        """A request gets the first matching router of its entrypoint, or None."""
        routing = table()
        cases = [
            ("web", "c.example", "Host(`b.example`) || Host(`c.example`)"),
            ("web", "a.example", "Host(`a.example`)"),
            ("web", "other.example", "PathPrefix(`/`)"),
            ("web", "secure.example", "PathPrefix(`/`)"),
            ("nope", "a.example", None),
        ]
        for entrypoint, host, rule in cases:
            self.assertEqual(route(routing, entrypoint, host), rule, (entrypoint, host))
        admin = routing.http_route(
            "admin", HTTPRequestInfo.from_request("GET", "/", [("Host", "a.example")], "::1")
        )
        assert admin is not None
        self.assertEqual(admin.name[:10], "default-a-")
        self.assertEqual(
            (admin.source.file, admin.source.line, admin.source.resource),
            ("r.yaml", 31, "IngressRoute default/a"),
        )
