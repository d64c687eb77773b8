"""Tests for tsproxy.tls.options: TLSOption fields read into settings (errors and warnings
included), Go's ALPN negotiation, and server contexts checked by in-memory handshakes with
Python's ssl client."""

from __future__ import annotations

import ssl
from typing import Any, Dict, List, Optional, Tuple

from OpenSSL import SSL
from OpenSSL._util import lib as _lib
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests import certs
from tests.tlsclient import client_context, memory_handshake
from tsproxy.config.resources import Secret, TLSOption
from tsproxy.tls.certs import certificate_from_secret, load_key_pair
from tsproxy.tls.options import (
    DEFAULT_ALPN,
    DEFAULT_CIPHERS,
    DEFAULT_SETTINGS,
    ALPNMismatch,
    TLSSettings,
    make_context,
    negotiate_alpn,
    server_alpn,
    settings_from_option,
)

CURVES_SETTABLE = hasattr(_lib, "SSL_CTX_set1_curves_list")
CA = certs.make_ca()
CLIENT_CA = certs.make_ca("client CA")
SERVER = certs.make_leaf(CA, "tls.example", dns=["tls.example"])
CERT = load_key_pair(SERVER.cert_pem, SERVER.key_pem, "default/tls")
CLIENT = certs.make_leaf(CLIENT_CA, "client one", client=True)
STRANGER = certs.make_leaf(certs.make_ca("stranger CA"), "stranger", client=True)
SECRETS: Dict[Tuple[str, str], Secret] = {
    ("default", "client-ca"): certs.tls_secret("client-ca", data={"ca.crt": CLIENT_CA.cert_pem}),
    ("default", "no-ca"): certs.tls_secret("no-ca", data={"a": b"1", "b": b"2"}),
}
TLS10, TLS12, TLS13 = ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


def option(**fields: Any) -> TLSOption:
    return TLSOption(certs.meta("TLSOption", "default", "opt", "options.yaml", 3), **fields)


def read(**fields: Any) -> Tuple[Optional[TLSSettings], List[str], List[str]]:
    settings, errors, warnings = settings_from_option(option(**fields), SECRETS, "default-opt")
    return settings, [str(e) for e in errors], [str(w) for w in warnings]


