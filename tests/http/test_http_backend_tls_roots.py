"""A ServersTransport's own CAs, client certificates and peerCertURI towards https backends
(tsproxy.http.backend_tls), through a running proxy with real TLS backends: the CRD forms
(rootCAs, rootCAsSecrets, certificatesSecrets, peerCertURI) and the file provider's
(rootCAs paths or PEM, certificates, peerCertURI); mirrors to https servers; and the located
errors that disable what uses a transport whose Secret, file or PEM is missing or bad."""

from __future__ import annotations

import os
import textwrap
from typing import Any, Dict, List, Tuple

from twisted.internet import defer, reactor, task, threads
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.certs import Issued, make_ca, make_leaf, secret_yaml
from tests.http.test_http_backend_tls import raw_get
from tests.http.test_http_healthcheck import _Table, until
from tests.proxyfixture import ProxyTestCase
from tsproxy.balance.health import HealthCheckSpec
from tsproxy.config.fileformat import parse_dynamic_files
from tsproxy.config.load import load_files
from tsproxy.config.resources import TransportSettings
from tsproxy.http.backend_tls import client_options, peer_identity_problem, pool_key
from tsproxy.http.healthcheck import HealthMonitor
from tsproxy.runtime.build import build_table
from tsproxy.runtime.services import LoadBalancer, LoadBalancerDef, Server

CA = make_ca("backend CA")
OTHER_CA = make_ca("other CA")
CLIENT_CA = make_ca("client CA")
URI = "spiffe://cluster.test/ns/backend"
LEAF = make_leaf(CA, "backend.test", dns=["backend.test"], ips=["127.0.0.1"], uris=[URI])
CLIENT = make_leaf(CLIENT_CA, "proxy", client=True)
#: A client certificate the mTLS backend does not trust.
STRANGER = make_leaf(OTHER_CA, "stranger", client=True)


class _Recorder(Protocol):
    """An HTTP/1.1 backend answering 200 ``tls`` to every request; heads are recorded."""

    buf = b""

    def connectionMade(self) -> None:
        self.factory.conns.append(self)  # type: ignore[attr-defined]

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.conns.remove(self)  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.factory.heads.append(head)  # type: ignore[attr-defined]
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\ntls")  # type: ignore[union-attr]


def _server_options(client_ca: Any = None) -> Any:
    """TLS server options with LEAF; with ``client_ca``: a client certificate it issued is
    required."""
    from OpenSSL import crypto

    extra: Dict[str, Any] = {}
    if client_ca is not None:
        extra = {
            "verify": True,
            "requireCertificate": True,
            "caCerts": [crypto.X509.from_cryptography(client_ca.cert)],
        }
    return CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(LEAF.key),
        certificate=crypto.X509.from_cryptography(LEAF.cert),
        acceptableProtocols=[b"http/1.1"],
        **extra,
    )


def _pem(issued: Issued) -> Dict[str, bytes]:
    return {"tls.crt": issued.cert_pem, "tls.key": issued.key_pem}


TRANSPORTS = {
    "roots": "{serverName: backend.test, rootCAs: [{secret: ca}]}",
    "roots-ip": "{rootCAsSecrets: [ca-only]}",
    "wrong": "{rootCAs: [{secret: other-ca}]}",
    "mtls": "{rootCAs: [{secret: ca}], certificatesSecrets: [client]}",
    "stranger": "{rootCAs: [{secret: ca}], certificatesSecrets: [stranger]}",
    "uri-ok": "{rootCAsSecrets: [ca], peerCertURI: '%s'}" % URI.upper().replace("SPIFFE", "spiffe"),
    "uri-bad": "{rootCAsSecrets: [ca], peerCertURI: 'spiffe://cluster.test/ns/other'}",
    "uri-skip": "{insecureSkipVerify: true, rootCAsSecrets: [other-ca], peerCertURI: '%s'}" % URI,
    "skip": "{insecureSkipVerify: true}",
    "missing": "{rootCAsSecrets: [nope]}",
    "bad": "{rootCAsSecrets: [bad-ca]}",
    "cm": "{serverName: backend.test, rootCAs: [{configMap: ca}]}",
    "cm-missing": "{rootCAs: [{configMap: nope}]}",
}

