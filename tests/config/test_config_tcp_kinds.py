"""Tests for tsproxy.config.kinds, the kinds of TCP routing: IngressRouteTCP (both API groups),
TLSOption, TLSStore and Secret read into their values, and each mistake located."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.config.test_config_kinds import load, meta
from tsproxy.config.resources import (
    IngressRouteTCP,
    MiddlewareRef,
    ObjectRef,
    RouteTLS,
    Secret,
    TCPRoute,
    TCPServiceRef,
    TLSDomain,
    TLSOption,
    TLSStore,
)

GROUPS = ("traefik.io/v1alpha1", "traefik.containo.us/v1alpha1")

INGRESS_TCP = """\
apiVersion: {group}
kind: IngressRouteTCP
metadata: {{name: db, namespace: data}}
spec:
  entryPoints: [websecure, db]
  routes:
    - match: HostSNI(`db.example`)
      priority: 12
      syntax: v2
      middlewares:
        - name: limit
      services:
        - name: pg
          port: 5432
          weight: 3
          terminationDelay: 400
          proxyProtocol: {{}}
          nativeLB: true
        - name: pg-replica
          namespace: other
          port: postgres
          weight: 0
          terminationDelay: -1
          proxyProtocol: {{version: 1}}
          tls: true
          serversTransport: tcp-fast
    - match: HostSNI(`*`)
      services:
        - {{name: pg, port: 5432, proxyProtocol: }}
  tls:
    passthrough: true
    secretName: db-cert
    options: {{name: strict, namespace: tls}}
    store: {{name: default}}
    # certResolver would be refused (BAD_TCP_DOCUMENTS)
    domains:
      - main: db.example
        sans: [db2.example, db3.example]
      - main: other.example
  ingressClassName: traefik
