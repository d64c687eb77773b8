"""The HTTP engine against the edge-hardening findings: raw bytes in through a real listener,
raw bytes seen by a real backend and by the client."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase

from tests.hardeningfixture import (
    Collector,
    HardeningTestCase,
    first_head,
    header_values,
    ok,
    wait_for,
)
from tsproxy.config.static import ENCODED_CHARACTERS, parse_static
from tsproxy.http.backend import RELAY_BUFFER
from tsproxy.testing import listen_app

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def _tick() -> defer.Deferred:
    return deferLater(reactor, 0.01, lambda: None)


class SmugglingTests(HardeningTestCase):
    """Finding 1: framing is the proxy's own; a backend connection is reused only clean."""

    def setUp(self) -> None:
        super().setUp()
        self.configure()

    @defer.inlineCallbacks
    def test_connectionCannotRemoveContentLength(self) -> None:
        """`Connection: Content-Length` does not turn the body into a second request on the
        pooled backend connection: the next client gets its own answer."""
        smuggled = b"GET /SMUGGLED HTTP/1.1\r\nHost: h\r\nX-Real-Ip: 10.6.6.6\r\n\r\n"
        attack = (
            b"POST /a HTTP/1.1\r\nHost: h\r\nConnection: Content-Length\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(smuggled), smuggled)
        )
        first = yield self.connect()
        first.transport.write(attack)
        yield wait_for(lambda: b"seen POST /a" in first.received)
        raw = yield self.exchange(b"GET /normal HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        self.assertIn(b"seen GET /normal HTTP/1.1", raw)
        targets = [r.split(b" ")[1] for r in self.backend.requests]
        self.assertEqual(targets, [b"/a", b"/normal"])
        post = self.backend.requests[0]
        self.assertEqual(
            header_values(first_head(post), b"content-length"), [b"%d" % len(smuggled)]
        )
        self.assertTrue(post.endswith(smuggled))

    @defer.inlineCallbacks
    def test_connectionCannotRemoveHost(self) -> None:
        """`Connection: Host` leaves the Host the request was routed with."""
        raw = yield self.exchange(b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: Host, close\r\n\r\n")
        self.assertIn(b"seen GET /x", raw)
        (request,) = self.backend.requests
        self.assertEqual(header_values(first_head(request), b"host"), [b"h"])

    @defer.inlineCallbacks
    def test_repeatedContentLengthSentOnce(self) -> None:
        """`Content-Length: 3, 3` and a repeated equal line reach the backend as one value;
        different values are refused."""
        for lengths in (b"Content-Length: 3, 3\r\n", b"Content-Length: 3\r\nContent-Length: 3\r\n"):
            raw = yield self.exchange(
                b"POST /p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n%s\r\nabc" % lengths
            )
            self.assertIn(b"seen POST /p", raw)
            request = self.backend.requests.pop()
            self.assertEqual(header_values(first_head(request), b"content-length"), [b"3"])
            self.assertTrue(request.endswith(b"\r\n\r\nabc"))
        raw = yield self.exchange(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\nabc")
        self.assertTrue(raw.startswith(b"HTTP/1.1 400 "), raw)

    @defer.inlineCallbacks
    def test_earlyAnswerNeverReused(self) -> None:
        """A backend that answers before the request body ended is not reused: the rest of
        that body never prefixes the next client's request."""
        self.backend.answer = lambda request: None
        first = yield self.connect()
        first.transport.write(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n1234567")
        yield wait_for(lambda: len(self.backend.conns) == 1 and self.backend.raw)
        early = self.backend.conns[0]
        yield wait_for(lambda: b"1234567" in b"".join(self.backend.raw))
        early.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        yield wait_for(lambda: b"\r\n\r\nok" in first.received)
        first.transport.write(b"890")
        yield first.closed
        self.backend.answer = ok
        raw = yield self.exchange(b"GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        self.assertIn(b"seen GET /next HTTP/1.1", raw)
        self.assertEqual(len(self.backend.conns), 2)
        self.assertNotIn(b"890GET", b"".join(self.backend.raw))


class _Observer:
    """Records the status of each finished exchange (the entrypoint's observer)."""

    def __init__(self) -> None:
        self.statuses: list = []

    def connection_opened(self, entrypoint: str, protocol: str) -> None:
        pass

    def connection_closed(self, entrypoint: str, protocol: str) -> None:
        pass

    def exchange(self, record: Any) -> None:
        self.statuses.append(record.status)


class ClientGoneTests(HardeningTestCase):
    """Finding 4: a client that leaves cancels its exchange at once (499)."""

    def setUp(self) -> None:
        super().setUp()
        self.backend.answer = lambda request: None  # never answers
        self.configure()

    @defer.inlineCallbacks
    def test_closeAbortsBackend(self) -> None:
        """Clients that give up on a backend that never answers leave no sockets behind,
        and each exchange is counted as 499."""
        (web,) = [f for f in self.service.factories if f.name == "web"]
        observer = _Observer()
        web.observer = observer
        clients = []
        for i in range(20):
            client = yield self.connect()
            client.transport.write(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i)
            clients.append(client)
        yield wait_for(lambda: len(self.backend.requests) == 20)
        for client in clients:
            client.transport.loseConnection()
        yield wait_for(lambda: self.backend.closed == 20)
        (factory,) = [f for f in self.service.factories if f.name == "web"]
        yield wait_for(lambda: not list(factory.connections))
        self.assertEqual(len(self.service.pool.active), 0)
        self.assertEqual(observer.statuses, [499] * 20)

    @defer.inlineCallbacks
    def test_halfCloseAbortsToo(self) -> None:
        """A FIN while the answer is pending ends the exchange as well (Go and nginx)."""
        client = yield self.connect()
        client.transport.write(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        yield wait_for(lambda: len(self.backend.requests) == 1)
        client.transport.loseWriteConnection()
        yield wait_for(lambda: self.backend.closed == 1)
        yield client.closed


class HostTests(HardeningTestCase):
    """Finding 5 and 9: the routed host is the host sent; bad hosts are refused."""

    def setUp(self) -> None:
        super().setUp()
        self.configure()

    @defer.inlineCallbacks
    def test_absoluteFormAuthorityIsHost(self) -> None:
        """`GET http://admin.internal/x` with `Host: public.test` goes out with
        `Host: admin.internal` and the origin-form target."""
        raw = yield self.exchange(
            b"GET http://admin.internal/x?q=1 HTTP/1.1\r\nHost: public.test\r\n"
            b"Connection: close\r\n\r\n"
        )
        self.assertIn(b"seen GET /x?q=1 HTTP/1.1", raw)
        head = first_head(self.backend.requests[0])
        self.assertEqual(header_values(head, b"host"), [b"admin.internal"])
        self.assertEqual(header_values(head, b"x-forwarded-host"), [b"admin.internal"])

    @defer.inlineCallbacks
    def test_invalidHostRefused(self) -> None:
        """A Host naming a list, with a space or a slash, is answered 400."""
        for host in (b"h, admin.internal", b"h,admin.internal", b"a b", b"h/x", b"h\\x", b"h@x"):
            raw = yield self.exchange(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
            self.assertTrue(raw.startswith(b"HTTP/1.1 400 "), (host, raw))
        self.assertEqual(self.backend.requests, [])

    @defer.inlineCallbacks
    def test_http10WithoutHost(self) -> None:
        """An HTTP/1.0 request without Host is sent with the server's address as Host."""
        raw = yield self.exchange(b"GET /hostless HTTP/1.0\r\n\r\n")
        self.assertIn(b"seen GET /hostless HTTP/1.1", raw)
        head = first_head(self.backend.requests[0])
        self.assertEqual(header_values(head, b"host"), [b"127.0.0.1:%d" % self.backend_port])


class PathTests(HardeningTestCase):
    """Finding 6: the path is cleaned before routing, and forwarded as routed."""

    def setUp(self) -> None:
        super().setUp()
        self.configure()

    @defer.inlineCallbacks
    def test_dotSegmentsCannotBypassRule(self) -> None:
        """``!PathPrefix(`/admin`)`` holds for /x/../admin, /./admin, //admin, %2e%2e."""
        for path in (b"/x/../admin", b"/./admin", b"//admin", b"/x/%2e%2e/admin", b"/x/%2E./admin"):
            raw = yield self.exchange(
                b"GET %s HTTP/1.1\r\nHost: acl.test\r\nConnection: close\r\n\r\n" % path
            )
            self.assertTrue(raw.startswith(b"HTTP/1.1 404 "), (path, raw))
        self.assertEqual(self.backend.requests, [])

    @defer.inlineCallbacks
    def test_cleanPathForwarded(self) -> None:
        """What is routed is what is sent: dot segments gone, slashes merged, the trailing
        slash and the query kept, unreserved escapes decoded, others upper-cased."""
        cases = [
            (b"/a//b/./c/../d/?x=/../", b"/a/b/d/?x=/../"),
            (b"/a/%7euser/%2fz", b"/a/~user/%2Fz"),
            (b"/..", b"/"),
        ]
        for target, sent in cases:
            raw = yield self.exchange(
                b"GET %s HTTP/1.1\r\nHost: acl.test\r\nConnection: close\r\n\r\n" % target
            )
            self.assertIn(b"seen GET %s HTTP/1.1" % sent, raw)

    @defer.inlineCallbacks
    def test_badEscapeOrFragmentRefused(self) -> None:
        """A stray % or a # in the target is answered 400."""
        for target in (b"/a%", b"/a%zz", b"/a#frag", b"/a?b#c"):
            raw = yield self.exchange(b"GET %s HTTP/1.1\r\nHost: acl.test\r\n\r\n" % target)
            self.assertTrue(raw.startswith(b"HTTP/1.1 400 "), (target, raw))


class SanitizeOffTests(HardeningTestCase):
    """http.sanitizePath: false leaves the path as sent (Traefik's option)."""

    http_options = "    http:\n      sanitizePath: false\n"

    @defer.inlineCallbacks
    def test_pathKept(self) -> None:
        """With sanitizePath off, //a/../b is forwarded unchanged."""
        self.configure()
        raw = yield self.exchange(b"GET //a/../b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        self.assertIn(b"seen GET //a/../b HTTP/1.1", raw)


def _encoded_options(config: dict) -> str:
    """An entrypoint http.encodedCharacters section from a vector's (middleware) config,
    whose unset options mean false (the middleware's defaults)."""
    lines = ["    http:\n      encodedCharacters:\n"]
    for option, _ in ENCODED_CHARACTERS:
        lines.append("        %s: %s\n" % (option, "true" if config.get(option) else "false"))
    return "".join(lines)


class StaticOptionsTests(SynchronousTestCase):
    """The entrypoint ``http:`` options: values, located errors, notices."""

    def test_table(self) -> None:
        """Each section gives its values, or its located error, or its notice."""
        cases = [
            ("", ((), True, 1 << 20, 100), None, ()),
            (
                "http:\n      maxHeaderBytes: 4096\n      maxHeaders: 7\n      sanitizePath: false\n",
                ((), False, 4096, 7),
                None,
                (),
            ),
            (
                "http:\n      encodedCharacters: {allowEncodedSlash: false, allowEncodedHash: false}\n",
                (("2F", "23"), True, 1 << 20, 100),
                None,
                (),
            ),
            (
                "http:\n      maxHeaders: 0\n",
                None,
                "5: entryPoints.web.http.maxHeaders: must be",
                (),
            ),
            (
                "http:\n      sanitizePath: maybe\n",
                None,
                "5: entryPoints.web.http.sanitizePath",
                (),
            ),
            ("http:\n      bogus: 1\n", None, "5: entryPoints.web.http.bogus: unknown field", ()),
            (
                "http:\n      encodedCharacters: {nope: true}\n",
                None,
                "5: entryPoints.web.http.encodedCharacters.nope: unknown field",
                (),
            ),
            (
                "http:\n      redirections: {}\n",
                ((), True, 1 << 20, 100),
                None,
                (),
            ),
        ]
        for section, values, error, notices in cases:
            text = 'entryPoints:\n  web:\n    address: ":80"\n' + (
                "    " + section if section else ""
            )
            config, errors, got_notices = parse_static(text)
            if error is not None:
                self.assertEqual(len(errors), 1, section)
                self.assertIn(error, str(errors[0]), section)
                continue
            self.assertEqual(errors, (), section)
            web = config.entrypoint("web")
            got = (web.denied_escapes, web.sanitize_path, web.max_header_bytes, web.max_headers)
            self.assertEqual(got, values, section)
            self.assertEqual(got_notices, notices, section)


class EncodedCharactersTests(HardeningTestCase):
    """Every case of Traefik's encodedCharacters vectors, on the entrypoint options."""

    def cases(self) -> Any:
        with open(os.path.join(DATA, "encodedCharacters.json")) as f:
            return json.load(f)["cases"]

    def test_deniedSets(self) -> None:
        """The denied set for each config is the vector's (upper-case hex; the lower-case
        forms are refused too, since escapes are upper-cased first)."""
        checked = 0
        for case in self.cases():
            if case.get("harness") != "deniedSet":
                continue
            text = 'entryPoints:\n  web:\n    address: ":80"\n' + _encoded_options(case["config"])
            config, errors, _ = parse_static(text)
            self.assertEqual(errors, ())
            expected = sorted({d.upper().lstrip("%") for d in case["expect"]["denied"]})
            self.assertEqual(sorted(config.entrypoint("web").denied_escapes), expected, case)
            checked += 1
        self.assertEqual(checked, 3)

    def test_defaultsAllowAll(self) -> None:
        """Traefik 3.7's entrypoint defaults: every encoded character allowed, path sanitized."""
        config, _, _ = parse_static('entryPoints:\n  web:\n    address: ":80"\n')
        entrypoint = config.entrypoint("web")
        self.assertEqual((entrypoint.denied_escapes, entrypoint.sanitize_path), ((), True))

    @defer.inlineCallbacks
    def test_requests(self) -> None:
        """Each request case through a listener configured as the case says."""
        checked = 0
        for case in self.cases():
            if "request" not in case:
                continue
            self.http_options = _encoded_options(case["config"])
            self.configure()
            url = case["request"]["url"].encode()
            raw = yield self.exchange(
                b"GET %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" % url
            )
            status = int(raw.split(b" ", 2)[1])
            expect = case["expect"]
            self.assertEqual(status, expect["status"], case["name"])
            self.assertEqual(bool(self.backend.requests), expect["backend"]["called"], case["name"])
            self.backend.requests[:] = []
            yield self.service.stopService()
            checked += 1
        self.assertEqual(checked, 14)


class ReadTimeoutTests(HardeningTestCase):
    """Finding 7: readTimeout covers the whole request; 408 when it runs out."""

    read_timeout = "    transport: {respondingTimeouts: {readTimeout: 10s}}\n"

    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.configure(clock=self.clock)

    @defer.inlineCallbacks
    def test_bodyDrip(self) -> None:
        """A body sent a byte every 2 s gets 408 once 10 s have gone since the request began."""
        client = yield self.connect()
        client.transport.write(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n")
        yield wait_for(lambda: len(self.backend.conns) == 1)
        for _ in range(5):
            client.transport.write(b"x")
            yield wait_for(lambda: b"x" in b"".join(self.backend.raw))
            self.assertEqual(client.received, b"")
            self.clock.advance(2)
        raw = yield client.closed
        self.assertTrue(raw.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), raw)
        yield wait_for(lambda: self.backend.closed == 1)

    @defer.inlineCallbacks
    def test_answeredBeforeBodyEnds(self) -> None:
        """A backend that answered early, a body that never ends: the connection is reset
        at readTimeout (the answer is out, a 408 cannot follow it)."""
        self.backend.answer = lambda request: None
        client = yield self.connect()
        client.transport.write(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nx")
        yield wait_for(lambda: b"x" in b"".join(self.backend.raw))
        self.backend.conns[0].transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        yield wait_for(lambda: client.received.endswith(b"\r\n\r\nok"))
        self.clock.advance(10)
        raw = yield client.closed
        self.assertNotIn(b"408", raw)
        self.assertFalse(client.reason.check(ConnectionDone))

    @defer.inlineCallbacks
    def test_unfinishedHead(self) -> None:
        """A head that never completes is answered 408, not closed silently."""
        client = yield self.connect()
        client.transport.write(b"GET / HTTP/1.1\r\nHost: h\r\n")
        yield wait_for(lambda: self.clock.getDelayedCalls() != [])
        for _ in range(20):
            yield _tick()
        self.clock.advance(10)
        raw = yield client.closed
        self.assertTrue(raw.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), raw)

    @defer.inlineCallbacks
    def test_bodyInTimeKeepsConnection(self) -> None:
        """A body that ends in time is answered and the connection is kept (idle timer)."""
        client = yield self.connect()
        client.transport.write(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nx")
        yield wait_for(lambda: b"x" in b"".join(self.backend.raw))
        self.clock.advance(9)
        client.transport.write(b"y")
        yield wait_for(lambda: b"seen POST /p" in client.received)
        self.clock.advance(9)
        for _ in range(10):
            yield _tick()
        self.assertIsNone(client.reason)


class BackendResetTests(HardeningTestCase):
    """Finding 8: a backend error mid-body never looks like the body's end."""

    def setUp(self) -> None:
        super().setUp()
        self.backend.answer = lambda request: b"HTTP/1.1 200 OK\r\n\r\npartial body"
        self.configure()

    @defer.inlineCallbacks
    def test_resetMidCloseDelimitedBody(self) -> None:
        """A length-less body cut by a reset: the client sees no last chunk, and a reset."""
        client = yield self.connect()
        client.transport.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        yield wait_for(lambda: b"partial body" in client.received)
        self.backend.conns[0].reset()
        raw = yield client.closed
        self.assertIn(b"Transfer-Encoding: chunked", raw)
        self.assertFalse(raw.endswith(b"0\r\n\r\n"), raw)

    @defer.inlineCallbacks
    def test_cleanCloseEndsBody(self) -> None:
        """A clean close ends a length-less body: the last chunk is sent."""
        client = yield self.connect()
        client.transport.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        yield wait_for(lambda: b"partial body" in client.received)
        self.backend.conns[0].transport.loseConnection()
        yield wait_for(lambda: client.received.endswith(b"0\r\n\r\n"))


class InterimAndExpectTests(HardeningTestCase):
    """Finding 9: 1xx floods are capped; Expect: 100-continue is answered by the proxy."""

    @defer.inlineCallbacks
    def test_interimFlood(self) -> None:
        """5,000 interim responses: at most one 100 reaches the client, then 502."""
        self.backend.answer = lambda request: b"HTTP/1.1 100 Continue\r\n\r\n" * 5000
        self.configure()
        raw = yield self.exchange(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        self.assertLessEqual(raw.count(b"100 Continue"), 1)
        self.assertIn(b"HTTP/1.1 502 Bad Gateway\r\n", raw)

    @defer.inlineCallbacks
    def test_expectContinueFromProxy(self) -> None:
        """A backend that waits for the body: the proxy sends 100 Continue after 1 s."""
        clock = Clock()
        self.configure(clock=clock)
        client = yield self.connect()
        client.transport.write(
            b"PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        yield wait_for(lambda: self.backend.raw)
        clock.advance(0.5)
        self.assertEqual(client.received, b"")
        clock.advance(0.5)
        yield wait_for(lambda: client.received == b"HTTP/1.1 100 Continue\r\n\r\n")
        client.transport.write(b"hello")
        yield wait_for(lambda: b"seen PUT /u" in client.received)
        self.assertTrue(self.backend.requests[0].endswith(b"\r\n\r\nhello"))

    @defer.inlineCallbacks
    def test_backendContinueRelayedOnce(self) -> None:
        """A backend's own 100 Continue is relayed, and the proxy sends none of its own."""
        clock = Clock()
        self.backend.answer = lambda request: None
        self.configure(clock=clock)
        client = yield self.connect()
        client.transport.write(
            b"PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        yield wait_for(lambda: self.backend.conns and self.backend.raw)
        self.backend.conns[0].transport.write(b"HTTP/1.1 100 Continue\r\n\r\n" * 2)
        yield wait_for(lambda: client.received)
        clock.advance(2)
        for _ in range(10):
            yield _tick()
        self.assertEqual(client.received, b"HTTP/1.1 100 Continue\r\n\r\n")


class HeaderCountTests(HardeningTestCase):
    """Finding 9: the number of header lines is capped (http.maxHeaders, 100 by default)."""

    @defer.inlineCallbacks
    def test_default(self) -> None:
        """100 header lines pass (Host included); 101 get 431; 10,000 too."""
        self.configure()
        for count, status in ((100, b"200"), (101, b"431"), (10000, b"431")):
            lines = b"".join(b"X-H%d: v\r\n" % i for i in range(count - 2))
            raw = yield self.exchange(
                b"GET / HTTP/1.1\r\nHost: h\r\n%sConnection: close\r\n\r\n" % lines
            )
            self.assertTrue(raw.startswith(b"HTTP/1.1 %s " % status), (count, raw[:80]))

    @defer.inlineCallbacks
    def test_configured(self) -> None:
        """http.maxHeaders: 3 allows three lines."""
        self.http_options = "    http:\n      maxHeaders: 3\n"
        self.configure()
        raw = yield self.exchange(
            b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nConnection: close\r\n\r\n"
        )
        self.assertTrue(raw.startswith(b"HTTP/1.1 431 "), raw)
        raw = yield self.exchange(b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nConnection: close\r\n\r\n")
        self.assertTrue(raw.startswith(b"HTTP/1.1 200 "), raw)


class _Stalled(Collector):
    def connectionMade(self) -> None:
        self.transport.pauseProducing()


class SlowReaderTests(HardeningTestCase):
    """Finding 10: what one connection buffers toward a slow client is bounded (64 KiB)."""

    @defer.inlineCallbacks
    def test_boundedBuffer(self) -> None:
        """A client not reading a 4 MB body: the proxy holds at most 2 x RELAY_BUFFER for it,
        and the backend is paused."""
        app = listen_app(reactor, "big")
        self.addCleanup(app.stopListening)
        self.backend_port = app.getHost().port
        self.configure()
        client = _Stalled()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), client)
        self.addCleanup(client.transport.abortConnection)
        (factory,) = [f for f in self.service.factories if f.name == "web"]
        (conn,) = list(factory.connections)
        conn.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        client.transport.write(b"GET /bytes/4000000 HTTP/1.1\r\nHost: h\r\n\r\n")

        def buffered() -> int:
            transport = conn.transport
            return len(transport.dataBuffer) + transport._tempDataLen

        peak = 0
        for _ in range(100):
            peak = max(peak, buffered())
            if conn.backend is not None and "peer" in conn.backend.gate.reasons:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        for _ in range(20):
            peak = max(peak, buffered())
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertIn("peer", conn.backend.gate.reasons)
        self.assertLessEqual(peak, 2 * RELAY_BUFFER + 1024)
