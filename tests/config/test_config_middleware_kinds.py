"""Tests for tsproxy.config.kinds' Middleware and MiddlewareTCP reading and middleware
references: one kind per middleware, failed middlewares located, references kept."""

from __future__ import annotations

import textwrap

from twisted.trial.unittest import SynchronousTestCase

from tests import middlewarekinds
from tsproxy.config.load import load_files
from tsproxy.config.resources import Middleware, MiddlewareRef, MiddlewareTCP

STATIC = 'entryPoints:\n  web:\n    address: ":8000"\n'


def load(text: str) -> tuple[tuple[object, ...], list[str], list[str]]:
    loaded = load_files(STATIC, [("mw.yaml", textwrap.dedent(text))])
    return loaded.resources, [str(e) for e in loaded.errors], list(loaded.notices)


def middleware(spec: str, kind: str = "Middleware", group: str = "traefik.io/v1alpha1") -> str:
    return (
        f"apiVersion: {group}\nkind: {kind}\nmetadata: {{name: m, namespace: ns}}\nspec:\n"
        + textwrap.indent(textwrap.dedent(spec), "  ")
    )


class MiddlewareTests(SynchronousTestCase):
    """A Middleware names one kind; problems make it a failed middleware, not a failed file."""

    def setUp(self) -> None:
        middlewarekinds.register(self)

    def test_table(self) -> None:
        """Each spec becomes (kind, error, error line) as listed."""
        cases = [
            ("testTag: {name: X-A, value: a}", "testTag", "", 0),
            ("testDeny: {}", "testDeny", "", 0),
            ("testDeny:", "testDeny", "", 0),
            (
                "testDeny: {status: 99}",
                "testDeny",
                "spec.testDeny.status: must be an integer between 200 and 599",
                5,
            ),
            ("testDeny: {color: red}", "testDeny", "spec.testDeny.color: unknown field", 5),
            ("testDeny: [1]", "testDeny", "spec.testDeny: must be a mapping", 5),
            (
                "plugin: {demo: {}}",
                "plugin",
                "spec.plugin: the plugin middleware is not implemented by tsproxy",
                5,
            ),
            ("frobnicate: {}", "frobnicate", "spec.frobnicate: unknown middleware kind", 5),
            ("{}", "", "spec: names no middleware kind", 4),
            (
                "testDeny: {}\ntestTag: {name: a}",
                "",
                "spec: names several kinds (testDeny, testTag): a middleware has exactly one,"
                " declare one middleware per kind",
                4,
            ),
            (
                "chain:\n  middlewares:\n    - name: a\n    - {name: b, namespace: other}",
                "chain",
                "",
                0,
            ),
            (
                "chain: {middlewares: [{}]}",
                "chain",
                "spec.chain.middlewares[0].name: is required",
                5,
            ),
        ]
        for spec, kind, error, line in cases:
            with self.subTest(spec=spec):
                resources, errors, _ = load(middleware(spec))
                self.assertEqual(errors, [])
                (found,) = resources
                assert isinstance(found, Middleware)
                self.assertEqual((found.kind, found.error), (kind, error))
                if error:
                    self.assertEqual(found.line, line)
                    self.assertIsNone(found.spec)

    def test_chainSpec(self) -> None:
        """A chain's references default to the chain's namespace and are located."""
        spec = "chain:\n  middlewares:\n    - name: a\n    - {name: b, namespace: other}\n"
        spec += "    - name: c-d@kubernetescrd"
        (found,), _, _ = load(middleware(spec))
        self.assertEqual(
            found.spec,  # type: ignore[attr-defined]
            (
                MiddlewareRef("a", "ns", 7, "spec.chain.middlewares[0]", "ns"),
                MiddlewareRef("b", "other", 8, "spec.chain.middlewares[1]", "ns"),
                MiddlewareRef("c-d@kubernetescrd", "ns", 9, "spec.chain.middlewares[2]", "ns"),
            ),
        )

    def test_configKeptForAPI(self) -> None:
        """The section is kept as written, plain values, for the API."""
        (found,), _, _ = load(middleware("testTag: {name: X-A, value: a}"))
        self.assertEqual(found.config, {"name": "X-A", "value": "a"})  # type: ignore[attr-defined]

    def test_bothGroups(self) -> None:
        """traefik.containo.us is read like traefik.io."""
        (found,), errors, _ = load(middleware("testDeny: {}", group="traefik.containo.us/v1alpha1"))
        self.assertEqual((errors, found.kind), ([], "testDeny"))  # type: ignore[attr-defined]

    def test_documentErrors(self) -> None:
        """A Middleware without spec is an error of its document, as for any kind."""
        text = "apiVersion: traefik.io/v1alpha1\nkind: Middleware\nmetadata: {name: m}\n"
        resources, errors, _ = load(text)
        self.assertEqual(
            (resources, errors), ((), ["mw.yaml:1: Middleware default/m: spec: is required"])
        )


