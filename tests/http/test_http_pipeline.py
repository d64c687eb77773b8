"""Tests for tsproxy.http.pipeline: the Request the steps see, running them (in order, later,
failing closed), the forwarded head, answers and response hooks; and the redirection step."""

from __future__ import annotations

from typing import Any, List, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.http.pipeline import (
    answer_bytes,
    forwarded_head,
    hooked_head,
    local_answer,
    make_request,
    run_chain,
)
from tsproxy.http.wire import RequestHead, ResponseHead
from tsproxy.middlewares.base import Answer, Request, Response
from tsproxy.middlewares.redirection import SchemeRedirect


def head(target: bytes = b"/a/b?x=1", method: bytes = b"GET") -> RequestHead:
    return RequestHead(
        method,
        target,
        b"HTTP/1.1",
        [(b"Host", b"h.example"), (b"X-Y", b"\xe9")],
        host=b"h.example",
        path=target,
    )


def request(target: bytes = b"/a/b?x=1", method: bytes = b"GET") -> Request:
    return make_request(head(target, method), "10.0.0.1", False, tuple)


class Step:
    """Records its name on the request, then returns ``result``."""

    def __init__(self, name: str, result: Any = None, hook: bool = False) -> None:
        self.name = name
        self.result = result
        self.hook = hook

    def handle(self, req: Request) -> Any:
        req.notes.setdefault("ran", []).append(self.name)
        if self.hook:
            req.on_response(lambda r: r.headers.add("X-Hook", self.name))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class RequestTests(SynchronousTestCase):
    """make_request and forwarded_head."""

    def test_table(self) -> None:
        """Target split into path and query (None without "?"); headers as latin-1 text."""
        for target, path, query in [
            (b"/a/b?x=1", "/a/b", "x=1"),
            (b"/a", "/a", None),
            (b"/a?", "/a", ""),
            (b"*", "*", None),
        ]:
            with self.subTest(target=target):
                req = request(target)
                self.assertEqual((req.path, req.query, req.target), (path, query, target.decode()))
        self.assertEqual(request().headers.get("x-y"), "\xe9")

    def test_forwarded(self) -> None:
        """What the steps changed is what goes on (Host included); bytes survive the latin-1
        round trip."""
        req = request()
        req.method = "POST"
        req.path = "/b"
        req.headers.set("Host", "other.example")
        req.headers.add("X-New", "1")
        out = forwarded_head(head(), req)
        self.assertEqual((out.method, out.target, out.path), (b"POST", b"/b?x=1", b"/b?x=1"))
        # Host travels apart (the engine writes it first): the one a step set.
        self.assertEqual(out.host, b"other.example")
        self.assertEqual(out.headers, [(b"X-Y", b"\xe9"), (b"X-New", b"1")])


class RunChainTests(SynchronousTestCase):
    """Steps run in order until one answers; later, through Deferreds; failing closed."""

    def test_table(self) -> None:
        """(steps, result, steps that ran)."""
        deny = Answer(403)
        cases: List[Any] = [
            ([Step("a"), Step("b")], None, ["a", "b"]),
            ([Step("a"), Step("b", deny), Step("c")], deny, ["a", "b"]),
            ([Step("a", succeed(None)), Step("b")], None, ["a", "b"]),
            ([Step("a", succeed(deny)), Step("b")], deny, ["a"]),
            ([Step("a", RuntimeError("boom")), Step("b")], 500, ["a"]),
            ([Step("a", "nonsense"), Step("b")], 500, ["a"]),
        ]
        for steps, expected, ran in cases:
            with self.subTest(steps=[s.name for s in steps], result=expected):
                req = request()
                result = run_chain([(s.name, s) for s in steps], req)
                if isinstance(result, Deferred):
                    result = self.successResultOf(result)
                if expected == 500:
                    assert isinstance(result, Answer)
                    self.assertEqual(result.status, 500)
                else:
                    self.assertEqual(result, expected)
                self.assertEqual(req.notes["ran"], ran)
        self.flushLoggedErrors(RuntimeError)

    def test_later(self) -> None:
        """A Deferred step holds the rest until it fires; a failing one answers 500."""
        pending: Deferred[Optional[Answer]] = Deferred()
        req = request()
        result = run_chain([("a", Step("a", pending)), ("b", Step("b"))], req)
        assert isinstance(result, Deferred)
        self.assertNoResult(result)
        self.assertEqual(req.notes["ran"], ["a"])
        pending.callback(None)
        self.assertIsNone(self.successResultOf(result))
        self.assertEqual(req.notes["ran"], ["a", "b"])
        failing: Deferred[Optional[Answer]] = Deferred()
        result = run_chain([("a", Step("a", failing))], request())
        failing.errback(RuntimeError("auth server down"))
        self.assertEqual(self.successResultOf(result).status, 500)  # type: ignore[union-attr]
        self.flushLoggedErrors(RuntimeError)

    def test_cancel(self) -> None:
        """Cancelling the chain's Deferred cancels the pending step's."""
        cancelled = []
        pending: Deferred[Optional[Answer]] = Deferred(lambda d: cancelled.append(True))
        result = run_chain([("a", Step("a", pending))], request())
        assert isinstance(result, Deferred)
        result.cancel()
        self.assertEqual(cancelled, [True])
        self.failureResultOf(result)


