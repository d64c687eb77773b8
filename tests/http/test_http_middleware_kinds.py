"""The real middleware kinds end to end through a running proxy, with raw-socket clients:
forwardAuth against a real auth server (twisted.web), digestAuth challenge and response,
redirectScheme on a noop@internal route, CORS preflight, contentType autoDetect (the
engine's sniffing), customRequestHeaders X-Forwarded-For "" (no X-Forwarded-For sent),
passTLSClientCert over mutual TLS, and the same chain from file-provider YAML and TOML."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from typing import Any, Dict, List
from urllib.parse import unquote

from cryptography.hazmat.primitives import serialization
from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThread
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests import certs, proxyfixture
from tests.proxyfixture import ProxyTestCase, free_port
from tests.tlsclient import client_context
from tsproxy.middlewares import digestauth

STATIC = """\
entryPoints:
  web:
    address: "127.0.0.1:0"
log:
  level: ERROR
"""

BACKEND = """\
apiVersion: v1
kind: Service
metadata: {name: %(name)s}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: %(name)s}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{name: http, port: %(port)d}]}]
---
"""

HA1 = hashlib.md5(b"test:traefik:secret").hexdigest()

MIDDLEWARES = """\
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: fauth}
spec:
  forwardAuth:
    address: http://127.0.0.1:%(auth)d/check
    authResponseHeaders: [X-Auth-User]
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: fauth-body}
spec:
  forwardAuth:
    address: http://127.0.0.1:%(auth)d/check
    forwardBody: true
    maxBodySize: 10
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: fauth-down}
spec:
  forwardAuth: {address: "http://127.0.0.1:%(down)d/check"}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: digest}
spec:
  digestAuth: {users: ["test:traefik:%(ha1)s"]}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: to-https}
spec:
  redirectScheme: {scheme: https, permanent: true}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: cors}
spec:
  headers:
    accessControlAllowMethods: [GET, PUT]
    accessControlAllowOriginList: [https://site.example]
    accessControlMaxAge: 100
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: sniff}
spec:
  contentType: {}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: noxff}
spec:
  headers:
    customRequestHeaders: {X-Forwarded-For: ""}
"""


def ingress(name: str, host: str, middlewares: str, service: str = "app") -> str:
    kind = ", kind: TraefikService" if "@" in service else ", port: 80"
    return f"""\
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {{name: {name}}}
spec:
  entryPoints: [web]
  routes:
    - match: Host(`{host}`)
      middlewares: [{middlewares}]
      services: [{{name: {service}{kind}}}]
"""


ROUTES = (
    ingress("fa", "fa.example", "{name: fauth}")
    + ingress("fadown", "fadown.example", "{name: fauth-down}")
    + ingress("fabody", "fabody.example", "{name: fauth-body}")
    + ingress("dg", "digest.example", "{name: digest}")
    + ingress("redir", "redir.example", "{name: to-https}", "noop@internal")
    + ingress("cors", "cors.example", "{name: cors}")
    + ingress("sniff", "sniff.example", "{name: sniff}", "raw")
    + ingress("plainraw", "plainraw.example", "", "raw")
    + ingress("noxff", "noxff.example", "{name: noxff}")
)


class AuthServer(Resource):
    """The forwardAuth server: /check answers by the client's X-Test-Auth header."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: List[Dict[str, Any]] = []

    def render(self, request: Any) -> bytes:
        headers = {k.decode().lower(): v for k, v in request.requestHeaders.getAllRawHeaders()}
        headers["body"] = request.content.read()
        self.seen.append(headers)
        mode = request.getHeader(b"x-test-auth") or b"ok"
        if mode == b"ok":
            request.setHeader(b"X-Auth-User", b"alice")
            request.setHeader(b"X-Other", b"not copied")
            return b""
        if mode == b"deny":
            request.setResponseCode(401)
            request.setHeader(b"WWW-Authenticate", b'Bearer realm="auth"')
            request.setHeader(b"Content-Type", b"text/plain")
            return b"go away"
        request.setResponseCode(302)
        request.setHeader(b"Location", b"https://login.example/?r=1")
        return b"moved"


#: What the raw backend answers: an HTML body with no Content-Type, chunked.
RAW_BODY = b"<!DOCTYPE html><html><body>hi</body></html>"


class RawBackend(Protocol):
    """Answers each request head with RAW_BODY, no Content-Type, chunked."""

    def dataReceived(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(RAW_BODY), RAW_BODY)
            self.transport.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk)


def request(host: str, path: str = "/", method: str = "GET", extra: bytes = b"") -> bytes:
    return b"%s %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n" % (
        method.encode(),
        path.encode(),
        host.encode(),
        extra,
    )


