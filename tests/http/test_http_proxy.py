"""End-to-end tests of the HTTP entrypoint: real backends, real clients, 127.0.0.1 only."""

from __future__ import annotations

import hashlib
import socket
from typing import Any, List

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import RequestReceived
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.proxyfixture import (
    ENDPOINTS,
    SERVICE,
    STATIC,
    ProxyTestCase,
    RawClient,
    free_port,
    raw_exchange,
)
from tsproxy.api.model import rawdata

WRR = "traefikservice-wrr.kubesre.lc"
COOKIE = "traefikservice-cokie.kubesre.lc"
COPY = "traefikservice-copy.kubesre.lc"


class SeedScenarioTests(ProxyTestCase):
    """The seed's three canary transcripts through the shipped conf/."""

    def setUp(self) -> None:
        super().setUp()
        self.use_seed_config()
        self.start_proxy()

    @defer.inlineCallbacks
    def test_weightedTranscript(self) -> None:
        """Weights 1:2 answer app-v2, app-v1, app-v2, app-v2, app-v1, app-v2."""
        bodies = []
        for _ in range(6):
            response, body = yield self.get(WRR)
            self.assertEqual(response.code, 200)
            bodies.append(body)
        self.assertEqual(bodies, [b"Hello app-v2\n", b"Hello app-v1\n", b"Hello app-v2\n"] * 2)

    @defer.inlineCallbacks
    def test_stickyCookiePinsVersion(self) -> None:
        """cookie=default-app-v1-80 always reaches app-v1 and sets no new cookie."""
        for _ in range(5):
            response, body = yield self.get(
                COOKIE, headers={"Cookie": ["cookie=default-app-v1-80"]}
            )
            self.assertEqual(body, b"Hello app-v1\n")
            self.assertFalse(response.headers.hasHeader(b"set-cookie"))

    @defer.inlineCallbacks
    def test_stickyCookieSetOnNewPick(self) -> None:
        """Without a cookie the pick is made and named in Set-Cookie; sending it back sticks."""
        response, body = yield self.get(COOKIE)
        self.assertEqual(body, b"Hello app-v2\n")
        cookie = response.headers.getRawHeaders(b"set-cookie")[0].decode()
        self.assertTrue(cookie.startswith("cookie=default-app-v2-80"), cookie)
        self.assertIn("HttpOnly", cookie)
        for _ in range(3):
            response, body = yield self.get(
                COOKIE, headers={"Cookie": ["cookie=default-app-v2-80"]}
            )
            self.assertEqual(body, b"Hello app-v2\n")

    @defer.inlineCallbacks
    def test_stickyHashedValueAccepted(self) -> None:
        """Newer Traefik's sha256-prefix value of a child name also pins it."""
        value = hashlib.sha256(b"default-app-v1-80").hexdigest()[:16]
        for _ in range(3):
            response, body = yield self.get(COOKIE, headers={"Cookie": ["cookie=" + value]})
            self.assertEqual(body, b"Hello app-v1\n")

    @defer.inlineCallbacks
    def test_unknownCookieRepicks(self) -> None:
        """An unknown cookie value falls back to a normal pick and a new cookie."""
        response, body = yield self.get(COOKIE, headers={"Cookie": ["cookie=nonsense"]})
        self.assertIn(body, (b"Hello app-v1\n", b"Hello app-v2\n"))
        self.assertTrue(response.headers.hasHeader(b"set-cookie"))

    @defer.inlineCallbacks
    def test_mirrorTranscript(self) -> None:
        """Every answer is app-v1's; app-v2 gets copies of requests 1 and 11 of 20."""
        for i in range(20):
            response, body = yield self.get(COPY, path="/req/%d" % (i + 1,))
            self.assertEqual(body, b"Hello app-v1\n")
        yield self.service.mirrors.idle()
        paths = [r["path"] for r in self.apps["app-v2"].requests]
        self.assertEqual(paths, ["/req/1", "/req/11"])
        self.assertEqual(len(self.apps["app-v1"].requests), 20)

    @defer.inlineCallbacks
    def test_mirroredBodyCopied(self) -> None:
        """A mirrored POST reaches the mirror with its body and the client's Host."""
        response, body = yield self.get(COPY, path="/echo", method="POST", data=b"payload")
        self.assertEqual(body, b"payload")
        yield self.service.mirrors.idle()
        (copy,) = self.apps["app-v2"].requests
        self.assertEqual(copy["method"], "POST")
        self.assertEqual(copy["headers"]["host"], [COPY])

    @defer.inlineCallbacks
    def test_notFound(self) -> None:
        """A host no router matches gets Traefik's 404 body."""
        response, body = yield self.get("nowhere.example")
        self.assertEqual((response.code, body), (404, b"404 page not found\n"))
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"), [b"text/plain; charset=utf-8"]
        )

    @defer.inlineCallbacks
    def test_forwardedHeaders(self) -> None:
        """X-Forwarded-* and X-Real-Ip are set; spoofed ones and hop-by-hop headers go."""
        response, body = yield self.get(
            WRR,
            path="/headers",
            headers={
                "X-Forwarded-For": ["6.6.6.6"],
                "Connection": ["X-Secret"],
                "X-Secret": ["1"],
                "Keep-Alive": ["timeout=5"],
            },
        )
        lines = body.decode().splitlines()
        self.assertIn("x-forwarded-for: 127.0.0.1", lines)
        self.assertIn("x-real-ip: 127.0.0.1", lines)
        self.assertIn("x-forwarded-proto: http", lines)
        self.assertIn("x-forwarded-host: " + WRR, lines)
        self.assertIn("x-forwarded-port: 80", lines)
        self.assertIn("host: " + WRR, lines)
        self.assertFalse([line for line in lines if "6.6.6.6" in line or "secret" in line])
        self.assertFalse([line for line in lines if line.startswith("keep-alive")])

    @defer.inlineCallbacks
    def test_chunkedUploadEchoed(self) -> None:
        """A chunked request body streams to the backend and back intact."""
        from io import BytesIO

        from twisted.web.client import FileBodyProducer

        class Unknown(FileBodyProducer):
            def __init__(self, data: bytes) -> None:
                super().__init__(BytesIO(data))
                from twisted.web.iweb import UNKNOWN_LENGTH

                self.length = UNKNOWN_LENGTH

        payload = b"0123456789" * 10000
        response, body = yield self.get(WRR, path="/echo", method="POST", data=Unknown(payload))
        self.assertEqual(body, payload)

    @defer.inlineCallbacks
    def test_headAnd204(self) -> None:
        """HEAD keeps Content-Length without a body; 204 carries no body."""
        response, body = yield self.get(WRR, method="HEAD")
        self.assertEqual((response.code, body), (200, b""))
        self.assertEqual(response.headers.getRawHeaders(b"content-length"), [b"13"])
        response, body = yield self.get(WRR, path="/status/204")
        self.assertEqual((response.code, body), (204, b""))
        # The connection stays usable after both.
        response, body = yield self.get(WRR)
        self.assertEqual(response.code, 200)

    @defer.inlineCallbacks
    def test_headToLocalAnswer(self) -> None:
        """HEAD answered by the proxy itself (404): the head only, so the pipelined request
        after it is read as the next answer."""
        head = "HEAD /x HTTP/1.1\r\nHost: nope.example\r\n\r\n"
        get = "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (WRR,)
        raw = yield raw_exchange(self.service.port_of("web"), (head + get).encode(), False)
        first, _, rest = raw.partition(b"\r\n\r\n")
        self.assertTrue(first.startswith(b"HTTP/1.1 404 Not Found\r\n"), raw)
        self.assertIn(b"Content-Length: 19", first)
        self.assertTrue(rest.startswith(b"HTTP/1.1 200 OK\r\n"), raw)

    @defer.inlineCallbacks
    def test_pipelinedInOrder(self) -> None:
        """Pipelined requests are answered in order on one connection."""
        request = "GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % (WRR,)
        last = request.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
        raw = yield raw_exchange(self.service.port_of("web"), (request * 2 + last).encode(), False)
        bodies = [part.split(b"\r\n\r\n", 1)[1] for part in raw.split(b"HTTP/1.1 ")[1:]]
        self.assertEqual(bodies, [b"Hello app-v2\n", b"Hello app-v1\n", b"Hello app-v2\n"])

    @defer.inlineCallbacks
    def test_http10Client(self) -> None:
        """An HTTP/1.0 client gets its answer and the connection closed."""
        raw = yield raw_exchange(
            self.service.port_of("web"),
            ("GET / HTTP/1.0\r\nHost: %s\r\n\r\n" % WRR).encode(),
            False,
        )
        self.assertTrue(raw.startswith(b"HTTP/1.1 200 "), raw)
        self.assertTrue(raw.endswith(b"\r\n\r\nHello app-v2\n"), raw)

    @defer.inlineCallbacks
    def test_malformedRequest(self) -> None:
        """Garbage gets 400 and a closed connection, never a hang."""
        for payload in (b"NONSENSE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n"):
            raw = yield raw_exchange(self.service.port_of("web"), payload, False)
            self.assertTrue(raw.startswith(b"HTTP/1.1 400 Bad Request\r\n"), raw)
            self.assertIn(b"Connection: close", raw)

    @defer.inlineCallbacks
    def test_backendKeepAlive(self) -> None:
        """Sequential requests reuse one pooled backend connection."""
        for _ in range(5):
            yield self.get(WRR)
        idle = sum(len(conns) for conns in self.service.pool.idle.values())
        self.assertEqual(idle, 2)  # one per backend, each reused