class AnswerTests(SynchronousTestCase):
    """Answers written by the proxy, through the hooks (innermost first)."""

    def test_sniffed(self) -> None:
        """A hook's `sniff` fills a missing Content-Type from the answer's body; not with a
        Content-Type or Content-Encoding already there, an empty body or a 204."""

        def sniffing(response: Any) -> None:
            response.sniff = lambda data: "sniffed/" + data.decode()[:3]

        cases = [
            (Answer(200, (), b"abcdef"), ["sniffed/abc"]),
            (Answer(200, (("Content-Type", "x/y"),), b"abc"), ["x/y"]),
            (Answer(200, (("Content-Encoding", "gzip"),), b"abc"), []),
            (Answer(200, (), b""), []),
            (Answer(204, (), b"abc"), []),
        ]
        for answer, expected in cases:
            with self.subTest(answer=answer):
                req = request()
                req.on_response(sniffing)
                _, data, _ = answer_bytes(answer, req, True, False)
                head = data.split(b"\r\n\r\n")[0].decode().split("\r\n")[1:]
                found = [line.split(": ", 1)[1] for line in head if line.startswith("Content-Type")]
                self.assertEqual(found, expected)

    def test_table(self) -> None:
        """(answer, method, keep-alive) -> the bytes written and the body size reported."""
        body = Answer(403, (("Content-Type", "text/plain"), ("Content-Length", "99")), b"no")
        cases = [
            (
                body,
                "GET",
                True,
                b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n",
                b"Content-Length: 2\r\n\r\nno",
                2,
            ),
            (body, "HEAD", True, b"HTTP/1.1 403 Forbidden\r\n", b"Content-Length: 2\r\n\r\n", 0),
            (
                body,
                "GET",
                False,
                b"HTTP/1.1 403 ",
                b"Content-Length: 2\r\nConnection: close\r\n\r\nno",
                2,
            ),
            (Answer(204, (), b"x"), "GET", True, b"HTTP/1.1 204 No Content\r\n", b"GMT\r\n\r\n", 0),
            (body, "PUT", True, b"HTTP/1.1 403 ", b"\r\nConnection: keep-alive\r\n\r\nno", 2),
        ]
        for answer, method, keep_alive, start, end, size in cases:
            with self.subTest(answer=answer, method=method, keep_alive=keep_alive):
                req = request(method=method.encode())
                http10 = method == "PUT"  # the PUT row stands for an HTTP/1.0 client
                status, data, written = answer_bytes(
                    answer, req, keep_alive, method == "HEAD", http10
                )
                self.assertEqual(status, answer.status)
                self.assertTrue(data.startswith(start), data)
                self.assertTrue(data.endswith(end), data)
                self.assertEqual(written, size)

    def test_hooksInnermostFirst(self) -> None:
        """Hooks added by steps a then b run b first; they may change the status."""
        req = request()
        req.on_response(lambda r: r.headers.add("X-Order", "a"))
        req.on_response(lambda r: r.headers.add("X-Order", "b"))

        def teapot(response: Response) -> None:
            response.status = 418

        req.on_response(teapot)
        status, data, _ = answer_bytes(Answer(200, (), b""), req, True, False)
        self.assertEqual(status, 418)
        self.assertIn(b"HTTP/1.1 418 I'm a Teapot\r\nX-Order: b\r\nX-Order: a\r\n", data)

    def test_localAnswer(self) -> None:
        """The proxy's own 503 as an Answer: Go's headers and body."""
        answer = local_answer(503)
        self.assertEqual(
            answer,
            Answer(
                503,
                (
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("X-Content-Type-Options", "nosniff"),
                ),
                b"no available server\n",
            ),
        )

    def test_hookedHeadKeepsFraming(self) -> None:
        """A service's head through the hooks: changes kept, framing headers as sent."""
        req = request()

        def meddle(response: Response) -> None:
            response.headers.remove("Content-Length")
            response.headers.set("Server", "tsproxy")
            response.status = 201

        req.on_response(meddle)
        original = ResponseHead(
            1, 200, b"OK", [(b"Content-Length", b"5"), (b"Server", b"app")], "length", 5
        )
        out = hooked_head(original, req)
        self.assertEqual(
            (out.status, out.reason, out.headers, out.framing),
            (201, b"Created", [(b"Server", b"tsproxy"), (b"Content-Length", b"5")], "length"),
        )


class SchemeRedirectTests(SynchronousTestCase):
    """The step behind http.redirections.entryPoint."""

    def test_table(self) -> None:
        """(Host, method, scheme, port, permanent) -> (status, Location)."""
        cases = [
            ("a.example", "GET", "https", "443", True, 301, "https://a.example/a/b?x=1"),
            ("a.example:8000", "GET", "https", "8443", True, 301, "https://a.example:8443/a/b?x=1"),
            ("a.example", "POST", "https", "443", True, 308, "https://a.example/a/b?x=1"),
            ("a.example", "GET", "https", "443", False, 302, "https://a.example/a/b?x=1"),
            ("a.example", "PUT", "http", "80", False, 307, "http://a.example/a/b?x=1"),
            ("[::1]:80", "GET", "https", "9443", True, 301, "https://[::1]:9443/a/b?x=1"),
        ]
        for host, method, scheme, port, permanent, status, location in cases:
            with self.subTest(host=host, method=method, permanent=permanent):
                req = request(method=method.encode())
                req.headers.set("Host", host)
                answer = SchemeRedirect("r", scheme, port, permanent).handle(req)
                assert answer is not None
                self.assertEqual(answer.status, status)
                self.assertEqual(dict(answer.headers)["Location"], location)