def split(response: bytes) -> Any:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: Dict[str, List[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        headers.setdefault(name.lower(), []).append(value)
    return int(lines[0].split(" ")[1]), headers, body


class MiddlewareKindsTests(ProxyTestCase):
    """A proxy with routes using the real kinds, in front of real servers."""

    def setUp(self) -> None:
        super().setUp()
        self.auth = AuthServer()
        auth_port = reactor.listenTCP(0, Site(self.auth), interface="127.0.0.1")
        self.addCleanup(auth_port.stopListening)
        raw_port = reactor.listenTCP(0, Factory.forProtocol(RawBackend), interface="127.0.0.1")
        self.addCleanup(raw_port.stopListening)
        values = {
            "auth": auth_port.getHost().port,
            "down": free_port(),
            "ha1": HA1,
        }
        self.write("tsproxy.yaml", STATIC)
        backends = BACKEND % {"name": "app", "port": self.start_app("app")}
        backends += BACKEND % {"name": "raw", "port": raw_port.getHost().port}
        self.write("backend.yaml", backends)
        self.write("middlewares.yaml", MIDDLEWARES % values)
        self.write("routes.yaml", ROUTES)
        self.start_proxy()

    @defer.inlineCallbacks
    def exchange(self, payload: bytes) -> Any:
        assert self.service is not None
        port = self.service.port_of("web")
        raw = yield proxyfixture.raw_exchange(port, payload, False)
        return split(raw)

    def seen(self) -> List[dict]:
        return self.apps["app"].requests  # type: ignore[no-any-return]

    @defer.inlineCallbacks
    def test_forwardAuthAllows(self) -> None:
        """A 2xx from the auth server lets the request on with authResponseHeaders copied
        (a client's own value replaced); other auth headers are not."""
        status, _, body = yield self.exchange(
            request("fa.example", "/x", extra=b"X-Auth-User: mallory\r\n")
        )
        self.assertEqual((status, body), (200, b"Hello app\n"))
        (seen,) = self.seen()
        self.assertEqual(seen["headers"]["x-auth-user"], ["alice"])
        self.assertNotIn("x-other", seen["headers"])
        (asked,) = self.auth.seen
        self.assertEqual(asked["x-forwarded-uri"], [b"/x"])
        self.assertEqual(asked["x-forwarded-host"], [b"fa.example"])

    @defer.inlineCallbacks
    def test_forwardAuthAnswersAsIs(self) -> None:
        """401 and 302 from the auth server reach the client as they are; the backend is
        never asked."""
        status, headers, body = yield self.exchange(
            request("fa.example", extra=b"X-Test-Auth: deny\r\n")
        )
        self.assertEqual((status, body), (401, b"go away"))
        self.assertEqual(headers["www-authenticate"], ['Bearer realm="auth"'])
        self.assertEqual(headers["content-type"], ["text/plain"])
        status, headers, body = yield self.exchange(
            request("fa.example", extra=b"X-Test-Auth: move\r\n")
        )
        self.assertEqual((status, body), (302, b"moved"))
        self.assertEqual(headers["location"], ["https://login.example/?r=1"])
        self.assertEqual(self.seen(), [])

    @defer.inlineCallbacks
    def test_forwardAuthBody(self) -> None:
        """forwardBody: the auth server gets the request body (length or chunked), the
        backend the same bytes; past maxBodySize 401 and the backend is not asked."""
        sized = b"Content-Length: 5\r\n\r\nhello"
        chunked = b"Transfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"
        for framing in (sized, chunked):
            payload = request("fabody.example", "/echo", "POST").replace(b"\r\n\r\n", b"\r\n")
            status, _, body = yield self.exchange(payload + framing)
            self.assertEqual((status, body), (200, b"hello"), framing)
            self.assertEqual(self.auth.seen[-1]["body"], b"hello")
        self.assertEqual(len(self.seen()), 2)
        payload = request("fabody.example", "/echo", "POST").replace(b"\r\n\r\n", b"\r\n")
        status, _, _ = yield self.exchange(payload + b"Content-Length: 11\r\n\r\nhello world")
        self.assertEqual(status, 401)
        self.assertEqual(len(self.seen()), 2)

    @defer.inlineCallbacks
    def test_forwardAuthDown(self) -> None:
        """An auth server that cannot be reached: 500, as Traefik."""
        status, _, _ = yield self.exchange(request("fadown.example"))
        self.assertEqual(status, 500)
        self.assertEqual(self.seen(), [])

    @defer.inlineCallbacks
    def test_digestAuth(self) -> None:
        """No credentials: a digest challenge; the right response to it: the backend, with
        the user's name; a wrong password: 401 again."""
        status, headers, _ = yield self.exchange(request("digest.example", "/d"))
        self.assertEqual(status, 401)
        (challenge,) = headers["www-authenticate"]
        self.assertTrue(challenge.startswith("Digest "), challenge)
        params = digestauth.parse_pairs(challenge.split(" ", 1)[1])
        ha2 = hashlib.md5(b"GET:/d").hexdigest()
        nonce, opaque = params["nonce"], params["opaque"]

        def authorization(ha1: str) -> bytes:
            answer = hashlib.md5(f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}".encode()).hexdigest()
            return (
                f'Authorization: Digest username="test", realm="traefik", nonce="{nonce}", '
                f'uri="/d", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee", '
                f'response="{answer}", opaque="{opaque}"\r\n'
            ).encode()

        wrong = hashlib.md5(b"test:traefik:nope").hexdigest()
        status, _, _ = yield self.exchange(
            request("digest.example", "/d", extra=authorization(wrong))
        )
        self.assertEqual(status, 401)
        self.assertEqual(self.seen(), [])
        status, _, body = yield self.exchange(
            request("digest.example", "/d", extra=authorization(HA1))
        )
        self.assertEqual((status, body), (200, b"Hello app\n"))

    @defer.inlineCallbacks
    def test_redirectOnNoop(self) -> None:
        """redirectScheme on a route to noop@internal: the redirect, never the 418."""
        status, headers, _ = yield self.exchange(request("redir.example", "/p?q=1"))
        self.assertEqual(status, 301)
        self.assertEqual(headers["location"], ["https://redir.example/p?q=1"])

    @defer.inlineCallbacks
    def test_corsPreflight(self) -> None:
        """A CORS preflight is answered by the headers middleware; the backend never sees
        it. A plain request gets the allow-origin header on the backend's answer."""
        preflight = b"Origin: https://site.example\r\nAccess-Control-Request-Method: PUT\r\n"
        status, headers, _ = yield self.exchange(
            request("cors.example", "/c", "OPTIONS", preflight)
        )
        self.assertEqual(status, 200)
        self.assertEqual(headers["access-control-allow-origin"], ["https://site.example"])
        self.assertEqual(headers["access-control-allow-methods"], ["GET,PUT"])
        self.assertEqual(headers["access-control-max-age"], ["100"])
        self.assertEqual(self.seen(), [])
        status, headers, _ = yield self.exchange(
            request("cors.example", "/c", extra=b"Origin: https://site.example\r\n")
        )
        self.assertEqual(status, 200)
        self.assertEqual(headers["access-control-allow-origin"], ["https://site.example"])
        self.assertEqual(len(self.seen()), 1)

    @defer.inlineCallbacks
    def test_contentTypeSniffed(self) -> None:
        """contentType fills a missing Content-Type from the body, as Go's sniffing; without
        the middleware none is invented; HEAD is not held."""
        status, headers, body = yield self.exchange(request("sniff.example"))
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], ["text/html; charset=utf-8"])
        self.assertIn(RAW_BODY, body)
        status, headers, body = yield self.exchange(request("plainraw.example"))
        self.assertEqual(status, 200)
        self.assertNotIn("content-type", headers)
        self.assertIn(RAW_BODY, body)

    @defer.inlineCallbacks
    def test_noForwardedFor(self) -> None:
        """customRequestHeaders X-Forwarded-For "": no X-Forwarded-For reaches the backend
        (the other forwarded headers still do)."""
        status, _, _ = yield self.exchange(
            request("noxff.example", extra=b"X-Forwarded-For: 10.9.9.9\r\n")
        )
        self.assertEqual(status, 200)
        (seen,) = self.seen()
        self.assertNotIn("x-forwarded-for", seen["headers"])
        self.assertIn("x-real-ip", seen["headers"])