#: (host, service, transport, expected status). "none": no serversTransport (system CAs).
CASES = [
    ("roots", "plain", "roots", 200),
    ("roots-ip", "plain", "roots-ip", 200),
    ("none", "plain", "", 502),
    ("wrong", "plain", "wrong", 502),
    ("mtls", "mtls", "mtls", 200),
    ("mtls-nocert", "mtls", "roots", 502),
    ("mtls-stranger", "mtls", "stranger", 502),
    ("uri-ok", "plain", "uri-ok", 200),
    ("uri-bad", "plain", "uri-bad", 502),
    ("uri-skip", "plain", "uri-skip", 502),
    ("missing", "plain", "missing", 404),
    ("bad", "plain", "bad", 404),
    ("cm", "plain", "cm", 200),
    ("cm-missing", "plain", "cm-missing", 404),
]


def _crd_config(ports: Dict[str, int]) -> str:
    docs = [
        secret_yaml("ca", {"tls.ca": CA.cert_pem}, kind="Opaque"),
        secret_yaml("ca-only", {"whatever": CA.cert_pem}, kind="Opaque"),
        secret_yaml("other-ca", {"ca.crt": OTHER_CA.cert_pem}, kind="Opaque"),
        secret_yaml("bad-ca", {"ca.crt": b"not a certificate"}, kind="Opaque"),
        secret_yaml("client", _pem(CLIENT)),
        secret_yaml("stranger", _pem(STRANGER)),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca}\ndata:\n  ca.crt: |\n"
        + textwrap.indent(CA.cert_pem.decode(), "    "),
    ]
    for name, spec in TRANSPORTS.items():
        docs.append(
            "apiVersion: traefik.io/v1alpha1\nkind: ServersTransport\n"
            "metadata: {name: %s}\nspec: %s\n" % (name, spec)
        )
    routes = []
    for host, service, transport, _ in CASES:
        extra = ", serversTransport: %s" % transport if transport else ""
        routes.append(
            "    - match: Host(`%s.test`)\n      kind: Rule\n"
            "      services: [{name: %s, port: 443, scheme: https%s}]\n" % (host, service, extra)
        )
    for transport in ("roots", "skip", "wrong"):
        routes.append(
            "    - match: Host(`mirror-%s.test`)\n      kind: Rule\n"
            "      services: [{name: mirrored-%s, kind: TraefikService}]\n" % (transport, transport)
        )
        docs.append(
            "apiVersion: traefik.io/v1alpha1\nkind: TraefikService\n"
            "metadata: {name: mirrored-%s}\nspec:\n  mirroring:\n"
            "    name: plain\n    port: 443\n    scheme: https\n    serversTransport: roots\n"
            "    mirrors: [{name: copies, port: 443, scheme: https, percent: 100,"
            " serversTransport: %s}]\n" % (transport, transport)
        )
    docs.append(
        "apiVersion: traefik.io/v1alpha1\nkind: IngressRoute\nmetadata: {name: secure}\n"
        "spec:\n  entryPoints: [web]\n  routes:\n" + "".join(routes)
    )
    for name, port in ports.items():
        docs.append(
            "apiVersion: v1\nkind: Service\nmetadata: {name: %s}\n"
            "spec: {ports: [{name: https, port: 443}]}\n" % name
        )
        docs.append(
            "apiVersion: v1\nkind: Endpoints\nmetadata: {name: %s}\nsubsets:\n"
            "  - addresses: [{ip: 127.0.0.1}]\n    ports: [{name: https, port: %d}]\n"
            % (name, port)
        )
    return "---\n".join(docs)