class ErrorStatusTests(ProxyTestCase):
    """Traefik's answers when the backend side fails."""

    def route_to(self, port: int, extra: str = "") -> None:
        self.write("tsproxy.yaml", STATIC)
        self.write(
            "app.yaml",
            "---\n".join(
                [
                    SERVICE.format(name="app"),
                    ENDPOINTS.format(name="app", port=port),
                    """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: app
spec:
  routes:
    - match: Host(`app.test`)
      kind: Rule
      services:
        - name: app
          port: 80
%s"""
                    % extra,
                ]
            ),
        )

    @defer.inlineCallbacks
    def test_refused502(self) -> None:
        """A backend that refuses the connection gives 502 Bad Gateway."""
        self.route_to(free_port())
        self.start_proxy()
        response, body = yield self.get("app.test")
        self.assertEqual((response.code, body), (502, b"Bad Gateway"))

    @defer.inlineCallbacks
    def test_responseHeaderTimeout504(self) -> None:
        """A backend that never answers gives 504 after responseHeaderTimeout."""
        port, received = self.start_silent()
        self.route_to(port, extra="          serversTransport: slow\n")
        self.write(
            "transport.yaml",
            """\
apiVersion: traefik.io/v1alpha1
kind: ServersTransport
metadata:
  name: slow
spec:
  forwardingTimeouts:
    responseHeaderTimeout: 5s
""",
        )
        clock = Clock()
        self.start_proxy(clock=clock)
        d = self.get("app.test")
        while not received:
            yield _tick()
        clock.advance(5)
        response, body = yield d
        self.assertEqual((response.code, body), (504, b"Gateway Timeout"))

    @defer.inlineCallbacks
    def test_noServer503(self) -> None:
        """A weighted service whose children all weigh 0 answers 503 no available server."""
        self.route_to(free_port())
        self.write(
            "zero.yaml",
            """\
apiVersion: traefik.io/v1alpha1
kind: TraefikService
metadata:
  name: zero
spec:
  weighted:
    services:
      - name: app
        port: 80
        weight: 0
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: zero
spec:
  routes:
    - match: Host(`zero.test`)
      kind: Rule
      services:
        - name: zero
          kind: TraefikService
""",
        )
        self.start_proxy()
        response, body = yield self.get("zero.test")
        self.assertEqual((response.code, body), (503, b"no available server\n"))