#: {SHA} of "pw", as htpasswd -s writes it.
SHA_USER = "u:{SHA}" + base64.b64encode(hashlib.sha1(b"pw").digest()).decode()

FILE_STATIC = """\
entryPoints:
  web:
    address: "127.0.0.1:0"
providers:
  file: {directory: dynamic, watch: false}
log:
  level: ERROR
"""

FILE_YAML = """\
http:
  routers:
    y: {rule: Host(`yaml.example`), service: app, middlewares: [guard]}
  middlewares:
    guard: {chain: {middlewares: [strip, auth, tag]}}
    strip: {stripPrefix: {prefixes: [/api]}}
    auth: {basicAuth: {users: ["%(user)s"], removeHeader: true}}
    tag: {headers: {customRequestHeaders: {X-Tag: yaml}}}
  services:
    app:
      loadBalancer: {servers: [{url: "http://127.0.0.1:%(port)d"}]}
"""

FILE_TOML = """\
[http.routers.t]
rule = "Host(`toml.example`)"
service = "app@file"
middlewares = ["strip@file", "tauth", "ttag"]

[http.middlewares.tauth.basicAuth]
users = ["%(user)s"]

[http.middlewares.ttag.headers.customRequestHeaders]
X-Tag = "toml"
"""


class FileProviderChainTests(ProxyTestCase):
    """The same chain from the file provider's YAML and TOML, through a running proxy."""

    def setUp(self) -> None:
        super().setUp()
        values = {"user": SHA_USER, "port": self.start_app("app")}
        self.write("tsproxy.yaml", FILE_STATIC)
        os.makedirs(os.path.join(self.config_dir, "dynamic"))
        self.write("dynamic/m.yml", FILE_YAML % values)
        self.write("dynamic/m.toml", FILE_TOML % values)
        self.start_proxy()

    @defer.inlineCallbacks
    def exchange(self, payload: bytes) -> Any:
        assert self.service is not None
        raw = yield proxyfixture.raw_exchange(self.service.port_of("web"), payload, False)
        return split(raw)

    @defer.inlineCallbacks
    def test_chains(self) -> None:
        """Without credentials 401; with them the backend sees the stripped path, the
        header the chain adds and (removeHeader) no Authorization."""
        credentials = b"Authorization: Basic " + base64.b64encode(b"u:pw") + b"\r\n"
        for host, tag in (("yaml.example", "yaml"), ("toml.example", "toml")):
            status, headers, _ = yield self.exchange(request(host, "/api/x"))
            self.assertEqual(status, 401, host)
            self.assertEqual(headers["www-authenticate"], ['Basic realm="traefik"'])
            status, _, body = yield self.exchange(request(host, "/api/x", extra=credentials))
            self.assertEqual((status, body), (200, b"Hello app\n"), host)
            seen = self.apps["app"].requests[-1]
            self.assertEqual(seen["uri"], "/x")
            self.assertEqual(seen["headers"]["x-tag"], [tag])
            if tag == "yaml":
                self.assertNotIn("authorization", seen["headers"])
        self.assertEqual(len(self.apps["app"].requests), 2)