class _Backends(ProxyTestCase):
    """TLS backends with LEAF: plain, requiring a CLIENT_CA client certificate, and one
    receiving mirror copies."""

    def listen(self, name: str, client_ca: Any = None) -> int:
        factory = Factory.forProtocol(_Recorder)
        factory.heads = []  # type: ignore[attr-defined]
        factory.conns = self.conns  # type: ignore[attr-defined]
        port = reactor.listenSSL(0, factory, _server_options(client_ca), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.heads[name] = factory.heads  # type: ignore[attr-defined]
        return int(port.getHost().port)

    def setUp(self) -> None:
        super().setUp()
        self.heads: Dict[str, List[bytes]] = {}
        self.conns: List[Any] = []
        self.addCleanup(self._closed)
        self.ports = {
            "plain": self.listen("plain"),
            "mtls": self.listen("mtls", CLIENT_CA),
            "copies": self.listen("copies"),
        }

    @defer.inlineCallbacks
    def _closed(self) -> Any:
        """After the proxy stopped: close what it left open to the backends, wait for it."""
        for conn in list(self.conns):
            conn.transport.loseConnection()
        yield until(lambda: not self.conns)

    def status(self, host: str) -> Any:
        assert self.service is not None
        head = b"GET /x HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host.encode()
        d = threads.deferToThread(raw_get, self.service.port_of("web"), head)
        return d.addCallback(lambda raw: int(raw.split(b" ", 2)[1]))


class CRDTransportTests(_Backends):
    """The CRD ServersTransport's TLS fields through a running proxy."""

    def setUp(self) -> None:
        super().setUp()
        self.use_seed_config()
        self.write("secure.yaml", _crd_config(self.ports))
        self.start_proxy()

    @defer.inlineCallbacks
    def test_statuses(self) -> None:
        """Each transport's answer: verified against its own CAs (200), the system's or the
        wrong ones (502); the mTLS backend with the client certificate (200), without or
        with one it does not trust (502); peerCertURI matching ignoring case (200) or not
        (502; with insecureSkipVerify its chain is still checked); a missing Secret, bad PEM
        or a missing configMap: the route is disabled (404); a configMap's CA (200)."""
        got = []
        for host, _service, _transport, _expected in CASES:
            status = yield self.status("%s.test" % host)
            got.append((host, status))
        self.assertEqual(got, [(case[0], case[3]) for case in CASES])

    @defer.inlineCallbacks
    def test_mirrors(self) -> None:
        """A mirror copy to an https server goes through the mirror's transport: rootCAs and
        insecureSkipVerify deliver it; the wrong CA does not (the main answer is 200 in every
        case)."""
        for transport, delivered in (("roots", 1), ("skip", 2), ("wrong", 2)):
            status = yield self.status("mirror-%s.test" % transport)
            self.assertEqual(status, 200)
            assert self.service is not None and self.service.mirrors is not None
            yield self.service.mirrors.idle()
            yield until(lambda n=delivered: len(self.heads["copies"]) >= n)  # type: ignore[misc]
            self.assertEqual(len(self.heads["copies"]), delivered, transport)
        self.assertEqual(self.service.mirrors.failed, 1)


FILE_STATIC = """\
entryPoints:
  web:
    address: "127.0.0.1:0"
providers:
  file: {directory: dynamic, watch: false}
log:
  level: ERROR
"""


class FileTransportTests(_Backends):
    """The file provider's serversTransports TLS fields through a running proxy."""

    def setUp(self) -> None:
        super().setUp()
        files = {"ca.pem": CA.cert_pem, "client.pem": CLIENT.cert_pem, "client.key": CLIENT.key_pem}
        for name, data in files.items():
            with open(os.path.join(self.config_dir, name), "wb") as f:
                f.write(data)
        inline = textwrap.indent(CA.cert_pem.decode(), " " * 10)
        where = "."  # relative paths: to the configuration directory
        plain, mtls = self.ports["plain"], self.ports["mtls"]
        other = OTHER_CA.cert_pem.decode().replace("\n", "\\n")  # a one-line YAML string
        dynamic = f"""\
http:
  routers:
    roots: {{rule: Host(`roots.test`), service: roots}}
    inline: {{rule: Host(`inline.test`), service: inline}}
    wrong: {{rule: Host(`wrong.test`), service: wrong}}
    mtls: {{rule: Host(`mtls.test`), service: mtls}}
    nocert: {{rule: Host(`nocert.test`), service: nocert}}
    uri: {{rule: Host(`uri.test`), service: uri}}
  services:
    roots: {{loadBalancer: {{servers: [{{url: "https://127.0.0.1:{plain}"}}], serversTransport: roots}}}}
    inline: {{loadBalancer: {{servers: [{{url: "https://127.0.0.1:{plain}"}}], serversTransport: inline}}}}
    wrong: {{loadBalancer: {{servers: [{{url: "https://127.0.0.1:{plain}"}}], serversTransport: wrong}}}}
    mtls: {{loadBalancer: {{servers: [{{url: "https://127.0.0.1:{mtls}"}}], serversTransport: mtls}}}}
    nocert: {{loadBalancer: {{servers: [{{url: "https://127.0.0.1:{mtls}"}}], serversTransport: roots}}}}
    uri: {{loadBalancer: {{servers: [{{url: "https://127.0.0.1:{plain}"}}], serversTransport: uri}}}}
  serversTransports:
    roots: {{rootCAs: ["{where}/ca.pem"]}}
    inline:
      serverName: backend.test
      rootCAs:
        - |
{inline}
    wrong: {{rootCAs: ["{other}"]}}
    mtls:
      rootCAs: ["{where}/ca.pem"]
      certificates: [{{certFile: "{where}/client.pem", keyFile: "{where}/client.key"}}]
    uri: {{rootCAs: ["{where}/ca.pem"], peerCertURI: "spiffe://cluster.test/ns/other"}}
"""
        os.makedirs(os.path.join(self.config_dir, "dynamic"))
        self.write("dynamic/d.yaml", dynamic)
        self.write("tsproxy.yaml", FILE_STATIC)
        self.start_proxy()

    @defer.inlineCallbacks
    def test_statuses(self) -> None:
        """rootCAs as a path or as PEM (200), the wrong CA (502), the client certificate
        (200) or none (502), a peerCertURI the certificate does not carry (502)."""
        cases = [
            ("roots", 200),
            ("inline", 200),
            ("wrong", 502),
            ("mtls", 200),
            ("nocert", 502),
            ("uri", 502),
        ]
        got = []
        for host, _ in cases:
            status = yield self.status("%s.test" % host)
            got.append((host, status))
        self.assertEqual(got, cases)


BACKEND = """\
apiVersion: v1
kind: Service
metadata: {name: app, namespace: ns}
spec: {ports: [{name: https, port: 443}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: app, namespace: ns}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{name: https, port: 9443}]}]
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: r, namespace: ns}
spec:
  entryPoints: [web]
  routes:
    - match: Host(`a`)
      services: [{name: app, port: 443, scheme: https, serversTransport: st}]
"""
STATIC = 'entryPoints:\n  web:\n    address: ":8000"\n'


class ErrorTests(SynchronousTestCase):
    """Where a transport's TLS material cannot be used, the error says where and why."""

    def crd(self, spec: str, secrets: str = "") -> Tuple[List[str], Any]:
        transport = (
            "---\napiVersion: traefik.io/v1alpha1\nkind: ServersTransport\n"
            "metadata: {name: st, namespace: ns}\nspec: %s\n" % spec
        )
        loaded = load_files(STATIC, [("app.yaml", BACKEND + transport + secrets)])
        self.assertEqual(loaded.errors, ())
        result = build_table(loaded, None, None)
        assert result.table is not None
        return [str(e) for e in result.errors], result.table

    def test_crd(self) -> None:
        """A missing Secret, a Secret without a certificate, a client Secret without its key,
        a Secret of another namespace, a missing or CA-less configMap, an unsupported field:
        the route is disabled, the error located at the route (naming the transport's place)."""
        bad = secret_yaml("bad", {"ca.crt": b"junk"}, namespace="ns", kind="Opaque")
        half = secret_yaml("half", {"tls.crt": CLIENT.cert_pem}, namespace="ns")
        elsewhere = secret_yaml("ca", {"ca.crt": CA.cert_pem}, namespace="other", kind="Opaque")
        at = "app.yaml:18: IngressRoute ns/r: serversTransport st (at app.yaml:20): "
        cases = [
            ("{rootCAsSecrets: [nope]}", "", at + "secret ns/nope not found"),
            (
                "{rootCAs: [{secret: bad}]}",
                "---\n" + bad,
                at + "invalid certificate(s) in secret ns/bad: no valid PEM certificate found",
            ),
            (
                "{certificatesSecrets: [half]}",
                "---\n" + half,
                at + "secret ns/half is missing the following TLS data entries: tls.key",
            ),
            ("{rootCAsSecrets: [ca]}", "---\n" + elsewhere, at + "secret ns/ca not found"),
            ("{rootCAs: [{configMap: ca}]}", "", at + "configMap ns/ca not found"),
            (
                "{rootCAs: [{configMap: cm}]}",
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: ns}\n"
                "data: {other: x, more: y}\n",
                at + "configMap ns/cm contains neither tls.ca nor ca.crt",
            ),
            (
                "{minVersion: VersionTLS13}",
                "",
                "app.yaml:18: IngressRoute ns/r: serversTransport st: minVersion not supported"
                " yet (backend TLS would be weaker than configured)",
            ),
        ]
        for spec, secrets, error in cases:
            with self.subTest(spec=spec):
                errors, table = self.crd(spec, secrets)
                self.assertEqual(errors, [error])
                self.assertEqual(table.routers, ())

    def test_crdSettings(self) -> None:
        """The Secrets' PEM reaches the servers' settings: a CA from tls.ca, a client key
        pair, peerCertURI."""
        secrets = "---\n" + secret_yaml("ca", {"tls.ca": CA.cert_pem}, "ns", "Opaque")
        secrets += "---\n" + secret_yaml("client", _pem(CLIENT), "ns")
        spec = "{rootCAsSecrets: [ca], certificatesSecrets: [client], peerCertURI: u:x}"
        errors, table = self.crd(spec, secrets)
        self.assertEqual(errors, [])
        server = table.routers[0].service.definition.servers[0]
        self.assertEqual(
            server.transport,
            TransportSettings(
                root_cas=(CA.cert_pem,),
                certificates=((CLIENT.cert_pem, CLIENT.key_pem),),
                peer_cert_uri="u:x",
            ),
        )

    def test_crdSchema(self) -> None:
        """rootCAs entries name exactly one of secret and configMap."""
        for spec, message in (
            ("{rootCAs: [{secret: a, configMap: b}]}", "secret and configMap are mutually"),
            ("{rootCAs: [{}]}", "one of secret or configMap is required"),
        ):
            text = BACKEND + (
                "---\napiVersion: traefik.io/v1alpha1\nkind: ServersTransport\n"
                "metadata: {name: st, namespace: ns}\nspec: %s\n" % spec
            )
            loaded = load_files(STATIC, [("app.yaml", text)])
            self.assertEqual(len(loaded.errors), 1)
            self.assertIn("spec.rootCAs[0]: " + message, str(loaded.errors[0]))

    def test_file(self) -> None:
        """A file that cannot be read, bad PEM, a key not matching its certificate, a field
        still unsupported: located errors at the transport's key."""
        files = {"ca.pem": CA.cert_pem, "junk.pem": b"junk", "client.pem": CLIENT.cert_pem}
        files["other.key"] = STRANGER.key_pem

        def read(path: str) -> bytes:
            if path not in files:
                raise FileNotFoundError(2, "No such file or directory")
            return files[path]

        cases = [
            (
                "{rootCAs: [ca.pem, gone.pem]}",
                "d.yml:3: serversTransport st: http.serversTransports.st.rootCAs: [1]: cannot"
                " read gone.pem: No such file or directory",
            ),
            (
                "{rootCAs: [junk.pem]}",
                "d.yml:3: serversTransport st: http.serversTransports.st.rootCAs: [0]: no valid"
                " PEM certificate found",
            ),
            (
                "{certificates: [{certFile: client.pem, keyFile: other.key}]}",
                "d.yml:3: serversTransport st: http.serversTransports.st.certificates[0]: tls:"
                " private key does not match public key",
            ),
            (
                "{rootCAs: [ca.pem], minVersion: VersionTLS13}",
                "d.yml:3: serversTransport st: http.serversTransports.st.minVersion: TLS"
                " towards the servers is not supported yet",
            ),
        ]
        for spec, error in cases:
            with self.subTest(spec=spec):
                text = "http:\n  serversTransports:\n    st: %s\n" % spec
                config, errors, _ = parse_dynamic_files([("d.yml", text)], read)
                self.assertEqual([str(e) for e in errors], [error])
                self.assertEqual(config.transports, ())

    def test_fileSettings(self) -> None:
        """A path and inline PEM become the settings' PEM; certificates and peerCertURI too."""
        files = {"ca.pem": CA.cert_pem, "client.pem": CLIENT.cert_pem, "c.key": CLIENT.key_pem}
        inline = textwrap.indent(OTHER_CA.cert_pem.decode(), " " * 10)
        text = (
            "http:\n  serversTransports:\n    st:\n      peerCertURI: u:x\n"
            "      certificates: [{certFile: client.pem, keyFile: c.key}]\n"
            "      rootCAs:\n        - ca.pem\n        - |\n" + inline
        )
        config, errors, _ = parse_dynamic_files([("d.yml", text)], files.__getitem__)
        self.assertEqual(errors, ())
        self.assertEqual(
            config.transports[0].settings,
            TransportSettings(
                root_cas=(CA.cert_pem, OTHER_CA.cert_pem),
                certificates=((CLIENT.cert_pem, CLIENT.key_pem),),
                peer_cert_uri="u:x",
            ),
        )

    def test_fileServiceCRDTransport(self) -> None:
        """A file service naming a CRD transport (``ns-st@kubernetescrd``) gets its CAs read
        from the Secret; a missing Secret or an unsupported field disables it there too."""
        secret = "---\n" + secret_yaml("ca", {"ca.crt": CA.cert_pem}, "ns", "Opaque")
        dynamic = (
            "http:\n  routers:\n    r: {rule: Host(`f`), service: s}\n  services:\n"
            "    s: {loadBalancer: {servers: [{url: 'https://127.0.0.1:9443'}],"
            " serversTransport: ns-st@kubernetescrd}}\n"
        )
        static = STATIC + "providers:\n  file: {filename: d.yml}\n  kubernetesCRD: {}\n"
        transport = (
            "---\napiVersion: traefik.io/v1alpha1\nkind: ServersTransport\n"
            "metadata: {name: st, namespace: ns}\nspec: %s\n"
        )
        cases = [
            ("{rootCAsSecrets: [ca]}", secret, ""),
            ("{rootCAsSecrets: [ca]}", "", "secret ns/ca not found"),
            ("{minVersion: VersionTLS13}", "", "minVersion not supported yet"),
        ]
        for spec, secrets, error in cases:
            with self.subTest(spec=spec):
                text = BACKEND + transport % spec + secrets
                loaded = load_files(static, [("app.yaml", text)], dynamic=[("d.yml", dynamic)])
                result = build_table(loaded)
                assert result.table is not None
                errors = [str(e) for e in loaded.errors + result.errors]
                served = [r for r in result.table.routers if r.name == "r@file"]
                if not error:
                    self.assertEqual(errors, [])
                    server = served[0].service.definition.servers[0]
                    self.assertEqual(server.transport.root_cas, (CA.cert_pem,))
                else:
                    self.assertEqual(served, [])
                    at = "d.yml:5: service s: serversTransport ns-st@kubernetescrd"
                    self.assertTrue([e for e in errors if e.startswith(at) and error in e], errors)