def _tick() -> defer.Deferred:
    from twisted.internet.task import deferLater

    return deferLater(reactor, 0.01, lambda: None)


class _StalledReader(Protocol):
    """A client that reads nothing until told to, then collects everything until the
    server closes. (Its receive buffer is left alone: one shrunk with SO_RCVBUF keeps the
    TCP window clamped small after it is widened again, and reading back crawls.)"""

    def __init__(self) -> None:
        self.received: List[bytes] = []
        self.closed: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.pauseProducing()

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.closed.callback(b"".join(self.received))


def _answers(raw: bytes, methods: List[bytes]) -> List[bytes]:
    """Split pipelined answers (Content-Length framed) by the methods asked; the status lines."""
    found = []
    for method in methods:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            break
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        if method == b"HEAD":
            length = 0
        found.append(head.split(b"\r\n", 1)[0])
        raw = rest[length:]
    if raw:
        found.append(b"trailing: " + raw[:80])
    return found


class PipelineBackpressureTests(ProxyTestCase):
    """Answers the proxy makes itself (404, internal endpoints) to a client that pipelines
    and does not read are not piled up in memory: serving stops while the client's write
    buffer is full, and goes on, in order, once it reads."""

    #: Twisted's transport buffer limit (FileDescriptor.bufferSize) plus one answer's slack.
    BOUND = 65536 + 4096

    def setUp(self) -> None:
        super().setUp()
        self.use_seed_config()
        static = STATIC.replace(
            "entryPoints:\n", 'entryPoints:\n  traefik:\n    address: "127.0.0.1:0"\n'
        )
        self.write("tsproxy.yaml", static + "ping: {}\napi: {insecure: true}\n")
        self.start_proxy()

    @defer.inlineCallbacks
    def pipeline(self, entrypoint: str, requests: List[bytes], methods: List[bytes]) -> Any:
        """Send ``requests`` on one connection without reading; check the proxy holds a
        bounded amount of answers; then read them all. Returns the status lines."""
        assert self.service is not None
        port = self.service.port_of(entrypoint)
        client = _StalledReader()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
        self.addCleanup(client.transport.abortConnection)
        (factory,) = [f for f in self.service.factories if f.name == entrypoint]
        (conn,) = list(factory.connections)
        conn.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        client.transport.write(b"".join(requests))

        def buffered() -> int:
            transport = conn.transport
            return len(transport.dataBuffer) + transport._tempDataLen

        # Until the proxy stops reading, or piles up more than the bound (the bug).
        for _ in range(250):
            if "answers" in conn.gate.reasons or buffered() > self.BOUND:
                break
            yield deferLater(reactor, 0.02, lambda: None)
        self.assertLessEqual(buffered(), self.BOUND)
        self.assertIn("answers", conn.gate.reasons)
        # Reading the answers back through a 4 KiB send buffer would be slow: widen it.
        conn.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        client.transport.resumeProducing()
        raw = yield client.closed
        return _answers(raw, methods)

    @defer.inlineCallbacks
    def test_localNotFound(self) -> None:
        """Thousands of pipelined 404s (GET and HEAD alternating) to a stalled reader."""
        count = 10000
        methods = [b"GET" if i % 2 == 0 else b"HEAD" for i in range(count)]
        requests = [
            b"%s /%d HTTP/1.1\r\nHost: nope.example\r\n\r\n" % (method, i)
            for i, method in enumerate(methods)
        ]
        requests[-1] = requests[-1].replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        statuses = yield self.pipeline("web", requests, methods)
        self.assertEqual(statuses, [b"HTTP/1.1 404 Not Found"] * count)

    @defer.inlineCallbacks
    def test_internalEndpoint(self) -> None:
        """Thousands of pipelined /api/rawdata to a stalled reader, on the traefik entrypoint."""
        count = 1500
        request = b"GET /api/rawdata HTTP/1.1\r\nHost: x\r\n\r\n"
        last = b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        statuses = yield self.pipeline(
            "traefik", [request] * (count - 1) + [last], [b"GET"] * count
        )
        self.assertEqual(statuses, [b"HTTP/1.1 200 OK"] * count)


