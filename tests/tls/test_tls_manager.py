"""Tests for tsproxy.tls.manager: build_tls over parsed YAML (which certificates and options
exist, located errors and warnings) and the manager's per-SNI connection creators."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tests import certs
from tsproxy.config.load import load_files
from tsproxy.config.resources import ObjectRef
from tsproxy.tls import manager as manager_module
from tsproxy.tls.certs import DEFAULT_CERT_CN, generated_default_certificate
from tsproxy.tls.manager import TLSBuild, build_tls

CA = certs.make_ca()
WWW = certs.make_leaf(CA, "www.example", dns=["www.example"])
WILD = certs.make_leaf(CA, dns=["*.apps.example"])
DB = certs.make_leaf(CA, "db.example", dns=["db.example"])
FALLBACK = certs.make_leaf(CA, "fallback.example")
OLD = certs.make_leaf(
    CA, "old.example", not_before=certs.NOW - 30 * certs.DAY, not_after=certs.NOW - certs.DAY
)


def pair(issued: certs.Issued) -> Dict[str, bytes]:
    return {"tls.crt": issued.cert_pem, "tls.key": issued.key_pem}


def ingress(name: str, tls: str, namespace: str = "default", kind: str = "IngressRoute") -> str:
    match = "HostSNI(`*`)" if kind == "IngressRouteTCP" else "Host(`%s.example`)" % name
    return (
        "apiVersion: traefik.io/v1alpha1\n"
        "kind: %s\n"
        "metadata: {name: %s, namespace: %s}\n"
        "spec:\n"
        "  routes:\n"
        "    - match: %s\n"
        "      services: [{name: app, port: 80}]\n"
        "  tls: %s\n" % (kind, name, namespace, match, tls)
    )


def tls_option(name: str, spec: str, namespace: str = "default") -> str:
    return (
        "apiVersion: traefik.io/v1alpha1\n"
        "kind: TLSOption\n"
        "metadata: {name: %s, namespace: %s}\n"
        "spec: %s\n" % (name, namespace, spec)
    )


def tls_store(name: str, spec: str, namespace: str = "default") -> str:
    return (
        "apiVersion: traefik.io/v1alpha1\n"
        "kind: TLSStore\n"
        "metadata: {name: %s, namespace: %s}\n"
        "spec: %s\n" % (name, namespace, spec)
    )


def build(*files: Tuple[str, List[str]]) -> TLSBuild:
    texts = [(name, "---\n".join(documents)) for name, documents in files]
    loaded = load_files(None, texts)
    parse_errors = [e for e in loaded.errors if e.file != "tsproxy.yaml"]
    assert not parse_errors, parse_errors
    return build_tls(loaded.resources)


SECRETS = (
    "secrets.yaml",
    [
        certs.secret_yaml("www", pair(WWW)),
        certs.secret_yaml("wild", pair(WILD)),
        certs.secret_yaml("db", pair(DB), namespace="data"),
        certs.secret_yaml("fallback", pair(FALLBACK)),
        certs.secret_yaml("broken", {"tls.crt": b"nope", "tls.key": WWW.key_pem}),
        certs.secret_yaml("old", pair(OLD)),
    ],
)


class BuildTests(SynchronousTestCase):
    """build_tls: what goes in the store, the options, and the located problems."""

    def test_certificates_and_default(self) -> None:
        """Route secrets (HTTP and TCP) and the default store's list are served by SNI; the
        store's defaultCertificate is the fallback."""
        result = build(
            SECRETS,
            (
                "routes.yaml",
                [
                    ingress("www", "{secretName: www}"),
                    ingress(
                        "db", "{secretName: db, passthrough: false}", "data", "IngressRouteTCP"
                    ),
                    tls_store(
                        "default",
                        "{defaultCertificate: {secretName: fallback}, certificates: [{secretName: wild}]}",
                    ),
                ],
            ),
        )
        self.assertEqual((result.errors, result.warnings), ((), ()))
        manager = result.manager
        self.assertEqual(manager.names(), ("*.apps.example", "db.example", "www.example"))
        self.assertEqual(
            [c.source for c in manager.certificates()], ["default/www", "data/db", "default/wild"]
        )
        self.assertEqual(manager.default_certificate.source, "default/fallback")

    def test_generated_default(self) -> None:
        """Without a default TLSStore the generated TRAEFIK DEFAULT CERT is the fallback."""
        manager = build(SECRETS, ("r.yaml", [ingress("www", "{secretName: www}")])).manager
        self.assertIs(manager.default_certificate, generated_default_certificate())
        self.assertEqual(manager.default_certificate.subject_cn, DEFAULT_CERT_CN)

    def test_problems(self) -> None:
        """Each broken reference or resource gives one located error (or warning)."""
        result = build(
            SECRETS,
            (
                "routes.yaml",
                [
                    ingress("a", "{secretName: missing}"),
                    ingress("b", "{secretName: broken}"),
                    ingress("c", "{secretName: broken, options: {name: nothere}}"),
                    ingress("d", "{options: {name: default}}"),
                    ingress("e", "{secretName: old, options: {name: bad}}"),
                    ingress("f", "{secretName: db}"),
                    tls_option("bad", "{cipherSuites: [TLS_NOPE]}"),
                    tls_store("default", "{defaultCertificate: {secretName: gone}}"),
                    tls_store("other", "{certificates: [{secretName: www}]}"),
                    ingress("g", "{options: {name: other-x@kubernetescrd}}"),
                ],
            ),
        )
        self.assertEqual(
            [str(e) for e in result.errors],
            [
                "routes.yaml:55: TLSOption default/bad: spec.cipherSuites: invalid CipherSuite: TLS_NOPE",
                "routes.yaml:1: IngressRoute default/a: spec.tls.secretName: secret default/missing does not exist",
                "secrets.yaml:41: Secret default/broken: tls: failed to find any PEM data in certificate input",
                "routes.yaml:19: IngressRoute default/c: spec.tls.options: unknown TLS options: default-nothere@kubernetescrd",
                "routes.yaml:28: IngressRoute default/d: spec.tls.options: unknown TLS options: default-default@kubernetescrd (the TLSOption named default serves routes without tls.options)",
                "routes.yaml:46: IngressRoute default/f: spec.tls.secretName: secret default/db does not exist",
                "routes.yaml:60: TLSStore default/default: spec.defaultCertificate.secretName: secret default/gone does not exist",
                "routes.yaml:70: IngressRoute default/g: spec.tls.options: unknown TLS options: other-x@kubernetescrd",
            ],
        )
        self.assertEqual(
            [str(w) for w in result.warnings],
            [
                "secrets.yaml:51: Secret default/old: certificate for old.example expired on %s"
                % OLD.cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M:%S UTC")
            ],
        )
        manager = result.manager
        self.assertEqual(manager.names(), ("old.example",))
        self.assertIs(manager.default_certificate, generated_default_certificate())
        self.assertEqual(
            manager.option_problem(ObjectRef("bad", "default")),
            "building TLS config for default-bad@kubernetescrd: spec.cipherSuites: invalid CipherSuite: TLS_NOPE",
        )
        self.assertEqual(
            manager.option_problem(ObjectRef("nothere", "default")),
            "unknown TLS options: default-nothere@kubernetescrd",
        )
        self.assertIsNone(manager.option_problem(None))
        self.assertEqual(manager.option_names(), ("default",))

    def test_line_numbers(self) -> None:
        """Errors point at the document of the resource, in a multi-document file."""
        result = build(
            SECRETS,
            ("r.yaml", [ingress("a", "{secretName: www}"), ingress("b", "{secretName: zz}")]),
        )
        (error,) = result.errors
        self.assertEqual((error.file, error.line), ("r.yaml", 10))

    def test_default_option(self) -> None:
        """A TLSOption named default in one namespace replaces the built-in default."""
        manager = build(
            ("o.yaml", [tls_option("default", "{minVersion: VersionTLS13}", "infra")])
        ).manager
        settings = manager.option_settings(None)
        assert settings is not None
        self.assertEqual((settings.name, settings.min_version), ("default", SSL.TLS1_3_VERSION))
        self.assertEqual(manager.option_names(), ("default",))

    def test_several_default_options(self) -> None:
        """TLSOptions named default in two namespaces: errors at both, the built-in default."""
        result = build(
            (
                "o.yaml",
                [
                    tls_option("default", "{minVersion: VersionTLS13}", "a"),
                    tls_option("default", "{minVersion: VersionTLS13}", "b"),
                    tls_option("modern", "{minVersion: VersionTLS13}", "b"),
                ],
            )
        )
        self.assertEqual(
            [str(e) for e in result.errors],
            [
                "o.yaml:1: TLSOption a/default: TLSOption named default defined in several namespaces (a, b): all are ignored",
                "o.yaml:6: TLSOption b/default: TLSOption named default defined in several namespaces (a, b): all are ignored",
            ],
        )
        settings = result.manager.option_settings(None)
        assert settings is not None
        self.assertEqual(settings.min_version, SSL.TLS1_2_VERSION)
        self.assertEqual(result.manager.option_names(), ("b-modern", "default"))

    def test_broken_default_option(self) -> None:
        """A broken TLSOption named default leaves routes on the default options unusable."""
        result = build(("o.yaml", [tls_option("default", "{cipherSuites: [NOPE]}")]))
        manager = result.manager
        self.assertIsNone(manager.option_settings(None))
        self.assertEqual(
            manager.option_problem(None),
            "building TLS config for default: spec.cipherSuites: invalid CipherSuite: NOPE",
        )
        self.assertIsNone(manager.server_creator("www.example"))

    def test_several_default_stores(self) -> None:
        """TLSStores named default in two namespaces: errors, and the generated default."""
        result = build(
            SECRETS,
            (
                "s.yaml",
                [
                    tls_store("default", "{defaultCertificate: {secretName: fallback}}"),
                    tls_store("default", "{defaultCertificate: {secretName: fallback}}", "x"),
                ],
            ),
        )
        self.assertEqual(len(result.errors), 2)
        self.assertIn(
            "TLSStore named default defined in several namespaces (default, x)",
            str(result.errors[0]),
        )
        self.assertIs(result.manager.default_certificate, generated_default_certificate())

    def test_expiry_uses_now(self) -> None:
        """Which certificates count as expired depends on the given time."""
        texts = [
            (SECRETS[0], "---\n".join(SECRETS[1])),
            ("r.yaml", ingress("old", "{secretName: old}")),
        ]
        resources = load_files(None, texts).resources
        earlier = certs.NOW - 10 * certs.DAY
        self.assertEqual(build_tls(resources, now=earlier).warnings, ())
        self.assertEqual(len(build_tls(resources, now=certs.NOW).warnings), 1)