class PeerIdentityTests(SynchronousTestCase):
    """The identity check of a verified leaf (tsproxy.http.backend_tls), table-driven."""

    def test_table(self) -> None:
        """(leaf, name checked, peerCertURI) → the problem's start, or None."""
        from OpenSSL import crypto

        leaf = crypto.X509.from_cryptography(LEAF.cert)
        bare = crypto.X509.from_cryptography(CLIENT.cert)
        mismatch = "peer certificate mismatches peerCertURI"
        cases = [
            (leaf, "backend.test", "", None),
            (leaf, "127.0.0.1", "", None),
            (leaf, "other.test", "", "certificate not valid for other.test"),
            (leaf, "127.0.0.2", "", "certificate not valid for 127.0.0.2"),
            (leaf, None, URI, None),
            (leaf, None, URI.upper(), None),
            (leaf, "backend.test", URI, None),
            (leaf, "other.test", URI, "certificate not valid for other.test"),
            (leaf, None, "spiffe://cluster.test/ns/other", mismatch),
            (bare, None, URI, mismatch),
        ]
        for cert, name, uri, expected in cases:
            with self.subTest(name=name, uri=uri):
                problem = peer_identity_problem(cert, name, uri)
                if expected is None:
                    self.assertIsNone(problem)
                else:
                    assert problem is not None
                    self.assertTrue(problem.startswith(expected), problem)

    def test_keys(self) -> None:
        """Settings differing only in CAs, client certificate or peerCertURI never share
        pooled connections nor a client creator."""
        base = TransportSettings()
        variants = [
            base,
            TransportSettings(root_cas=(CA.cert_pem,)),
            TransportSettings(root_cas=(OTHER_CA.cert_pem,)),
            TransportSettings(certificates=((CLIENT.cert_pem, CLIENT.key_pem),)),
            TransportSettings(peer_cert_uri=URI),
        ]
        keys = {pool_key(Server.at("https", "127.0.0.1", 443, t)) for t in variants}
        self.assertEqual(len(keys), len(variants))
        creators = {id(client_options("127.0.0.1", t, (b"http/1.1",))) for t in variants}
        self.assertEqual(len(creators), len(variants))
        again = client_options("127.0.0.1", variants[1], (b"http/1.1",))
        self.assertIs(again, client_options("127.0.0.1", variants[1], (b"http/1.1",)))