"""


class IngressRouteTCPTests(SynchronousTestCase):
    """An IngressRouteTCP keeps every field, in both API groups, with defaults applied."""

    def test_everyField(self) -> None:
        """Routes with priority and syntax, refs by port number and name with weight,
        terminationDelay and proxyProtocol ({} and empty are version 2), and the TLS
        section; what is not acted on is a notice at its line."""
        for group in GROUPS:
            resources, errors, notices = load(INGRESS_TCP.format(group=group))
            self.assertEqual(errors, [], group)
            self.assertEqual(
                resources,
                (
                    IngressRouteTCP(
                        meta=meta("IngressRouteTCP", "db", namespace="data"),
                        entry_points=("websecure", "db"),
                        routes=(
                            TCPRoute(
                                match="HostSNI(`db.example`)",
                                line=7,
                                path="spec.routes[0]",
                                priority=12,
                                syntax="v2",
                                middlewares=(
                                    MiddlewareRef(
                                        "limit", "data", 11, "spec.routes[0].middlewares[0]", "data"
                                    ),
                                ),
                                services=(
                                    TCPServiceRef(
                                        name="pg",
                                        namespace="data",
                                        line=13,
                                        path="spec.routes[0].services[0]",
                                        port=5432,
                                        weight=3,
                                        termination_delay=400,
                                        proxy_protocol=2,
                                        native_lb=True,
                                    ),
                                    TCPServiceRef(
                                        name="pg-replica",
                                        namespace="other",
                                        line=19,
                                        path="spec.routes[0].services[1]",
                                        port="postgres",
                                        weight=0,
                                        cross_namespace=True,
                                        termination_delay=-1,
                                        proxy_protocol=1,
                                        tls=True,
                                        servers_transport="tcp-fast",
                                    ),
                                ),
                            ),
                            TCPRoute(
                                match="HostSNI(`*`)",
                                line=27,
                                path="spec.routes[1]",
                                services=(
                                    TCPServiceRef(
                                        name="pg",
                                        namespace="data",
                                        line=29,
                                        path="spec.routes[1].services[0]",
                                        port=5432,
                                        proxy_protocol=2,
                                    ),
                                ),
                            ),
                        ),
                        tls=RouteTLS(
                            secret_name="db-cert",
                            passthrough=True,
                            options=ObjectRef("strict", "tls"),
                            store=ObjectRef("default", "data"),
                            domains=(
                                TLSDomain("db.example", ("db2.example", "db3.example")),
                                TLSDomain("other.example"),
                            ),
                        ),
                    ),
                ),
                group,
            )
            label = "wrr.yaml:{}: IngressRouteTCP data/db: "
            self.assertEqual(
                notices,
                [
                    label.format(40) + "spec.ingressClassName: not supported yet, ignored",
                ],
                group,
            )

    def test_defaults(self) -> None:
        """A minimal route: no entrypoints (all), priority 0 (the build computes it), weight
        1, terminationDelay 100 ms, no PROXY protocol, no TLS; no notices."""
        text = """\
        apiVersion: traefik.io/v1alpha1
        kind: IngressRouteTCP
        metadata: {name: redis}
        spec:
          routes:
            - match: HostSNI(`*`)
              services: [{name: redis, port: 6379}]
        """
        resources, errors, notices = load(text)
        self.assertEqual((errors, notices), ([], []))
        ref = TCPServiceRef("redis", "default", 7, "spec.routes[0].services[0]", 6379)
        self.assertEqual(
            resources,
            (
                IngressRouteTCP(
                    meta=meta("IngressRouteTCP", "redis"),
                    routes=(TCPRoute("HostSNI(`*`)", 6, "spec.routes[0]", (ref,)),),
                ),
            ),
        )
        self.assertEqual(
            (ref.weight, ref.termination_delay, ref.proxy_protocol, ref.tls), (1, 100, 0, False)
        )

    def test_tlsWithoutPassthrough(self) -> None:
        """``tls: {}`` is TLS termination with the default options and store."""
        text = """\
        apiVersion: traefik.io/v1alpha1
        kind: IngressRouteTCP
        metadata: {name: redis}
        spec:
          routes:
            - match: HostSNI(`redis.example`)
              services: [{name: redis, port: 6379}]
          tls: {}
        """
        resources, errors, _ = load(text)
        self.assertEqual(errors, [])
        self.assertEqual(resources[0].tls, RouteTLS())  # type: ignore[attr-defined]
        self.assertFalse(RouteTLS().passthrough)


class TLSOptionTests(SynchronousTestCase):
    """TLSOption: versions, suites, client authentication, ALPN and SNI strictness."""

    def test_everyField(self) -> None:
        """Every field read; preferServerCipherSuites is a notice (deprecated in Traefik)."""
        text = """\
        apiVersion: {group}
        kind: TLSOption
        metadata: {{name: strict, namespace: tls}}
        spec:
          minVersion: VersionTLS12
          maxVersion: VersionTLS13
          cipherSuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384]
          curvePreferences: [CurveP521, X25519]
          clientAuth:
            secretNames: [ca-a, ca-b]
            clientAuthType: RequireAndVerifyClientCert
          sniStrict: true
          alpnProtocols: [h2, http/1.1]
          disableSessionTickets: true
          preferServerCipherSuites: true
        """
        for group in GROUPS:
            resources, errors, notices = load(text.format(group=group))
            self.assertEqual(errors, [], group)
            self.assertEqual(
                resources,
                (
                    TLSOption(
                        meta=meta("TLSOption", "strict", namespace="tls"),
                        min_version="VersionTLS12",
                        max_version="VersionTLS13",
                        cipher_suites=(
                            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                            "TLS_AES_256_GCM_SHA384",
                        ),
                        curve_preferences=("CurveP521", "X25519"),
                        client_auth_type="RequireAndVerifyClientCert",
                        client_auth_secrets=("ca-a", "ca-b"),
                        sni_strict=True,
                        alpn_protocols=("h2", "http/1.1"),
                        disable_session_tickets=True,
                    ),
                ),
                group,
            )
            self.assertEqual(
                notices,
                [
                    "wrr.yaml:15: TLSOption tls/strict: spec.preferServerCipherSuites:"
                    " deprecated in Traefik, ignored"
                ],
            )

    def test_alpnAbsentOrEmpty(self) -> None:
        """No alpnProtocols means Traefik's default list (None); an empty list is empty."""
        head = "apiVersion: traefik.io/v1alpha1\nkind: TLSOption\nmetadata: {name: o}\nspec:\n"
        cases = [
            ("  minVersion: VersionTLS10\n", None),
            ("  alpnProtocols: []\n", ()),
            ("  alpnProtocols: [acme-tls/1]\n", ("acme-tls/1",)),
        ]
        for spec, expected in cases:
            resources, errors, notices = load(head + spec)
            self.assertEqual((errors, notices), ([], []), spec)
            self.assertEqual(resources[0].alpn_protocols, expected, spec)  # type: ignore[attr-defined]

    def test_defaults(self) -> None:
        """``spec: {}`` leaves every choice to the defaults ("" versions, no client auth)."""
        text = "apiVersion: traefik.io/v1alpha1\nkind: TLSOption\nmetadata: {name: o}\nspec: {}\n"
        resources, errors, _ = load(text)
        self.assertEqual((resources, errors), ((TLSOption(meta("TLSOption", "o")),), []))

    def test_versionsAndAuthTypes(self) -> None:
        """Each TLS version name and each client authentication type is accepted."""
        head = "apiVersion: traefik.io/v1alpha1\nkind: TLSOption\nmetadata: {name: o}\nspec:\n"
        for version in ("VersionTLS10", "VersionTLS11", "VersionTLS12", "VersionTLS13"):
            resources, errors, _ = load(head + f"  minVersion: {version}\n")
            self.assertEqual(errors, [])
            self.assertEqual(resources[0].min_version, version)  # type: ignore[attr-defined]
        for kind in (
            "NoClientCert",
            "RequestClientCert",
            "RequireAnyClientCert",
            "VerifyClientCertIfGiven",
            "RequireAndVerifyClientCert",
        ):
            resources, errors, _ = load(head + f"  clientAuth: {{clientAuthType: {kind}}}\n")
            self.assertEqual(errors, [])
            self.assertEqual(resources[0].client_auth_type, kind)  # type: ignore[attr-defined]


