"""End-to-end tests of the traffic-control middlewares through a running proxy with real
backends and raw-socket clients: rateLimit, inFlightReq, retry, circuitBreaker, compress."""

from __future__ import annotations

import gzip
import time
from typing import Any, List

try:
    import zstandard
except ImportError:  # PyPy: no wheel, and the compress middleware leaves zstd out there
    zstandard = None  # type: ignore[assignment]
from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from tests.http.test_http_middlewares import header, ingress, request
from tests.proxyfixture import ProxyTestCase, RawClient, free_port, raw_exchange
from tsproxy.middlewares.compress import _brotli
from tsproxy.testing import listen_app

STATIC = """\
entryPoints:
  web:
    address: "127.0.0.1:0"
log:
  level: ERROR
"""

SERVICE = """\
---
apiVersion: v1
kind: Service
metadata: {name: %(name)s}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: %(name)s}
subsets: [{addresses: [%(ips)s], ports: [{name: http, port: %(port)d}]}]
"""

MIDDLEWARES = """\
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: limit}
spec: {rateLimit: {average: 10, burst: 5}}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: inflight}
spec: {inFlightReq: {amount: 1, sourceCriterion: {requestHeaderName: X-Src}}}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: retry}
spec: {retry: {attempts: 3}}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: breaker}
spec:
  circuitBreaker:
    expression: NetworkErrorRatio() > 0.5
    checkPeriod: 10ms
    fallbackDuration: 300ms
    recoveryDuration: 300ms
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: squeeze}
spec: {compress: {minResponseBodyBytes: 5}}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: pages}
spec:
  errors:
    status: ["500-599"]
    service: {name: pages, port: 80}
    query: "/{status}.html?from={url}"
    statusRewrites: {"502": 503}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: buffer}
spec:
  buffering:
    maxRequestBodyBytes: 1000
    memRequestBodyBytes: 100
    maxResponseBodyBytes: 2000
    retryExpression: IsNetworkError() && Attempts() < 3
"""


