"""Tests for tsproxy.middlewares.forwardauth: Traefik's vectors against a real auth server on
127.0.0.1 (raw HTTP/1.1, so hop-by-hop headers can be sent as the Go test sends them), the
header-building cases purely, and the step's errors."""

from __future__ import annotations

import socket
from typing import Any, Dict, List, Optional, Tuple

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.authfixture import (
    FakeContext,
    fields_of,
    fields_yaml,
    header_items,
    load_vectors,
    request_of,
)
from tsproxy.config.schema import FieldError
from tsproxy.middlewares import forwardauth
from tsproxy.middlewares.authclient import AgentAuthClient, AuthResponse
from tsproxy.middlewares.base import (
    Answer,
    BodyTooLarge,
    BuildError,
    HeaderList,
    Request,
    Response,
)
from tsproxy.middlewares.ipallowlist import split_host

VECTORS = load_vectors("forwardAuth.json")


@defer.inlineCallbacks
def _noop() -> Any:
    yield None


class AuthServerProtocol(Protocol):
    """Reads HTTP/1.1 requests (Content-Length bodies) and answers as the case says."""

    def connectionMade(self) -> None:
        self.buffer = b""
        self.factory.connections.append(self)  # type: ignore[attr-defined]
        self.factory.accepted = getattr(self.factory, "accepted", 0) + 1

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.connections.remove(self)  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, rest = self.buffer.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = [tuple(line.split(": ", 1)) if ": " in line else (line[:-1], "")
                       for line in lines[1:]]  # fmt: skip
            length = int(HeaderList(headers).get("Content-Length") or 0)
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self.factory.received.append(  # type: ignore[attr-defined]
                {
                    "method": method,
                    "target": target,
                    "headers": HeaderList(headers),
                    "body": rest[:length],
                }  # fmt: skip
            )
            self.answer()

    def answer(self) -> None:
        spec: Dict[str, Any] = self.factory.answer  # type: ignore[attr-defined]
        if spec.get("behaviour") == "never answers":
            return
        status = spec.get("status", 200)
        items = header_items(spec.get("headers"))
        body = spec.get("body", "").encode()
        if not body and 300 <= status < 400:
            body = b'<a href="/">Found</a>.\n\n'  # what Go's http.Redirect writes
        chunked = any(k.lower() == "transfer-encoding" for k, _ in items)
        lines = ["HTTP/1.1 %d X" % status] + ["%s: %s" % item for item in items]
        if chunked:
            payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
        else:
            lines.append("Content-Length: %d" % len(body))
            payload = body
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)


class AuthServer:
    """A listening raw auth server; `received` lists the requests it got."""

    def __init__(self) -> None:
        self.factory = Factory.forProtocol(AuthServerProtocol)
        self.factory.received = []  # type: ignore[attr-defined]
        self.factory.connections = []  # type: ignore[attr-defined]
        self.factory.answer = {}  # type: ignore[attr-defined]
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d/" % self.port.getHost().port

    @property
    def received(self) -> List[Dict[str, Any]]:
        return self.factory.received  # type: ignore[no-any-return,attr-defined]

    def stop(self) -> Any:
        for connection in list(self.factory.connections):  # type: ignore[attr-defined]
            connection.transport.abortConnection()
        return self.port.stopListening()