class HealthCheckTests(TestCase):
    """Active health checks of https servers verify them with the transport's CAs and
    present its client certificate, as the requests do."""

    def setUp(self) -> None:
        self.ports = {}
        for name, client_ca in (("plain", None), ("mtls", CLIENT_CA)):
            factory = Factory.forProtocol(_Recorder)
            factory.heads, factory.conns = [], []  # type: ignore[attr-defined]
            listening = reactor.listenSSL(
                0, factory, _server_options(client_ca), interface="127.0.0.1"
            )
            self.addCleanup(listening.stopListening)
            self.ports[name] = listening.getHost().port
        self.clock = task.Clock()
        self.monitor = HealthMonitor(reactor, self.clock, lambda *change: None)
        self.addCleanup(self.monitor.stop)

    @defer.inlineCallbacks
    def test_transport(self) -> None:
        """(server, settings) → UP or DOWN: the right CA (UP), the system's or the wrong one
        (DOWN); mTLS with the client certificate (UP), without (DOWN); peerCertURI."""
        roots = (CA.cert_pem,)
        client = ((CLIENT.cert_pem, CLIENT.key_pem),)
        table = [
            ("plain", TransportSettings(root_cas=roots), True),
            ("plain", TransportSettings(), False),
            ("plain", TransportSettings(root_cas=(OTHER_CA.cert_pem,)), False),
            ("mtls", TransportSettings(root_cas=roots, certificates=client), True),
            ("mtls", TransportSettings(root_cas=roots), False),
            ("plain", TransportSettings(root_cas=roots, peer_cert_uri=URI), True),
            ("plain", TransportSettings(root_cas=roots, peer_cert_uri=URI + "x"), False),
        ]
        got = []
        for name, settings, _ in table:
            spec = HealthCheckSpec("/ok")
            servers = (Server.at("https", "127.0.0.1", self.ports[name], settings),)
            node = LoadBalancer.build(LoadBalancerDef("svc", servers, health_check=spec))
            self.monitor.update(_Table(node))
            checker = self.monitor.checkers[node]
            self.clock.advance(spec.interval)
            yield until(lambda checker=checker: not checker.in_flight)  # type: ignore[misc]
            got.append(node.states.up(servers[0].url))
            self.monitor.update(_Table())
        self.assertEqual(got, [case[2] for case in table])