class CreatorTests(SynchronousTestCase):
    """TLSManager.server_creator: certificate per SNI, option, ALPN mode; cached contexts."""

    def setUp(self) -> None:
        self.result = build(
            SECRETS,
            (
                "r.yaml",
                [
                    ingress("www", "{secretName: www, options: {name: strict}}"),
                    ingress("apps", "{secretName: wild}"),
                    tls_option("strict", "{sniStrict: true}"),
                    tls_store("default", "{defaultCertificate: {secretName: fallback}}"),
                ],
            ),
        )
        self.assertEqual(self.result.errors, ())
        self.manager = self.result.manager

    def test_choice(self) -> None:
        """(SNI, option) -> source of the presented certificate, or None (refused)."""
        strict = ObjectRef("strict", "default")
        rows: List[Tuple[str, Optional[ObjectRef], Optional[str]]] = [
            ("www.example", None, "default/www"),
            ("WWW.example", strict, "default/www"),
            ("x.apps.example", None, "default/wild"),
            ("x.apps.example", strict, "default/wild"),
            ("a.b.apps.example", None, "default/fallback"),
            ("unknown.example", None, "default/fallback"),
            ("unknown.example", strict, None),
            ("", strict, None),
            ("www.example", ObjectRef("nothere", "default"), None),
        ]
        for sni, option, expected in rows:
            with self.subTest(sni=sni, option=option):
                creator = self.manager.server_creator(sni, option)
                self.assertEqual(None if creator is None else creator.certificate.source, expected)

    def test_interface(self) -> None:
        """A creator provides IOpenSSLServerConnectionCreator and makes fresh connections."""
        creator = self.manager.server_creator("www.example")
        assert creator is not None
        self.assertTrue(verifyObject(IOpenSSLServerConnectionCreator, creator))
        first = creator.serverConnectionForTLS(None)
        second = creator.serverConnectionForTLS(None)
        self.assertIsInstance(first, SSL.Connection)
        self.assertIsNot(first, second)
        self.assertIs(first.get_context(), creator.context)
        self.assertEqual(creator.option, "default")

    def test_cached(self) -> None:
        """One context per (certificate, option, ALPN mode), made on first use only."""
        made: List[Tuple[str, str, bool]] = []
        real = manager_module.make_context

        def counting(settings, cert, http11_only=False):  # type: ignore[no-untyped-def]
            made.append((cert.source, settings.name, http11_only))
            return real(settings, cert, http11_only)

        self.patch(manager_module, "make_context", counting)
        strict = ObjectRef("strict", "default")
        for _ in range(3):
            a = self.manager.server_creator("www.example")
            self.manager.server_creator("other.apps.example")
            self.manager.server_creator("x.apps.example")
            self.manager.server_creator("www.example", strict)
            b = self.manager.server_creator("www.example", None, alpn_http11_only=True)
        assert a is not None and b is not None
        self.assertIsNot(a.context, b.context)
        self.assertEqual(
            made,
            [
                ("default/www", "default", False),
                ("default/wild", "default", False),
                ("default/www", "default-strict", False),
                ("default/www", "default", True),
            ],
        )

    def test_many_certificates(self) -> None:
        """Building 100 certificates makes no context; each SNI then costs one."""
        issued = [certs.make_leaf(CA, "h%d.example" % i) for i in range(100)]
        secrets = [certs.secret_yaml("c%d" % i, pair(item)) for i, item in enumerate(issued)]
        routes = [ingress("r%d" % i, "{secretName: c%d}" % i) for i in range(100)]
        made: List[str] = []
        real = manager_module.make_context

        def counting(settings, cert, http11_only=False):  # type: ignore[no-untyped-def]
            made.append(cert.source)
            return real(settings, cert, http11_only)

        self.patch(manager_module, "make_context", counting)
        result = build(("s.yaml", secrets), ("r.yaml", routes))
        self.assertEqual(result.errors, ())
        self.assertEqual(len(result.manager.names()), 100)
        self.assertEqual(made, [])
        creator = result.manager.server_creator("h42.example")
        assert creator is not None
        self.assertEqual(made, ["default/c42"])

    def test_local_ip(self) -> None:
        """Without SNI, a certificate whose IP SAN is the local address is chosen."""
        ip = certs.make_leaf(CA, "ip", ips=["127.0.0.1"])
        result = build(
            ("s.yaml", [certs.secret_yaml("ip", pair(ip))]),
            ("r.yaml", [ingress("a", "{secretName: ip}")]),
        )
        creator = result.manager.server_creator("", None, local_ip="127.0.0.1")
        assert creator is not None
        self.assertEqual(creator.certificate.source, "default/ip")
        other = result.manager.server_creator("", None, local_ip="127.0.0.2")
        assert other is not None
        self.assertEqual(other.certificate.subject_cn, DEFAULT_CERT_CN)

    def test_option_name(self) -> None:
        """Traefik's option names: default, or <namespace>-<name>."""
        self.assertEqual(self.manager.option_name(None), "default")
        self.assertEqual(self.manager.option_name(ObjectRef("strict", "default")), "default-strict")
        self.assertEqual(self.manager.option_names(), ("default", "default-strict"))