def closed_port_url() -> str:
    """The URL of a 127.0.0.1 port nobody listens on (connection refused)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return "http://127.0.0.1:%d/" % port


def case_request(case: Dict[str, Any]) -> Request:
    data = dict(case["request"])
    headers = dict(data.get("headers") or {})
    body: Optional[str] = data.get("body")
    if body is not None and data.get("contentLength", len(body)) >= 0:
        headers["Content-Length"] = str(len(body))
    data["headers"] = headers
    if data.get("url") == "http://foo":
        data["url"] = "http://foo/"

    def read_body(limit: int) -> Any:
        raw = (body or "").encode()
        if 0 <= limit < len(raw):
            return defer.fail(BodyTooLarge())
        return defer.succeed(raw)

    remote = split_host(data.get("remoteAddr", "192.0.2.1:1234"))
    return request_of(data, client_ip=remote, read_body=read_body, forwarded_trusted=True)


class VectorTests(TestCase):
    """The vector cases that talk to an auth server, against a real one."""

    def setUp(self) -> None:
        self.server = AuthServer()
        self.addCleanup(self.server.stop)

    @defer.inlineCallbacks
    def run_case(self, case: Dict[str, Any]) -> Any:
        config = dict(case["config"])
        if config["address"] == "<auth server URL>":
            config["address"] = self.server.url
        elif "non-existing" in config["address"]:
            config["address"] = closed_port_url()
        self.server.factory.answer = case.get("authResponse", {})  # type: ignore[attr-defined]
        self.server.factory.received.clear()  # type: ignore[attr-defined]
        context = FakeContext(reactor=reactor, request_bodies=True)
        step = forwardauth.build(forwardauth.parse(fields_of(config)), "fa@test", context)
        self.addCleanup(step.client.close)
        request = case_request(case)
        d = step.handle(request)
        if case["request"].get("cancelledWhileAuthPending"):
            while not self.server.received:
                yield _sleep(0.01)
            d.cancel()
        result = yield d
        self.check(case, request, result)

    def check(self, case: Dict[str, Any], request: Request, result: Any) -> None:
        expect = case["expect"]
        backend_expect = expect.get("backend", {})
        called = result is None
        if "called" in backend_expect:
            self.assertEqual(called, backend_expect["called"])
        auth_expect = expect.get("authRequest", {})
        received = self.server.received
        if "count" in auth_expect:
            self.assertEqual(len(received), auth_expect["count"])
        if "body" in auth_expect:
            self.assertEqual(received[0]["body"].decode(), auth_expect["body"])
        if "method" in auth_expect:
            self.assertEqual(received[0]["method"], auth_expect["method"])
        if not called:
            self.assertIsInstance(result, Answer)
            self.assertEqual(result.status, expect["status"])
            answer_headers = HeaderList(result.headers)
            if "body" in expect:
                self.assertEqual(result.body.decode(), expect["body"])
            if expect.get("bodyNonEmpty"):
                self.assertTrue(result.body)
            if "location" in expect:
                self.assertEqual(answer_headers.get("Location"), expect["location"])
            for name, value in expect.get("headers", {}).items():
                if name.lower() == "content-length":
                    # The engine frames the answer: Content-Length is the body's length.
                    self.assertEqual(len(result.body), int(value))
                    self.assertIsNone(answer_headers.get(name))
                    continue
                self.assertEqual(_one_or_list(answer_headers.get_all(name)), value, name)
            if "headerCount" in expect:
                # + Content-Length and Date, which the engine adds to every answer.
                self.assertEqual(len(answer_headers), expect["headerCount"] - 2)
            return
        self.assertEqual(expect["status"], 200)
        for name, value in backend_expect.get("headers", {}).items():
            self.assertEqual(_one_or_list(request.headers.get_all(name)), value, name)
        if "method" in backend_expect:
            self.assertEqual(request.method, backend_expect["method"])
        backend = case.get("backendResponse", {})
        response = Response(
            backend.get("status", 200), HeaderList(header_items(backend.get("headers"))), request
        )
        for hook in reversed(request.response_hooks):
            hook(response)
        for name, value in expect.get("headers", {}).items():
            self.assertEqual(_one_or_list(response.headers.get_all(name)), value, name)

    def test_vectors(self) -> Any:
        """Every case without a pure harness, one after another against the auth server."""
        cases = [case for case in VECTORS["cases"] if "harness" not in case]
        self.assertEqual(len(cases), 26)

        @defer.inlineCallbacks
        def run_all() -> Any:
            for case in cases:
                try:
                    yield self.run_case(case)
                except Exception as exc:
                    raise AssertionError(f"{case['name']}: {exc}") from exc

        return run_all()

    @defer.inlineCallbacks
    def test_relative_location_resolved(self) -> Any:
        """Without preserveLocationHeader a relative Location is resolved on the auth URL."""
        self.server.factory.answer = {  # type: ignore[attr-defined]
            "status": 302,
            "headers": {"Location": "/login?x=1"},
        }
        step = forwardauth.build(
            forwardauth.parse(fields_of({"address": self.server.url + "auth/check"})),
            "fa",
            FakeContext(reactor=reactor),
        )
        self.addCleanup(step.client.close)
        answer = yield step.handle(request_of({}))
        self.assertEqual(HeaderList(answer.headers).get("Location"), self.server.url + "login?x=1")

    @defer.inlineCallbacks
    def test_timeout(self) -> Any:
        """An auth server that never answers within the client's timeout gives 500."""
        self.server.factory.answer = {"behaviour": "never answers"}  # type: ignore[attr-defined]
        spec = forwardauth.parse(fields_of({"address": self.server.url}))
        client = AgentAuthClient(reactor, timeout=0.2)
        self.addCleanup(client.close)
        step = forwardauth.build(spec, "fa", FakeContext(reactor=reactor), client=client)
        answer = yield step.handle(request_of({}))
        self.assertEqual(answer.status, 500)

    @defer.inlineCallbacks
    def test_pool_reuses_connection(self) -> Any:
        """Successive auth requests ride one pooled connection."""
        self.server.factory.answer = {"status": 200}  # type: ignore[attr-defined]
        step = forwardauth.build(
            forwardauth.parse(fields_of({"address": self.server.url})),
            "fa",
            FakeContext(reactor=reactor),
        )
        self.addCleanup(step.client.close)
        for _ in range(3):
            result = yield step.handle(request_of({}))
            self.assertIsNone(result)
        self.assertEqual(self.server.factory.accepted, 1)  # type: ignore[attr-defined]
        self.assertEqual(len(self.server.received), 3)