STATIC_DEFAULT = """\
entryPoints:
  web:
    address: "127.0.0.1:0"
providers:
  file: {directory: dynamic, watch: false}
  kubernetesCRD: {}
log:
  level: ERROR
"""


class StaticTransportTests(_Backends):
    """The static serversTransport section: Traefik's ``default@internal``, what the file
    provider's and the CRD provider's services, mirrors and health checks naming no
    serversTransport of their own use."""

    def start(self, section: str) -> None:
        """The proxy with ``section`` in its static file; services of both providers."""
        with open(os.path.join(self.config_dir, "ca.pem"), "wb") as f:
            f.write(CA.cert_pem)
        silent, _ = self.start_silent()
        plain, copies = self.ports["plain"], self.ports["copies"]
        other = OTHER_CA.cert_pem.decode().replace("\n", "\\n")  # a one-line YAML string
        dynamic = f"""\
http:
  routers:
    plain: {{rule: Host(`plain.test`), service: plain}}
    own-wrong: {{rule: Host(`own-wrong.test`), service: own-wrong}}
    own-roots: {{rule: Host(`own-roots.test`), service: own-roots}}
    named-default: {{rule: Host(`named-default.test`), service: named-default}}
    slow: {{rule: Host(`slow.test`), service: slow}}
  services:
    plain: {{loadBalancer: {{servers: [{{url: "https://127.0.0.1:{plain}"}}]}}}}
    own-wrong:
      loadBalancer: {{servers: [{{url: "https://127.0.0.1:{plain}"}}], serversTransport: wrong}}
    own-roots:
      loadBalancer: {{servers: [{{url: "https://127.0.0.1:{plain}"}}], serversTransport: roots}}
    named-default:
      loadBalancer:
        servers: [{{url: "https://127.0.0.1:{plain}"}}]
        serversTransport: default@internal
    slow: {{loadBalancer: {{servers: [{{url: "http://127.0.0.1:{silent}"}}]}}}}
  serversTransports:
    wrong: {{rootCAs: ["{other}"]}}
    roots: {{rootCAs: [ca.pem]}}
"""
        crd = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: crd}