class _HeadOnly(Protocol):
    """A backend that answers a chunked head and holds its body back (as a stream of
    server-sent events does until the first event)."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")


class StreamedResponseTests(ProxyTestCase):
    """A response head goes to the client as soon as it is read, body or not."""

    @defer.inlineCallbacks
    def test_headBeforeBody(self) -> None:
        """The head of a response whose body has not come yet reaches the client."""
        backend = reactor.listenTCP(0, Factory.forProtocol(_HeadOnly), interface="127.0.0.1")
        self.addCleanup(backend.stopListening)
        ErrorStatusTests.route_to(self, backend.getHost().port)  # type: ignore[arg-type]
        self.start_proxy()
        client = RawClient()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.service.port_of("web"))
        yield connectProtocol(endpoint, client)
        client.transport.write(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        for _ in range(300):  # bounded: 3 s
            if b"\r\n\r\n" in client.received:
                break
            yield _tick()
        self.assertTrue(client.received.startswith(b"HTTP/1.1 200 OK\r\n"), client.received)
        self.assertIn(b"Transfer-Encoding: chunked\r\n", client.received)
        client.transport.loseConnection()
        yield client.closed


class _PathSite(Resource):
    """An HTTP/1.1 backend answering each request with its target, and recording it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: List[bytes] = []

    def render(self, request: Any) -> bytes:
        self.seen.append(request.uri)
        return b"h1 " + request.uri