def _sleep(seconds: float) -> Any:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


def _one_or_list(values: List[str]) -> Any:
    if not values:
        return None
    return values[0] if len(values) == 1 else values


class HeaderVectorTests(SynchronousTestCase):
    """The authRequestHeaders and removeConnectionHeaders cases, purely."""

    def test_vectors(self) -> None:
        """The auth request's headers are Traefik's for every header case."""
        for case in VECTORS["cases"]:
            harness = case.get("harness")
            if harness is None:
                continue
            with self.subTest(case["name"]):
                if harness == "removeConnectionHeaders":
                    headers = HeaderList(header_items(case["request"]["headers"]))
                    forwardauth.remove_connection_headers(headers)
                else:
                    config = case["config"]
                    request = case_request(case)
                    headers = forwardauth.auth_request_headers(
                        request,
                        config.get("trustForwardHeader"),
                        tuple(config.get("authRequestHeaders", ())),
                    )
                want = case["expect"]["authRequest"]
                for name, value in want["headers"].items():
                    got = headers.get(name)
                    self.assertEqual(got, value, name)
                if want["exhaustive"]:
                    self.assertEqual(
                        {k.lower() for k, _ in headers},
                        {k.lower() for k, v in want["headers"].items() if v is not None},
                    )


class FakeClient:
    """An AuthClient answering from a table, recording what it was asked."""

    def __init__(self, response: AuthResponse) -> None:
        self.response = response
        self.asked: List[Tuple[str, str, List[Tuple[str, str]], Optional[bytes]]] = []

    def request(self, method: str, url: str, headers: Any, body: Any, max_body: int) -> Any:
        self.asked.append((method, url, list(headers), body))
        return defer.succeed(self.response)


class StepTests(SynchronousTestCase):
    """Trust decisions and what reaches the backend, with a fake client."""

    def step(self, section: Dict[str, Any], response: AuthResponse) -> Any:
        spec = forwardauth.parse(fields_of({"address": "http://auth.local/", **section}))
        return forwardauth.build(spec, "fa", FakeContext(), client=FakeClient(response))

    def test_untrusted_peer_headers_dropped(self) -> None:
        """trustForwardHeader keeps client X-Forwarded-* only if the entrypoint trusts them."""
        ok = AuthResponse(200, (), b"")
        for trusted, want in ((True, "evil.example"), (False, "example.com")):
            step = self.step({"trustForwardHeader": True}, ok)
            request = request_of(
                {"headers": {"X-Forwarded-Host": "evil.example"}}, forwarded_trusted=trusted
            )
            step.handle(request)
            sent = HeaderList(step.client.asked[0][2])
            self.assertEqual(sent.get("X-Forwarded-Host"), want)

    def test_auth_user_noted(self) -> None:
        """headerField names the auth answer's header that carries the user (for the log)."""
        step = self.step({"headerField": "X-User"}, AuthResponse(200, (("X-User", "bob"),), b""))
        request = request_of({})
        step.handle(request)
        self.assertEqual(request.notes["auth_user"], "bob")

    def test_regex_matches_canonical_names(self) -> None:
        """authResponseHeadersRegex sees Go's canonical spelling of a header name."""
        step = self.step(
            {"authResponseHeadersRegex": "^X-Id-"}, AuthResponse(200, (("x-id-name", "a"),), b"")
        )
        request = request_of({"headers": {"x-id-old": "client"}})
        step.handle(request)
        self.assertIsNone(request.headers.get("x-id-old"))
        self.assertEqual(request.headers.get("X-Id-Name"), "a")

    def test_forward_body_needs_engine(self) -> None:
        """forwardBody refuses to build when the engine cannot give bodies (fail closed)."""
        spec = forwardauth.parse(fields_of({"address": "http://a/", "forwardBody": True}))
        with self.assertRaises(BuildError):
            forwardauth.build(spec, "fa", FakeContext())

    def test_tls_secrets(self) -> None:
        """caSecret / certSecret must exist and hold their keys."""
        table = [
            ({"caSecret": "ca"}, {}, "not found"),
            ({"caSecret": "ca"}, {"ca": {"other": b"x"}}, "tls.ca, ca.crt"),
            ({"certSecret": "c"}, {"c": {"tls.crt": b"x"}}, "private key"),
        ]
        for tls, secrets, text in table:
            with self.subTest(tls):
                spec = forwardauth.parse(fields_of({"address": "https://a/", "tls": tls}))
                with self.assertRaises(BuildError) as caught:
                    forwardauth.build(spec, "fa", FakeContext(secrets=secrets))
                self.assertIn(text, str(caught.exception))

    def test_parse_errors(self) -> None:
        """Each bad section names the line and field path."""
        table = [
            ("trustForwardHeader: true\n", 1, "spec.kind.address", "is required"),
            ("address: auth.local\n", 1, "spec.kind.address", "URL"),
            ("address: http://a/\nauthResponseHeadersRegex: '('\n", 2,
             "spec.kind.authResponseHeadersRegex", "invalid regexp"),
            ("address: http://a/\nmaxBodySize: -2\n", 2, "spec.kind.maxBodySize", ">= -1"),
            ("address: http://a/\nauthSigninURL: /login\n", 2, "spec.kind.authSigninURL", "URL"),
            ("address: http://a/\ntls:\n  ca: /etc/ca.pem\n", 3, "spec.kind.tls.ca", "caSecret"),
            ("address: http://a/\ntls:\n  verify: false\n", 3, "spec.kind.tls.verify",
             "unknown field"),
            ("address: http://a/\nauthResponseHeaders: ['a b']\n", 2,
             "spec.kind.authResponseHeaders[0]", "not a header name"),
            ("address: http://a/\nbogus: 1\n", 2, "spec.kind.bogus", "unknown field"),
        ]  # fmt: skip
        for text, line, path, message in table:
            with self.subTest(text):
                with self.assertRaises(FieldError) as caught:
                    forwardauth.parse(fields_yaml(text))
                self.assertEqual((caught.exception.line, caught.exception.path), (line, path))
                self.assertIn(message, caught.exception.message)