spec:
  entryPoints: [web]
  routes:
    - match: Host(`crd.test`)
      kind: Rule
      services: [{name: plain, port: 443, scheme: https}]
    - match: Host(`mirror.test`)
      kind: Rule
      services: [{name: mirrored, kind: TraefikService}]
---
apiVersion: traefik.io/v1alpha1
kind: TraefikService
metadata: {name: mirrored}
spec:
  mirroring:
    name: plain
    port: 443
    scheme: https
    mirrors: [{name: copies, port: 443, scheme: https, percent: 100}]
"""
        for name, port in (("plain", plain), ("copies", copies)):
            crd += (
                "---\napiVersion: v1\nkind: Service\nmetadata: {name: %s}\n"
                "spec: {ports: [{name: https, port: 443}]}\n"
                "---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: %s}\nsubsets:\n"
                "  - addresses: [{ip: 127.0.0.1}]\n    ports: [{name: https, port: %d}]\n"
                % (name, name, port)
            )
        os.makedirs(os.path.join(self.config_dir, "dynamic"))
        self.write("dynamic/d.yaml", dynamic)
        self.write("crd.yaml", crd)
        self.write("tsproxy.yaml", STATIC_DEFAULT + section)
        self.start_proxy()

    @defer.inlineCallbacks
    def statuses(self, hosts: List[str]) -> Any:
        got = []
        for host in hosts:
            status = yield self.status("%s.test" % host)
            got.append((host, status))
        return got

    HOSTS = ["plain", "crd", "named-default", "own-wrong", "own-roots"]

    @defer.inlineCallbacks
    def test_none(self) -> None:
        """Without the section the default transport trusts the system's CAs only: the
        self-signed backend is refused (502) unless a service's own transport trusts it."""
        self.start("")
        got = yield self.statuses(self.HOSTS)
        expected = [502, 502, 502, 502, 200]
        self.assertEqual(got, list(zip(self.HOSTS, expected)))

    @defer.inlineCallbacks
    def test_insecure(self) -> None:
        """insecureSkipVerify: true serves every service without a transport of its own (file
        or CRD, or naming default@internal), and a mirror's copies reach an https server; a
        service's own transport still decides for it (explicit wins over the default)."""
        self.start("serversTransport:\n  insecureSkipVerify: true\n")
        got = yield self.statuses(self.HOSTS + ["mirror"])
        expected = [200, 200, 200, 502, 200, 200]
        self.assertEqual(got, list(zip(self.HOSTS + ["mirror"], expected)))
        assert self.service is not None and self.service.mirrors is not None
        yield self.service.mirrors.idle()
        yield until(lambda: len(self.heads["copies"]) >= 1)
        self.assertEqual((len(self.heads["copies"]), self.service.mirrors.failed), (1, 0))

    @defer.inlineCallbacks
    def test_root_cas(self) -> None:
        """rootCAs naming the CA file (relative to the configuration directory) verifies the
        backend against it; a mirror copy without that trust would have failed."""
        self.start("serversTransport:\n  rootCAs: [ca.pem]\n")
        got = yield self.statuses(self.HOSTS + ["mirror"])
        expected = [200, 200, 200, 502, 200, 200]
        self.assertEqual(got, list(zip(self.HOSTS + ["mirror"], expected)))
        assert self.service is not None and self.service.mirrors is not None
        yield self.service.mirrors.idle()
        yield until(lambda: len(self.heads["copies"]) >= 1)
        self.assertEqual(self.service.mirrors.failed, 0)

    @defer.inlineCallbacks
    def test_response_header_timeout(self) -> None:
        """forwardingTimeouts.responseHeaderTimeout of the default transport: a backend that
        never answers gets 504 after it."""
        self.start("serversTransport:\n  forwardingTimeouts: {responseHeaderTimeout: 200ms}\n")
        started = reactor.seconds()
        got = yield self.statuses(["slow"])
        self.assertEqual(got, [("slow", 504)])
        self.assertLess(reactor.seconds() - started, 5.0)

    @defer.inlineCallbacks
    def test_reload(self) -> None:
        """A reload applies a changed section; one naming a CA file that cannot be read is
        refused and the configuration in force stays."""
        self.start("serversTransport:\n  insecureSkipVerify: true\n")
        assert self.service is not None
        self.write("tsproxy.yaml", STATIC_DEFAULT + "serversTransport:\n  rootCAs: [gone.pem]\n")
        self.assertFalse(self.service.reload())
        got = yield self.statuses(["plain"])
        self.assertEqual(got, [("plain", 200)])
        self.write("tsproxy.yaml", STATIC_DEFAULT)
        self.assertTrue(self.service.reload())
        got = yield self.statuses(["plain"])
        self.assertEqual(got, [("plain", 502)])