class _H2Path(Protocol):
    """An h2c backend answering each request with its :path, recorded in the factory."""

    def connectionMade(self) -> None:
        self.h2 = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        self.h2.initiate_connection()
        self.transport.write(self.h2.data_to_send())  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        for event in self.h2.receive_data(data):
            if isinstance(event, RequestReceived):
                path = dict(event.headers)[b":path"]
                self.factory.seen.append(path)  # type: ignore[attr-defined]
                body = b"h2 " + path
                headers = [(b":status", b"200"), (b"content-length", str(len(body)).encode())]
                self.h2.send_headers(event.stream_id, headers)
                self.h2.send_data(event.stream_id, body, end_stream=True)
        self.transport.write(self.h2.data_to_send())  # type: ignore[union-attr]


PRESERVE = """\
http:
  routers:
    keep: {rule: PathPrefix(`/keep`), service: keep, entryPoints: [web]}
    drop: {rule: PathPrefix(`/drop`), service: drop, entryPoints: [web]}
    h2: {rule: PathPrefix(`/h2`), service: h2, entryPoints: [web]}
    copy: {rule: PathPrefix(`/copy`), service: copy, entryPoints: [web]}
  services:
    keep:
      loadBalancer:
        healthCheck: {path: "hc?x=1", interval: 10s}
        servers: [{url: "http://127.0.0.1:%(h1)d/base", preservePath: true}]
    drop:
      loadBalancer:
        healthCheck: {path: hc, interval: 10s}
        servers: [{url: "http://127.0.0.1:%(h1)d/base/"}]
    h2:
      loadBalancer:
        servers: [{url: "h2c://127.0.0.1:%(h2)d/a%%2Fb/", preservePath: true}]
    copy:
      mirroring: {service: drop, mirrors: [{name: keep, percent: 100}]}
"""