def service(name: str, port: int, ips: str = "{ip: 127.0.0.1}") -> str:
    return SERVICE % {"name": name, "port": port, "ips": ips}


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def body_of(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in response else b""


def with_header(payload: bytes, line: str) -> bytes:
    return payload.replace(b"\r\n\r\n", b"\r\n" + line.encode() + b"\r\n\r\n", 1)


class TrafficProxyTests(ProxyTestCase):
    """A proxy whose routes use the traffic-control middlewares."""

    def setUp(self) -> None:
        super().setUp()
        self.silent_port, _ = self.start_silent()
        self.app_port = self.start_app("app")
        self.dead_port = free_port()
        self.write("tsproxy.yaml", STATIC)
        backends = (
            service("app", self.app_port)
            + service("silent", self.silent_port)
            + service("dead", self.dead_port)
            + service("pages", self.start_app("pages"))
        )
        self.write("backend.yaml", backends)
        self.write("middlewares.yaml", MIDDLEWARES)
        routes = (
            ingress("limited", "limit.example", "{name: limit}")
            + ingress("held", "held.example", "{name: inflight}", service="silent")
            + ingress("counted", "counted.example", "{name: inflight}")
            + ingress("broken", "broken.example", "{name: breaker}", service="dead")
            + ingress("squeezed", "squeeze.example", "{name: squeeze}")
            + ingress("paged", "paged.example", "{name: pages}", service="dead")
            + ingress("fine", "fine.example", "{name: pages}")
            + ingress("buffered", "buffer.example", "{name: buffer}")
        )
        self.write("routes.yaml", routes)

    def get(self, payload: bytes) -> Any:
        assert self.service is not None
        return raw_exchange(self.service.port_of("web"), payload, half_close=False)

    @defer.inlineCallbacks
    def test_rate_limit(self) -> Any:
        """average 10/s burst 5: a quick burst of 20 lets 5 (plus what refilled) through;
        the rest get 429 with Retry-After; the backend saw only those let through."""
        self.start_proxy()
        started = time.monotonic()
        statuses: List[int] = []
        for _ in range(20):
            response = yield self.get(request("limit.example"))
            statuses.append(status_of(response))
            if statuses[-1] == 429:
                self.assertEqual(header(response, "Retry-After"), ["1"])
                self.assertEqual(body_of(response), b"Too Many Requests")
        elapsed = time.monotonic() - started
        passed = statuses.count(200)
        self.assertEqual(passed + statuses.count(429), 20)
        self.assertTrue(5 <= passed <= 5 + int(elapsed * 10) + 1, (passed, elapsed))
        self.assertEqual(len(self.apps["app"].requests), passed)

    @defer.inlineCallbacks
    def test_in_flight(self) -> Any:
        """amount 1 per X-Src: a held request makes the next of its source 429, another
        source passes; once the held client leaves, its source passes again."""
        self.start_proxy()
        assert self.service is not None
        held = RawClient()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.service.port_of("web"))
        yield connectProtocol(endpoint, held)
        held.transport.write(with_header(request("held.example"), "X-Src: a"))
        yield task.deferLater(reactor, 0.2, lambda: None)
        refused = yield self.get(with_header(request("counted.example"), "X-Src: a"))
        self.assertEqual(status_of(refused), 429)
        self.assertEqual(body_of(refused), b"max connections reached: 1")
        other = yield self.get(with_header(request("counted.example"), "X-Src: b"))
        self.assertEqual(status_of(other), 200)
        held.transport.abortConnection()
        yield held.closed

        @defer.inlineCallbacks
        def passes() -> Any:
            response = yield self.get(with_header(request("counted.example"), "X-Src: a"))
            return status_of(response) == 200

        ok = False
        for _ in range(50):
            ok = yield passes()
            if ok:
                break
            yield task.deferLater(reactor, 0.02, lambda: None)
        self.assertTrue(ok)

    @defer.inlineCallbacks
    def test_retry_no_errors(self) -> Any:
        """A service whose second server refuses connections: with retry every request of a
        run gets 200 (no 502), the attempts go to the live server."""
        dead = "{ip: 127.0.0.1}, {ip: 127.0.0.2}"
        self.write(
            "more.yaml",
            service("pair", self.app_port, dead)
            + ingress("retried", "retry.example", "{name: retry}", service="pair")
            + ingress("bare", "bare.example", "", service="pair"),
        )
        self.start_proxy()
        statuses = []
        for _ in range(12):
            response = yield self.get(request("retry.example"))
            statuses.append(status_of(response))
        self.assertEqual(statuses, [200] * 12)
        bare = []
        for _ in range(6):
            response = yield self.get(request("bare.example"))
            bare.append(status_of(response))
        self.assertIn(502, bare)  # the same service without retry does fail

    @defer.inlineCallbacks
    def test_buffering(self) -> Any:
        """buffering: a body over maxRequestBodyBytes gets 413 and never reaches the backend
        (announced or chunked); one under it reaches it whole with a Content-Length; a
        response over maxResponseBodyBytes gets 500; a smaller one comes with its length."""
        self.start_proxy()
        app = self.apps["app"]
        post = b"POST /echo HTTP/1.1\r\nHost: buffer.example\r\nConnection: close\r\n"
        over = [
            post + b"Content-Length: 1001\r\n\r\n" + b"a" * 1001,
            post
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + b"3e8\r\n"
            + b"b" * 1000
            + b"\r\n5\r\nbbbbb\r\n0\r\n\r\n",
        ]
        for payload in over:
            # Answered and closed at once (not at the idle timeout), the body unread.
            response = yield self.get(payload).addTimeout(5, reactor)
            self.assertEqual(status_of(response), 413)
            self.assertEqual(body_of(response), b"Request Entity Too Large")
        self.assertEqual(app.requests, [])  # the service was never asked
        chunks = b"".join(b"%x\r\n%s\r\n" % (50, b"c" * 50) for _ in range(12))
        response = yield self.get(
            post + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
        )
        self.assertEqual(status_of(response), 200)
        self.assertEqual(body_of(response), b"c" * 600)
        self.assertIn(b"\r\nContent-Length: 600\r\n", response)
        seen = app.requests[-1]["headers"]
        self.assertEqual(seen["content-length"], ["600"])
        self.assertNotIn("transfer-encoding", seen)
        response = yield self.get(request("buffer.example", "/bytes/2001"))
        self.assertEqual(status_of(response), 500)
        self.assertEqual(body_of(response), b"Internal Server Error")
        response = yield self.get(request("buffer.example", "/bytes/2000"))
        self.assertEqual(status_of(response), 200)
        self.assertEqual(body_of(response), b"x" * 2000)
        self.assertIn(b"\r\nContent-Length: 2000\r\n", response)

    @defer.inlineCallbacks
    def test_buffering_retry(self) -> Any:
        """buffering's retryExpression replays the buffered body: a service whose second
        server refuses connections answers every POST whole, each attempt with the body."""
        self.write(
            "more.yaml",
            service("pair", self.app_port, "{ip: 127.0.0.1}, {ip: 127.0.0.2}")
            + ingress("rebuffered", "rebuffer.example", "{name: buffer}", service="pair"),
        )
        self.start_proxy()
        payload = (
            b"POST /echo HTTP/1.1\r\nHost: rebuffer.example\r\nConnection: close\r\n"
            b"Content-Length: 11\r\n\r\nhello world"
        )
        for _ in range(8):
            response = yield self.get(payload)
            self.assertEqual(status_of(response), 200)
            self.assertEqual(body_of(response), b"hello world")
        seen = [r["headers"]["content-length"] for r in self.apps["app"].requests]
        self.assertEqual(seen, [["11"]] * 8)  # each attempt that got through, whole

    @defer.inlineCallbacks
    def test_circuit_breaker(self) -> Any:
        """Network errors trip the breaker (503 fallback without asking the server); after
        fallbackDuration it lets requests through again and, the server back, recovers."""
        self.start_proxy()
        first = yield self.get(request("broken.example"))
        self.assertEqual(status_of(first), 502)
        yield task.deferLater(reactor, 0.02, lambda: None)
        second = yield self.get(request("broken.example"))
        self.assertEqual(status_of(second), 503)
        self.assertEqual(body_of(second), b"Service Unavailable")
        port = listen_app(reactor, "back", self.dead_port)
        self.addCleanup(port.stopListening)
        statuses: List[int] = []
        deadline = time.monotonic() + 3.0
        while statuses[-5:] != [200] * 5 and time.monotonic() < deadline:
            response = yield self.get(request("broken.example"))
            statuses.append(status_of(response))
            yield task.deferLater(reactor, 0.03, lambda: None)
        self.assertEqual(statuses[-5:], [200] * 5, statuses)
        self.assertIn(503, statuses)  # still tripped, then ramping up, before standby
        self.assertEqual(set(statuses), {200, 503})

    @defer.inlineCallbacks
    def test_error_page(self) -> Any:
        """A 502 from a dead server is replaced by the page service's answer, sent with the
        rewritten status; the page service is asked for the query with {status} and {url};
        a 200 passes untouched."""
        self.start_proxy()
        response = yield self.get(request("paged.example", "/x?y=1"))
        self.assertEqual(status_of(response), 503)
        self.assertEqual(dechunk(body_of(response)) or body_of(response), b"Hello pages\n")
        asked = self.apps["pages"].requests
        self.assertEqual(len(asked), 1)
        self.assertIn("/503.html?from=http%3A%2F%2Fpaged.example%2Fx%3Fy%3D1", str(asked[0]))
        fine = yield self.get(request("fine.example"))
        self.assertEqual((status_of(fine), body_of(fine)), (200, b"Hello app\n"))

    @defer.inlineCallbacks
    def test_compress(self) -> Any:
        """gzip, br and zstd (where zstandard is installed: not on PyPy) as the client asks,
        decodable by the real decoders, with Vary: Accept-Encoding; identity when the client
        accepts none."""
        self.start_proxy()
        decoders = {
            "gzip": gzip.decompress,
            "br": lambda data: bytes(_brotli().decompress(data)),
        }
        if zstandard is not None:
            decoders["zstd"] = lambda data: (
                zstandard.ZstdDecompressor().decompressobj().decompress(data)
            )
        for encoding, decode in decoders.items():
            payload = with_header(request("squeeze.example"), f"Accept-Encoding: {encoding}")
            response = yield self.get(payload)
            self.assertEqual(status_of(response), 200)
            self.assertEqual(header(response, "Content-Encoding"), [encoding])
            self.assertEqual(header(response, "Vary"), ["Accept-Encoding"])
            body = dechunk(body_of(response))
            self.assertEqual(decode(body), b"Hello app\n")
        plain = yield self.get(request("squeeze.example"))
        self.assertEqual(header(plain, "Content-Encoding"), [])
        self.assertEqual(body_of(plain), b"Hello app\n")


def dechunk(data: bytes) -> bytes:
    """A chunked body's bytes."""
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out