class TLSStoreTests(SynchronousTestCase):
    def test_default(self) -> None:
        """The default store: its default certificate and the listed certificates."""
        text = """\
        apiVersion: {group}
        kind: TLSStore
        metadata: {{name: default, namespace: tls}}
        spec:
          defaultCertificate: {{secretName: fallback}}
          certificates:
            - secretName: a-cert
            - secretName: b-cert
        """
        for group in GROUPS:
            resources, errors, notices = load(text.format(group=group))
            self.assertEqual((errors, notices), ([], []), group)
            self.assertEqual(
                resources,
                (
                    TLSStore(
                        meta("TLSStore", "default", namespace="tls"),
                        "fallback",
                        ("a-cert", "b-cert"),
                    ),
                ),
            )

    def test_otherNameAndGeneratedCert(self) -> None:
        """A store not named default is read with a notice (it does not take effect), and
        defaultGeneratedCert (ACME) is a notice."""
        text = """\
        apiVersion: traefik.io/v1alpha1
        kind: TLSStore
        metadata: {name: mine}
        spec:
          defaultGeneratedCert: {resolver: le}
        """
        resources, errors, notices = load(text)
        self.assertEqual((resources, errors), ((TLSStore(meta("TLSStore", "mine")),), []))
        self.assertEqual(
            notices,
            [
                "wrr.yaml:5: TLSStore default/mine: spec.defaultGeneratedCert: ACME resolvers"
                " are not supported; ignored",
                "wrr.yaml:3: TLSStore default/mine: metadata: only the TLSStore named default"
                " takes effect, as in Traefik",
            ],
        )