CLIENT_CA = certs.make_ca("client CA")
CLIENT = certs.make_leaf(CLIENT_CA, "client", client=True)
SERVER_CA = certs.make_ca()
SERVER = certs.make_leaf(SERVER_CA, "mtls.example", dns=["mtls.example"])

MTLS_STATIC = """\
entryPoints:
  websecure:
    address: "127.0.0.1:0"
log:
  level: ERROR
"""

MTLS = """\
---
apiVersion: traefik.io/v1alpha1
kind: TLSOption
metadata: {name: mtls, namespace: default}
spec:
  clientAuth:
    secretNames: [client-ca]
    clientAuthType: RequireAndVerifyClientCert
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: pass, namespace: default}
spec:
  passTLSClientCert:
    pem: true
    info: {subject: {commonName: true}}
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: m, namespace: default}
spec:
  entryPoints: [websecure]
  routes:
    - match: Host(`mtls.example`)
      middlewares: [{name: pass}]
      services: [{name: app, port: 80}]
  tls: {secretName: server, options: {name: mtls}}
"""


def tls_exchange(port: int, payload: bytes) -> bytes:
    """A blocking TLS client with the client certificate (run in a thread)."""
    context = client_context(client_cert=CLIENT)
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="mtls.example") as tls:
            tls.sendall(payload)
            while True:
                data = tls.recv(65536)
                if not data:
                    break
                received += data
    return received


class PassTLSClientCertTests(ProxyTestCase):
    """passTLSClientCert over a real mutual-TLS connection."""

    def setUp(self) -> None:
        super().setUp()
        self.write("tsproxy.yaml", MTLS_STATIC)
        secrets = certs.secret_yaml(
            "server", {"tls.crt": SERVER.cert_pem, "tls.key": SERVER.key_pem}
        )
        secrets += "---\n" + certs.secret_yaml(
            "client-ca", {"ca.crt": CLIENT_CA.cert_pem}, kind="Opaque"
        )
        self.write("secrets.yaml", secrets)
        self.write("backend.yaml", BACKEND % {"name": "app", "port": self.start_app("app")})
        self.write("routes.yaml", MTLS)
        self.start_proxy()

    @defer.inlineCallbacks
    def test_clientCertPassed(self) -> None:
        """The backend gets the client's certificate (base64 DER) and the chosen info (the
        leaf, which OpenSSL leaves out of a server's peer chain)."""
        assert self.service is not None
        port = self.service.port_of("websecure")
        raw = yield deferToThread(tls_exchange, port, request("mtls.example"))
        status, _, body = split(raw)
        self.assertEqual((status, body), (200, b"Hello app\n"))
        (seen,) = self.apps["app"].requests
        der = CLIENT.cert.public_bytes(serialization.Encoding.DER)
        self.assertEqual(
            seen["headers"]["x-forwarded-tls-client-cert"], [base64.b64encode(der).decode()]
        )
        (info,) = seen["headers"]["x-forwarded-tls-client-cert-info"]
        self.assertEqual(unquote(info), 'Subject="CN=client"')