class TLSTests(TestCase):
    """The auth client's TLS: a CA and a client certificate from Secrets, or no checks."""

    def setUp(self) -> None:
        from twisted.internet import ssl

        from tests.certs import make_ca, make_leaf

        self.ca = make_ca()
        self.client_cert = make_leaf(self.ca, cn="tsproxy", client=True)
        server = make_leaf(self.ca, cn="auth", ips=["127.0.0.1"])
        self.factory = Factory.forProtocol(AuthServerProtocol)
        self.factory.received = []  # type: ignore[attr-defined]
        self.factory.connections = []  # type: ignore[attr-defined]
        self.factory.answer = {"status": 200}  # type: ignore[attr-defined]
        options = ssl.CertificateOptions(
            privateKey=ssl.PrivateCertificate.loadPEM(
                server.cert_pem + server.key_pem
            ).privateKey.original,
            certificate=ssl.Certificate.loadPEM(server.cert_pem).original,
            verify=True,
            requireCertificate=True,
            caCerts=[ssl.Certificate.loadPEM(self.ca.cert_pem).original],
        )
        self.port = reactor.listenSSL(0, self.factory, options, interface="127.0.0.1")
        self.addCleanup(self.stop)

    def stop(self) -> Any:
        for connection in list(self.factory.connections):  # type: ignore[attr-defined]
            connection.transport.abortConnection()
        return self.port.stopListening()

    @defer.inlineCallbacks
    def ask(self, tls: Dict[str, Any]) -> Any:
        address = "https://127.0.0.1:%d/" % self.port.getHost().port
        context = FakeContext(
            reactor=reactor,
            secrets={
                "ca": {"ca.crt": self.ca.cert_pem},
                "client": {
                    "tls.crt": self.client_cert.cert_pem,
                    "tls.key": self.client_cert.key_pem,
                },
            },
        )
        spec = forwardauth.parse(fields_of({"address": address, "tls": tls}))
        step = forwardauth.build(spec, "fa", context)
        self.addCleanup(step.client.close)
        result = yield step.handle(request_of({}))
        return result

    @defer.inlineCallbacks
    def test_table(self) -> Any:
        """Only a trusted server with our client certificate lets the request on."""
        table = [
            ({"caSecret": "ca", "certSecret": "client"}, None),
            ({"caSecret": "ca"}, 500),
            ({"certSecret": "client"}, 500),
            ({"certSecret": "client", "insecureSkipVerify": True}, None),
        ]
        for tls, want in table:
            result = yield self.ask(tls)
            got = None if result is None else result.status
            self.assertEqual(got, want, tls)


class RegistryTests(SynchronousTestCase):
    """The kinds are listed in the registry."""

    def test_registered(self) -> None:
        """http_kinds() gives this module's kinds by their Traefik key."""
        from tsproxy.middlewares.registry import http_kinds

        kinds = http_kinds()
        for kind in forwardauth.KINDS:
            self.assertIs(kinds[kind.name], kind)
        self.assertEqual({kind.name for kind in forwardauth.KINDS}, {"forwardAuth"})