class SettingsTests(SynchronousTestCase):
    """settings_from_option: Traefik's defaults, Go names mapped, located errors."""

    def test_defaults(self) -> None:
        """An empty TLSOption gets TLS 1.2+, Go's default suites and ALPN, no client auth."""
        settings, errors, warnings = read()
        assert settings is not None
        self.assertEqual((errors, warnings), ([], []))
        self.assertEqual(settings.name, "default-opt")
        self.assertEqual(
            (settings.min_version, settings.max_version, settings.ciphers, settings.alpn),
            (SSL.TLS1_2_VERSION, 0, DEFAULT_CIPHERS, DEFAULT_ALPN),
        )
        self.assertEqual(settings.client_auth, "NoClientCert")
        self.assertEqual(DEFAULT_SETTINGS.alpn, ("h2", "http/1.1", "acme-tls/1"))

    def test_fields(self) -> None:
        """Each field, as written in YAML, and what the settings hold."""
        rows: List[Tuple[Dict[str, Any], Dict[str, Any]]] = [
            ({"min_version": "VersionTLS13"}, {"min_version": SSL.TLS1_3_VERSION}),
            (
                {"min_version": "VersionTLS10", "max_version": "VersionTLS11"},
                {"min_version": SSL.TLS1_VERSION, "max_version": SSL.TLS1_1_VERSION},
            ),
            (
                {
                    "cipher_suites": (
                        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
                        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                        "TLS_AES_128_GCM_SHA256",
                    )
                },
                {
                    "ciphers": "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305",
                    "min_version": SSL.TLS1_2_VERSION,
                },
            ),
            (
                {"cipher_suites": ("TLS_AES_256_GCM_SHA384",)},
                {"ciphers": DEFAULT_CIPHERS, "min_version": SSL.TLS1_3_VERSION},
            ),
            (
                {"curve_preferences": ("CurveP384", "secp384r1", "X25519")},
                # Without the binding (Debian's PyPy pyOpenSSL) curves are left out, warned.
                {"curves": ("P-384", "X25519") if CURVES_SETTABLE else ()},
            ),
            ({"alpn_protocols": ("http/1.1",)}, {"alpn": ("http/1.1",)}),
            ({"alpn_protocols": ()}, {"alpn": ()}),
            (
                {"sni_strict": True, "disable_session_tickets": True},
                {"sni_strict": True, "disable_session_tickets": True},
            ),
            (
                {"client_auth_secrets": ("client-ca",)},
                {"client_auth": "RequireAndVerifyClientCert", "client_cas": (CLIENT_CA.cert,)},
            ),
            (
                {"client_auth_type": "RequireAnyClientCert"},
                {"client_auth": "RequireAnyClientCert", "client_cas": ()},
            ),
            (
                {
                    "client_auth_type": "VerifyClientCertIfGiven",
                    "client_auth_secrets": ("client-ca",),
                },
                {"client_auth": "VerifyClientCertIfGiven"},
            ),
        ]
        for fields, expected in rows:
            with self.subTest(fields=fields):
                settings, errors, warnings = read(**fields)
                self.assertEqual(errors, [])
                assert settings is not None
                self.assertEqual({name: getattr(settings, name) for name in expected}, expected)

    def test_errors(self) -> None:
        """A broken option gives no settings and located errors in Traefik's words."""
        where = "options.yaml:3: TLSOption default/opt: "
        rows: List[Tuple[Dict[str, Any], List[str]]] = [
            (
                {"cipher_suites": ("TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_NOPE")},
                ["spec.cipherSuites: invalid CipherSuite: TLS_NOPE"],
            ),
            (
                {"cipher_suites": ("TLS_RSA_WITH_RC4_128_SHA",)},
                [
                    "spec.cipherSuites: none of these cipher suites is available in this OpenSSL: RC4-SHA"
                ],
            ),
            (
                {"curve_preferences": ("P-256",)},
                ["spec.curvePreferences: invalid CurveID in curvePreferences: P-256"],
            ),
            (
                {"client_auth_type": "RequireAndVerifyClientCert"},
                [
                    "spec.clientAuth: invalid clientAuthType: RequireAndVerifyClientCert, CAFiles is required"
                ],
            ),
            (
                {"client_auth_type": "VerifyClientCertIfGiven", "client_auth_secrets": ("no-ca",)},
                [
                    "spec.clientAuth.secretNames: secret default/no-ca contains neither tls.ca nor ca.crt",
                    "spec.clientAuth: invalid clientAuthType: VerifyClientCertIfGiven, CAFiles is required",
                ],
            ),
        ]
        for fields, messages in rows:
            with self.subTest(fields=fields):
                settings, errors, _ = read(**fields)
                self.assertIsNone(settings)
                self.assertEqual(errors, [where + message for message in messages])

    def test_warnings(self) -> None:
        """A missing CA secret is skipped with a warning (as Traefik does); so is max < min."""
        settings, errors, warnings = read(
            client_auth_secrets=("gone", "client-ca"), max_version="VersionTLS11"
        )
        self.assertIsNotNone(settings)
        self.assertEqual(errors, [])
        self.assertEqual(
            warnings,
            [
                "options.yaml:3: TLSOption default/opt: spec.clientAuth.secretNames: secret default/gone does not exist",
                "options.yaml:3: TLSOption default/opt: spec.maxVersion: VersionTLS11 is below the minimum version VersionTLS12, every handshake fails",
            ],
        )


