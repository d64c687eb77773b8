"""TLS on TCP entrypoints through a running proxy, with Python's ssl client: passthrough by
SNI (the client sees each backend's own certificate), termination for TCP routers and for
HTTPS routers (IngressRoute with tls), the default certificate, TLSOption versions."""

from __future__ import annotations

import socket
import ssl
from typing import Optional, Tuple

from OpenSSL import crypto
from twisted.internet import defer, reactor, threads
from twisted.internet.ssl import CertificateOptions

from tests.certs import Issued, make_ca, make_leaf, secret_yaml
from tests.proxyfixture import ENDPOINTS, SERVICE
from tests.tcpfixture import TCPProxyTestCase, route_tcp
from tests.tlsclient import client_context, describe
from tsproxy.testing import GreeterFactory
from tsproxy.tls import DEFAULT_CERT_CN

CA = make_ca()
ALPHA = make_leaf(CA, "alpha.test", dns=["alpha.test"])
BETA = make_leaf(CA, "beta.test", dns=["beta.test"])
FRONT = make_leaf(CA, "front.test", dns=["front.test", "web.test"])


def tls_session(
    port: int,
    sni: Optional[str],
    send: bytes = b"",
    context: Optional[ssl.SSLContext] = None,
    until: bytes = b"",
) -> Tuple[str, str, bytes]:
    """Handshake with ``sni``, send, read until closed or ``until`` arrived: (certificate
    CN, ALPN, bytes read)."""
    context = context or client_context()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=sni) as sock:
            _, cn = describe(sock.getpeercert(binary_form=True))
            alpn = sock.selected_alpn_protocol() or ""
            got = b""
            if send:
                sock.sendall(send)
            else:
                got += sock.recv(65536)  # the greeting, then leave
                return cn, alpn, got
            while True:
                try:
                    chunk = sock.recv(65536)
                except ssl.SSLError:
                    break
                if not chunk:
                    break
                got += chunk
                if until and until in got:
                    break
            return cn, alpn, got


def backend_tls_options(issued: Issued) -> CertificateOptions:
    return CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(issued.key),
        certificate=crypto.X509.from_cryptography(issued.cert),
    )