class MiddlewareTCPTests(SynchronousTestCase):
    """MiddlewareTCP has its own kinds: ipAllowList (ipWhiteList) and inFlightConn."""

    def test_table(self) -> None:
        """Each spec becomes (kind, error) as listed (Traefik's constructor errors included)."""
        cases = [
            ("ipAllowList: {sourceRange: [10.0.0.0/8, 1.2.3.4]}", "ipAllowList", ""),
            ("ipWhiteList: {sourceRange: [10.0.0.0/8]}", "ipWhiteList", ""),
            (
                "ipAllowList: {}",
                "ipAllowList",
                "spec.ipAllowList.sourceRange: sourceRange is empty, IPAllowLister not created",
            ),
            (
                "ipAllowList: {sourceRange: [foo]}",
                "ipAllowList",
                "spec.ipAllowList.sourceRange: cannot parse CIDRs: 'foo' is neither IP nor CIDR",
            ),
            ("inFlightConn: {amount: 3}", "inFlightConn", ""),
            (
                "inFlightConn: {amount: -1}",
                "inFlightConn",
                "spec.inFlightConn.amount: must be an integer >= 0",
            ),
            ("chain: {}", "chain", "spec.chain: unknown middleware kind"),
            (
                "stripPrefix: {prefixes: [/a]}",
                "stripPrefix",
                "spec.stripPrefix: unknown middleware kind",
            ),
        ]
        for spec, kind, error in cases:
            with self.subTest(spec=spec):
                resources, errors, _ = load(middleware(spec, "MiddlewareTCP"))
                self.assertEqual(errors, [])
                (found,) = resources
                self.assertIsInstance(found, MiddlewareTCP)
                self.assertEqual((found.kind, found.error), (kind, error))  # type: ignore[attr-defined]


class ReferenceTests(SynchronousTestCase):
    """Middleware references on routes and on services."""

    def test_serviceMiddlewares(self) -> None:
        """``middlewares`` of a route's service is read (no longer an ignored notice)."""
        text = """\
        apiVersion: traefik.io/v1alpha1
        kind: IngressRoute
        metadata: {name: r, namespace: ns}
        spec:
          routes:
            - match: Host(`a`)
              services:
                - name: s
                  port: 80
                  middlewares:
                    - name: auth
                      namespace: sec
        """
        (route,), errors, notices = load(text)
        self.assertEqual((errors, notices), ([], []))
        ref = route.routes[0].services[0]  # type: ignore[attr-defined]
        self.assertEqual(
            ref.middlewares,
            (MiddlewareRef("auth", "sec", 11, "spec.routes[0].services[0].middlewares[0]", "ns"),),
        )

    def test_unknownFieldInReference(self) -> None:
        """A reference with an unknown field is an error of its document, located."""
        text = """\
        apiVersion: traefik.io/v1alpha1
        kind: IngressRoute
        metadata: {name: r}
        spec:
          routes:
            - match: Host(`a`)
              middlewares:
                - {name: a, kind: Middleware}
        """
        _, errors, _ = load(text)
        self.assertEqual(
            errors,
            [
                "mw.yaml:8: IngressRoute default/r: spec.routes[0].middlewares[0].kind: unknown field"
            ],
        )