class PreservePathTests(ProxyTestCase):
    """Server URLs with a path: ignored for requests unless ``preservePath`` (then the
    request's target goes under it, as Traefik 3.7 sends it); a relative health check path
    resolves against it either way."""

    def setUp(self) -> None:
        super().setUp()
        self.h1 = _PathSite()
        site = Site(self.h1)
        site.noisy = False
        h1 = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(h1.stopListening)
        factory = Factory.forProtocol(_H2Path)
        factory.seen = self.h2_seen = []  # type: ignore[attr-defined]
        h2 = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(h2.stopListening)
        ports = {"h1": h1.getHost().port, "h2": h2.getHost().port}
        self.write("tsproxy.yaml", STATIC + "providers:\n  file: {filename: dyn.yml}\n")
        self.write("dyn.yml", PRESERVE % ports)
        self.clock = Clock()

    def start(self, clock: Any = None) -> None:
        """The proxy; with the test ``clock`` (h2c backends need the real one)."""
        self.start_proxy(clock=clock)

    @defer.inlineCallbacks
    def bodies(self, paths: List[str]) -> Any:
        got = []
        for path in paths:
            response, body = yield self.get("any.test", path)
            self.assertEqual(response.code, 200, path)
            got.append(body)
        return got

    @defer.inlineCallbacks
    def test_http11(self) -> None:
        """preservePath on /base: the target goes under it, one slash between, the query
        and escapes kept; without it (/base/) the target is sent as it came."""
        self.start()
        got = yield self.bodies(["/keep", "/keep/x?q=1", "/keep/a%2Fb", "/drop/y?z"])
        self.assertEqual(
            got,
            [b"h1 /base/keep", b"h1 /base/keep/x?q=1", b"h1 /base/keep/a%2Fb", b"h1 /drop/y?z"],
        )

    @defer.inlineCallbacks
    def test_h2c(self) -> None:
        """An h2c server's :path is joined the same way (/a%2Fb/ + /h2/z: one slash)."""
        self.start()
        got = yield self.bodies(["/h2/z?q", "/h2"])
        self.assertEqual(got, [b"h2 /a%2Fb/h2/z?q", b"h2 /a%2Fb/h2"])
        self.assertEqual(self.h2_seen, [b"/a%2Fb/h2/z?q", b"/a%2Fb/h2"])

    @defer.inlineCallbacks
    def test_mirror_and_api(self) -> None:
        """A mirror copy to a preservePath server goes under its path, the main request
        (path ignored) does not; the API shows the URL as written and preservePath."""
        self.start()
        got = yield self.bodies(["/copy/m"])
        self.assertEqual(got, [b"h1 /copy/m"])
        for _ in range(100):
            if b"/base/copy/m" in self.h1.seen:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(self.h1.seen, [b"/copy/m", b"/base/copy/m"])
        assert self.service is not None
        document = rawdata(self.service.table)["services"]
        self.assertEqual(
            document["keep@file"]["loadBalancer"]["servers"],
            [{"url": f"http://127.0.0.1:{self.h1_port()}/base", "preservePath": True}],
        )

    def h1_port(self) -> int:
        assert self.service is not None
        for router in self.service.table.routers:
            if router.name == "keep@file":
                return router.service.definition.servers[0].port  # type: ignore[no-any-return]
        raise AssertionError("keep@file")

    @defer.inlineCallbacks
    def test_health_check_path(self) -> None:
        """Health check paths resolve against the server URL (Go's URL.Parse): "hc?x=1" on
        /base is /hc?x=1, "hc" on /base/ is /base/hc, preservePath or not."""
        self.start(self.clock)
        self.clock.advance(10)
        assert self.service is not None
        checkers = self.service.health.checkers.values()  # type: ignore[union-attr]
        for _ in range(200):
            if len(self.h1.seen) >= 2 and not any(c.in_flight for c in checkers):
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(sorted(self.h1.seen), [b"/base/hc", b"/hc?x=1"])