class ALPNTests(SynchronousTestCase):
    """negotiate_alpn (Go's negotiateALPN) and server_alpn."""

    def test_table(self) -> None:
        """(server list, client list) -> protocol, "" for none, or a failed handshake."""
        rows: List[Tuple[Tuple[str, ...], Tuple[str, ...], Optional[str]]] = [
            (DEFAULT_ALPN, ("h2", "http/1.1"), "h2"),
            (DEFAULT_ALPN, ("http/1.1", "h2"), "h2"),
            (DEFAULT_ALPN, ("http/1.1",), "http/1.1"),
            (DEFAULT_ALPN, (), ""),
            ((), ("h2",), ""),
            (("h2",), ("http/1.1",), ""),
            (("http/1.1", "acme-tls/1"), ("h2",), None),
            (DEFAULT_ALPN, ("spdy/3",), None),
            (("http/1.1",), ("h2", "http/1.1"), "http/1.1"),
        ]
        for server, client, expected in rows:
            with self.subTest(server=server, client=client):
                if expected is None:
                    error = self.assertRaises(ALPNMismatch, negotiate_alpn, server, client)
                    self.assertEqual(
                        error.message,
                        "tls: client requested unsupported application protocols (%s)"
                        % ", ".join(client),
                    )
                else:
                    self.assertEqual(negotiate_alpn(server, client), expected)

    def test_http11_only(self) -> None:
        """The HTTP/1.1-only mode drops h2 and keeps the rest in order."""
        self.assertEqual(server_alpn(DEFAULT_SETTINGS), DEFAULT_ALPN)
        self.assertEqual(server_alpn(DEFAULT_SETTINGS, True), ("http/1.1", "acme-tls/1"))


def settings(**fields: Any) -> TLSSettings:
    built, errors, _ = settings_from_option(option(**fields), SECRETS, "default-opt")
    assert built is not None, errors
    return built