class SecretTests(SynchronousTestCase):
    def test_dataAndStringData(self) -> None:
        """data is base64-decoded, stringData taken as UTF-8 text and winning over data for
        the same key (as the API server merges them); the type is kept."""
        text = """\
        apiVersion: v1
        kind: Secret
        metadata: {name: cert, namespace: tls}
        type: kubernetes.io/tls
        data:
          tls.crt: LS0tLS1CRUdJTg==
          tls.key: AAEC/w==
          note: b2xk
        stringData:
          note: "néw"
          extra: plain
        """
        resources, errors, notices = load(text)
        self.assertEqual((errors, notices), ([], []))
        secret = Secret(
            meta("Secret", "cert", namespace="tls"),
            "kubernetes.io/tls",
            (
                ("tls.crt", b"-----BEGIN"),
                ("tls.key", b"\x00\x01\x02\xff"),
                ("note", "néw".encode()),
                ("extra", b"plain"),
            ),
        )
        self.assertEqual(resources, (secret,))
        self.assertEqual(
            (secret.get("tls.key"), secret.get("note"), secret.get("missing")),
            (b"\x00\x01\x02\xff", "néw".encode(), None),
        )

    def test_defaults(self) -> None:
        """No type is Opaque; no data is empty."""
        resources, errors, _ = load("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n")
        self.assertEqual((resources, errors), ((Secret(meta("Secret", "s")),), []))


TCP_HEAD = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRouteTCP
metadata: {name: db}
spec:
  routes:
    - match: HostSNI(`*`)
      services:
"""
OPTION_HEAD = "apiVersion: traefik.io/v1alpha1\nkind: TLSOption\nmetadata: {name: o}\nspec:\n"
STORE_HEAD = "apiVersion: traefik.io/v1alpha1\nkind: TLSStore\nmetadata: {name: default}\nspec:\n"
SECRET_HEAD = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
_SERVICE0 = "IngressRouteTCP default/db: spec.routes[0].services[0]"
_TLS_CHOICES = "must be one of: , VersionTLS10, VersionTLS11, VersionTLS12, VersionTLS13"

# (document text, exact error) for the TCP kinds; tests/service/test_check.py reports each too.
BAD_TCP_DOCUMENTS = [
    (
        TCP_HEAD + "        - {name: a, port: 5432}\n  tls: {certResolver: le}\n",
        "wrr.yaml:9: IngressRouteTCP default/db: spec.tls.certResolver: ACME certificate"
        " resolvers are not supported",
    ),
    (
        TCP_HEAD + "        - {name: a, port: 5432, proxyProtocol: {version: 3}}\n",
        f"wrr.yaml:8: {_SERVICE0}.proxyProtocol.version: must be an integer between 1 and 2",
    ),
    (
        TCP_HEAD + "        - {name: a, port: 5432, proxyProtocol: {version: 0}}\n",
        f"wrr.yaml:8: {_SERVICE0}.proxyProtocol.version: must be an integer between 1 and 2",
    ),
    (
        TCP_HEAD + "        - {name: a, port: 5432, proxyProtocol: {verison: 1}}\n",
        f"wrr.yaml:8: {_SERVICE0}.proxyProtocol.verison: unknown field",
    ),
    (
        TCP_HEAD + "        - {name: a, port: 5432, proxyProtocol: 2}\n",
        f"wrr.yaml:8: {_SERVICE0}.proxyProtocol: must be a mapping",
    ),
    (
        TCP_HEAD + "        - {name: a}\n",
        f"wrr.yaml:8: {_SERVICE0}.port: is required",
    ),
    (
        TCP_HEAD + "        - {port: 80}\n",
        f"wrr.yaml:8: {_SERVICE0}.name: is required",
    ),
    (
        TCP_HEAD + "        - {name: a, port: 80, weight: -1}\n",
        f"wrr.yaml:8: {_SERVICE0}.weight: must be an integer >= 0",
    ),
    (
        TCP_HEAD + "        - {name: a, port: 80, terminationDelay: 1s}\n",
        f"wrr.yaml:8: {_SERVICE0}.terminationDelay: must be an integer",
    ),
    (
        TCP_HEAD + "        - {name: a, port: 80, kind: TraefikService}\n",
        f"wrr.yaml:8: {_SERVICE0}.kind: unknown field",
    ),
    (
        TCP_HEAD + "        - {name: a, port: 80, tls: 'yes'}\n",
        f"wrr.yaml:8: {_SERVICE0}.tls: must be true or false",
    ),
    (
        TCP_HEAD.replace("      services:\n", "      kind: Rule\n      services: []\n"),
        "wrr.yaml:7: IngressRouteTCP default/db: spec.routes[0].kind: unknown field",
    ),
    (
        TCP_HEAD.replace("      services:\n", "      syntax: v1\n"),
        "wrr.yaml:7: IngressRouteTCP default/db: spec.routes[0].syntax: must be one of: , v2, v3",
    ),
    (
        TCP_HEAD.replace("      services:\n", "      priority: 9223372036854775807\n"),
        "wrr.yaml:7: IngressRouteTCP default/db: spec.routes[0].priority:"
        " must be an integer <= 9223372036854774807",
    ),
    (
        TCP_HEAD + "        - {name: a, port: 80}\n  tls: {passthrough: 'yes'}\n",
        "wrr.yaml:9: IngressRouteTCP default/db: spec.tls.passthrough: must be true or false",
    ),
    (
        TCP_HEAD + "        - {name: a, port: 80}\n  tls: {options: {namespace: x}}\n",
        "wrr.yaml:9: IngressRouteTCP default/db: spec.tls.options.name: is required",
    ),
    (
        TCP_HEAD + "        - {name: a, port: 80}\n  tls: {domains: [{sans: [b]}], secret: x}\n",
        "wrr.yaml:9: IngressRouteTCP default/db: spec.tls.secret: unknown field",
    ),
    (
        TCP_HEAD.replace("    - match: HostSNI(`*`)\n      services:\n", "    - services: []\n"),
        "wrr.yaml:6: IngressRouteTCP default/db: spec.routes[0].match: is required",
    ),
    (
        TCP_HEAD.replace("  routes:\n    - match: HostSNI(`*`)\n      services:\n", "  tls: {}\n"),
        "wrr.yaml:4: IngressRouteTCP default/db: spec.routes: is required",
    ),
    (
        OPTION_HEAD + "  minVersion: VersionTLS14\n",
        f"wrr.yaml:5: TLSOption default/o: spec.minVersion: {_TLS_CHOICES}",
    ),
    (
        OPTION_HEAD + "  maxVersion: TLS1.3\n",
        f"wrr.yaml:5: TLSOption default/o: spec.maxVersion: {_TLS_CHOICES}",
    ),
    (
        OPTION_HEAD + "  clientAuth: {clientAuthType: Always}\n",
        "wrr.yaml:5: TLSOption default/o: spec.clientAuth.clientAuthType: must be one of: ,"
        " NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven,"
        " RequireAndVerifyClientCert",
    ),
    (
        OPTION_HEAD + "  clientAuth: {caFiles: [a]}\n",
        "wrr.yaml:5: TLSOption default/o: spec.clientAuth.caFiles: unknown field",
    ),
    (
        OPTION_HEAD + "  sniStrict: maybe\n",
        "wrr.yaml:5: TLSOption default/o: spec.sniStrict: must be true or false",
    ),
    (
        OPTION_HEAD + "  alpnProtocols: h2\n",
        "wrr.yaml:5: TLSOption default/o: spec.alpnProtocols: must be a list",
    ),
    (
        STORE_HEAD + "  defaultCertificate: {}\n",
        "wrr.yaml:5: TLSStore default/default: spec.defaultCertificate.secretName: is required",
    ),
    (
        STORE_HEAD + "  certificates: [{secretName: a, stores: [x]}]\n",
        "wrr.yaml:5: TLSStore default/default: spec.certificates[0].stores: unknown field",
    ),
    (
        SECRET_HEAD + "data:\n  tls.crt: bm90IGJhc2U2NA\n",
        "wrr.yaml:5: Secret default/s: data.tls.crt: is not valid base64",
    ),
    (
        SECRET_HEAD + "data:\n  a: b2s=\n  tls.key: '*not*'\n",
        "wrr.yaml:6: Secret default/s: data.tls.key: is not valid base64",
    ),
    (
        SECRET_HEAD + "stringData:\n  a: [1]\n",
        "wrr.yaml:5: Secret default/s: stringData.a: must be a string",
    ),
]


class BadTCPDocumentTests(SynchronousTestCase):
    def test_table(self) -> None:
        """Every row gives its exact error (file:line: Kind ns/name: field: message) and no
        resource."""
        for text, expected in BAD_TCP_DOCUMENTS:
            resources, errors, _ = load(text)
            self.assertEqual((resources, errors), ((), [expected]), text)