class TLSRoutingTests(TCPProxyTestCase):
    def start_tls_greeter(self, name: str, issued: Issued) -> int:
        port = reactor.listenSSL(
            0, GreeterFactory(name), backend_tls_options(issued), interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        return int(port.getHost().port)

    def secret(self, name: str, issued: Issued) -> None:
        self.docs.append(secret_yaml(name, {"tls.crt": issued.cert_pem, "tls.key": issued.key_pem}))

    def web_route(self, tls: str) -> str:
        port = self.start_app("web-app")
        self.docs.append(SERVICE.format(name="web-app"))
        self.docs.append(ENDPOINTS.format(name="web-app", port=port))
        return (
            "apiVersion: traefik.io/v1alpha1\nkind: IngressRoute\nmetadata: {name: web}\n"
            "spec:\n  routes:\n    - match: Host(`web.test`)\n      services:\n"
            "        - {name: web-app, port: 80}\n" + (f"  tls: {tls}\n" if tls else "")
        )

    @defer.inlineCallbacks
    def test_passthroughBySNI(self) -> None:
        """Each SNI reaches its own TLS backend untouched: the client sees that backend's
        certificate and greeting."""
        self.backend("alpha", self.start_tls_greeter("alpha", ALPHA))
        self.backend("beta", self.start_tls_greeter("beta", BETA))
        port = self.start_tcp_proxy(
            route_tcp("alpha", "HostSNI(`alpha.test`)", ["alpha"], tls="{passthrough: true}"),
            route_tcp("beta", "HostSNI(`beta.test`)", ["beta"], tls="{passthrough: true}"),
        )
        for sni in ("alpha.test", "beta.test", "alpha.test"):
            cn, _, got = yield threads.deferToThread(tls_session, port, sni)
            self.assertEqual(cn, sni)
            self.assertEqual(got, b"HELLO " + sni.split(".")[0].encode() + b"\r\n")

    @defer.inlineCallbacks
    def test_terminateForTCP(self) -> None:
        """tls.secretName: the proxy ends TLS with the Secret's certificate and relays the
        plaintext; an SNI no router takes gets the default certificate."""
        self.backend("plain", self.start_greeter("plain"))
        self.secret("front-cert", FRONT)
        port = self.start_tcp_proxy(
            route_tcp("front", "HostSNI(`front.test`)", ["plain"], tls="{secretName: front-cert}")
        )
        cn, _, got = yield threads.deferToThread(
            tls_session, port, "front.test", b"ping", None, b"ping"
        )
        self.assertEqual(cn, "front.test")
        self.assertTrue(got.startswith(b"HELLO plain\r\nping"), got)
        self.assertEqual(self.greeters["plain"].received, [b"ping"])
        cn, _, got = yield threads.deferToThread(
            tls_session,
            port,
            "other.test",
            b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n",
            None,
            b"not found",
        )
        self.assertEqual(cn, DEFAULT_CERT_CN)
        self.assertTrue(got.startswith(b"HTTP/1.1 404 "), got)

    @defer.inlineCallbacks
    def test_httpsRouter(self) -> None:
        """An IngressRoute with tls is served over TLS by the HTTP engine (ALPN http/1.1,
        X-Forwarded-Proto https) and not over plain HTTP."""
        self.secret("front-cert", FRONT)
        port = self.start_tcp_proxy(self.web_route("{secretName: front-cert}"))
        request = b"GET /headers HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n"
        context = client_context(alpn=["h2", "http/1.1"])
        cn, alpn, got = yield threads.deferToThread(tls_session, port, "web.test", request, context)
        self.assertEqual((cn, alpn), ("front.test", "http/1.1"))
        self.assertTrue(got.startswith(b"HTTP/1.1 200 OK\r\n"), got[:300])
        self.assertIn(b"x-forwarded-proto: https", got.lower())
        plain = yield threads.deferToThread(_plain_http, port, b"web.test")
        self.assertTrue(plain.startswith(b"HTTP/1.1 404 "), plain)

    @defer.inlineCallbacks
    def test_tlsOptionVersions(self) -> None:
        """tls.options names a TLSOption: minVersion TLS 1.3 refuses a TLS 1.2 client."""
        self.backend("plain", self.start_greeter("plain"))
        self.secret("front-cert", FRONT)
        self.docs.append(
            "apiVersion: traefik.io/v1alpha1\nkind: TLSOption\nmetadata: {name: modern}\n"
            "spec: {minVersion: VersionTLS13}\n"
        )
        port = self.start_tcp_proxy(
            route_tcp(
                "front",
                "HostSNI(`front.test`)",
                ["plain"],
                tls="{secretName: front-cert, options: {name: modern}}",
            )
        )
        old = client_context(maximum=ssl.TLSVersion.TLSv1_2)
        failure = yield self.assertFailure(
            threads.deferToThread(tls_session, port, "front.test", b"x", old),
            ssl.SSLError,
            ConnectionResetError,
        )
        self.assertTrue(failure)
        cn, _, got = yield threads.deferToThread(
            tls_session, port, "front.test", b"ping", None, b"ping"
        )
        self.assertEqual(cn, "front.test")
        self.assertTrue(got.startswith(b"HELLO plain\r\nping"), got)


def _plain_http(port: int, host: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
        got = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return got
            got += chunk


class SeedHTTPSTests(TCPProxyTestCase):
    """conf/websecure.yaml as shipped: the canary over HTTPS with the default certificate."""

    @defer.inlineCallbacks
    def test_canaryOverHTTPS(self) -> None:
        self.use_seed_config()
        service = self.start_proxy()
        port = service.port_of("websecure")
        host = "traefikservice-wrr.kubesre.lc"
        request = b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\nConnection: close\r\n\r\n"
        answers = []
        for _ in range(3):
            cn, alpn, got = yield threads.deferToThread(tls_session, port, host, request)
            self.assertEqual((cn, alpn), (DEFAULT_CERT_CN, ""))
            answers.append(got.rsplit(b"\r\n\r\n", 1)[1])
        self.assertEqual(answers, [b"Hello app-v2\n", b"Hello app-v1\n", b"Hello app-v2\n"])