class ContextTests(SynchronousTestCase):
    """make_context: handshakes with Python's ssl client through memory buffers."""

    def test_handshakes(self) -> None:
        """(option fields, client settings, http11_only) -> what the client negotiated."""
        rows: List[Tuple[Dict[str, Any], Dict[str, Any], bool, Dict[str, Any]]] = [
            ({}, {}, False, {"version": "TLSv1.3", "alpn": None, "cn": "tls.example"}),
            ({}, {"alpn": ("h2", "http/1.1")}, False, {"alpn": "h2"}),
            ({}, {"alpn": ("h2", "http/1.1")}, True, {"alpn": "http/1.1"}),
            ({}, {"alpn": ("http/1.1",)}, False, {"alpn": "http/1.1"}),
            (
                {"alpn_protocols": ("http/1.1",)},
                {"alpn": ("h2", "http/1.1")},
                False,
                {"alpn": "http/1.1"},
            ),
            ({"alpn_protocols": ()}, {"alpn": ("h2",)}, False, {"alpn": None}),
            ({}, {"maximum": TLS12}, False, {"version": "TLSv1.2"}),
            ({"max_version": "VersionTLS12"}, {}, False, {"version": "TLSv1.2"}),
            (
                {"min_version": "VersionTLS10"},
                {"minimum": TLS10, "maximum": TLS10, "ciphers": "DEFAULT:@SECLEVEL=0"},
                False,
                {"version": "TLSv1"},
            ),
            (
                {"cipher_suites": ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",)},
                {"maximum": TLS12},
                False,
                {"version": "TLSv1.2", "cipher": "ECDHE-ECDSA-AES256-GCM-SHA384"},
            ),
            ({"curve_preferences": ("CurveP384",)}, {}, False, {"version": "TLSv1.3"}),
            ({"disable_session_tickets": True}, {}, False, {"version": "TLSv1.3"}),
            ({"client_auth_type": "RequestClientCert"}, {}, False, {"version": "TLSv1.3"}),
            (
                {"client_auth_secrets": ("client-ca",)},
                {"client_cert": CLIENT},
                False,
                {"version": "TLSv1.3"},
            ),
            (
                {
                    "client_auth_type": "VerifyClientCertIfGiven",
                    "client_auth_secrets": ("client-ca",),
                },
                {},
                False,
                {"version": "TLSv1.3"},
            ),
            (
                {"client_auth_type": "RequireAnyClientCert"},
                {"client_cert": STRANGER},
                False,
                {"version": "TLSv1.3"},
            ),
        ]
        for fields, client, http11_only, expected in rows:
            with self.subTest(fields=fields, client=client, http11_only=http11_only):
                context = make_context(settings(**fields), CERT, http11_only)
                seen = memory_handshake(context, client_context(**client), "tls.example")
                self.assertEqual(seen.error, "")
                self.assertEqual({name: getattr(seen, name) for name in expected}, expected)

    def test_refusals(self) -> None:
        """(option fields, client settings) whose handshake fails, and the server's reason."""
        rows: List[Tuple[Dict[str, Any], Dict[str, Any], str]] = [
            ({"min_version": "VersionTLS13"}, {"maximum": TLS12}, "unsupported protocol"),
            ({"max_version": "VersionTLS12"}, {"minimum": TLS13}, "unsupported protocol"),
            (
                {},
                {"minimum": TLS10, "maximum": TLS10, "ciphers": "DEFAULT:@SECLEVEL=0"},
                "unsupported protocol",
            ),
            (
                {"alpn_protocols": ("http/1.1",)},
                {"alpn": ("h2",)},
                "client requested unsupported application protocols (h2)",
            ),
            (
                {"cipher_suites": ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",)},
                {"maximum": TLS12},
                "no shared cipher",
            ),
            ({"client_auth_secrets": ("client-ca",)}, {}, "peer did not return a certificate"),
            ({"client_auth_type": "RequireAnyClientCert"}, {}, "peer did not return a certificate"),
            (
                {"client_auth_secrets": ("client-ca",)},
                {"client_cert": STRANGER},
                "certificate verify failed",
            ),
            (
                {
                    "client_auth_type": "VerifyClientCertIfGiven",
                    "client_auth_secrets": ("client-ca",),
                },
                {"client_cert": STRANGER},
                "certificate verify failed",
            ),
            (
                {"client_auth_secrets": ("client-ca",)},
                {"client_cert": SERVER},
                "certificate verify failed",
            ),
        ]
        for fields, client, reason in rows:
            with self.subTest(fields=fields, client=client):
                context = make_context(settings(**fields), CERT)
                seen = memory_handshake(context, client_context(**client), "tls.example")
                self.assertNotEqual(seen.error, "")
                self.assertIn(reason, seen.server_error)

    def test_session_resumption(self) -> None:
        """Sessions resume (TLS 1.2 and 1.3) unless disableSessionTickets is set."""
        for fields, resumes in (({}, True), ({"disable_session_tickets": True}, False)):
            for maximum in (TLS12, TLS13):
                with self.subTest(fields=fields, maximum=maximum):
                    context = make_context(settings(**fields), CERT)
                    client = client_context(maximum=maximum)
                    first = memory_handshake(context, client, "tls.example")
                    self.assertEqual(first.error, "")
                    second = memory_handshake(context, client, "tls.example", first.session)
                    self.assertEqual((second.error, second.reused), ("", resumes))

    def test_chain_sent(self) -> None:
        """The intermediate certificates of tls.crt are sent after the leaf."""
        secret = certs.tls_secret("chain", SERVER, chain=(CA,))
        context = make_context(DEFAULT_SETTINGS, certificate_from_secret(secret))
        client, error = openssl_handshake(context, SSL.Context(SSL.TLS_METHOD))
        self.assertEqual(error, "")
        chain = client.get_peer_cert_chain(as_cryptography=True)
        self.assertEqual(chain, [SERVER.cert, CA.cert])

    def test_curves(self) -> None:
        """curvePreferences limits the key exchange groups: a client with none of them fails."""
        if not CURVES_SETTABLE:
            raise SkipTest("this pyOpenSSL has no SSL_CTX_set1_curves_list (Debian's PyPy)")
        for server_curves, client_curves, ok in [
            (("CurveP384",), b"X25519", False),
            (("CurveP384",), b"P-384", True),
            (("X25519", "CurveP256"), b"P-256", True),
        ]:
            with self.subTest(server=server_curves, client=client_curves):
                context = make_context(settings(curve_preferences=server_curves), CERT)
                client_context = SSL.Context(SSL.TLS_METHOD)
                self.assertEqual(
                    _lib.SSL_CTX_set1_curves_list(client_context._context, client_curves), 1
                )
                _, error = openssl_handshake(context, client_context)
                self.assertEqual(error == "", ok, error)


def openssl_handshake(
    server_context: SSL.Context, client_context: SSL.Context
) -> Tuple[SSL.Connection, str]:
    """A pyOpenSSL client and server through memory buffers: (client, server error)."""
    server = SSL.Connection(server_context, None)
    server.set_accept_state()
    client = SSL.Connection(client_context, None)
    client.set_connect_state()
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except SSL.WantReadError:
                pass
            except SSL.Error as exc:
                return client, repr(exc)
        for source, sink in ((client, server), (server, client)):
            try:
                sink.bio_write(source.bio_read(65536))
            except SSL.WantReadError:
                pass
    return client, ""
