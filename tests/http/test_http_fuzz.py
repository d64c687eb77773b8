"""Bounded property tests of the HTTP engine's parsers: whatever bytes arrive, in whatever
pieces, no exception escapes and every connection ends within its timeouts.

The client side drives the real HTTPServerConnection over a StringTransport with a Clock
(nothing routes, so every request the parser accepts is answered 404 at once); the backend
side drives the real BackendConnection. Derandomized under CI=true (tests/__init__.py).
"""

from __future__ import annotations

from typing import Any, List

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.config.static import EntryPoint
from tsproxy.http.backend import BackendConnection, BackendListener, BackendPool
from tsproxy.http.entrypoint import HTTPEntryPointFactory
from tsproxy.http.h2switch import HTTPSwitch
from tsproxy.http.wire import (
    ChunkedDecoder,
    HTTPError,
    RequestPolicy,
    clean_path,
    parse_request_head,
    parse_response_head,
)

READ_TIMEOUT = 60.0
IDLE_TIMEOUT = 180.0

_LINES = [
    b"GET / HTTP/1.1",
    b"POST /a/../b?x HTTP/1.1",
    b"GET http://h/x HTTP/1.1",
    b"OPTIONS * HTTP/1.1",
    b"CONNECT h:443 HTTP/1.1",
    b"GET / HTTP/1.0",
    b"GET -x HTTP/1.1",
    b"GET /%zz HTTP/1.1",
    b"GET / HTTP/2.0",
    b"\xff\xfe / HTTP/1.1",
    b"",
]
_HEADERS = [
    b"Host: h",
    b"Host: a b",
    b"Content-Length: 3",
    b"Content-Length: 3, 3",
    b"Content-Length: 3, 4",
    b"Content-Length: 99999999999999999999",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip",
    b"Connection: close",
    b"Connection: Content-Length, Host",
    b"Connection: keep-alive",
    b"Expect: 100-continue",
    b"Upgrade: websocket",
    b" folded",
    b"X: \x00",
    b"Bad Header",
]
_BODIES = [b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"zz\r\n", b"0\r\nT: 1\r\n\r\n", b"\r\n\r\n"]

_request = st.builds(
    lambda line, headers, sep, body: line + sep + b"".join(h + sep for h in headers) + sep + body,
    st.sampled_from(_LINES),
    st.lists(st.sampled_from(_HEADERS), max_size=6),
    st.sampled_from([b"\r\n", b"\n"]),
    st.sampled_from(_BODIES) | st.binary(max_size=40),
)
_stream = st.lists(_request | st.binary(max_size=200), min_size=1, max_size=4).map(b"".join)


def _pieces(data: bytes, cuts: List[int]) -> List[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, start = [], 0
    for point in points + [len(data)]:
        out.append(data[start:point])
        start = point
    return [p for p in out if p]


class _NoRoutes:
    def http_route(self, *args: Any) -> None:
        return None


def _server(clock: Clock) -> Any:
    entrypoint = EntryPoint("web", "127.0.0.1", 0, "tcp")
    factory = HTTPEntryPointFactory(
        entrypoint,
        lambda: _NoRoutes(),
        BackendPool(None, clock),
        clock,
        b"proxy",
        make_protocol=HTTPSwitch,
    )
    proto = factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport


class _Recorder(BackendListener):
    def __init__(self) -> None:
        self.ends: List[str] = []

    def response_head(self, head: Any, rest: bytes) -> None:
        pass

    def response_data(self, data: bytes) -> None:
        pass

    def response_end(self, reusable: bool) -> None:
        self.ends.append("end")

    def backend_failed(self, status: int, reason: str, got_bytes: bool) -> None:
        self.ends.append("failed %d" % status)

    def tunnel_data(self, data: bytes) -> None:
        pass

    def tunnel_closed(self) -> None:
        self.ends.append("tunnel")


class _Ready:
    def on_ready(self, conn: Any) -> None:
        pass


_FAST = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)


class ParserTests(SynchronousTestCase):
    """The pure parsers raise HTTPError or nothing."""

    @_FAST
    @given(st.binary(max_size=300) | _request)
    def test_requestHead(self, data: bytes) -> None:
        """parse_request_head: a RequestHead or HTTPError, and a forwardable path."""
        try:
            req = parse_request_head(data.split(b"\r\n\r\n")[0], RequestPolicy(max_headers=5))
        except HTTPError as e:
            self.assertIn(e.status, (400, 417, 431, 501, 505))
            return
        self.assertTrue(req.path.startswith(b"/") or req.path == b"*" or req.method == b"CONNECT")
        self.assertNotIn(b"/../", req.path.partition(b"?")[0] + b"/")

    @_FAST
    @given(st.binary(max_size=300))
    def test_responseHead(self, data: bytes) -> None:
        """parse_response_head: a ResponseHead or HTTPError(502)."""
        try:
            parse_response_head(b"HTTP/1.1 200 OK\r\n" + data, b"GET")
        except HTTPError as e:
            self.assertEqual(e.status, 502)

    @_FAST
    @given(st.lists(st.binary(max_size=40), max_size=6))
    def test_chunked(self, pieces: List[bytes]) -> None:
        """ChunkedDecoder: data, a leftover, or HTTPError; never anything else."""
        decoder = ChunkedDecoder(lambda data: None)
        try:
            for piece in pieces:
                if decoder.feed(piece) is not None:
                    break
        except HTTPError:
            pass

    @_FAST
    @given(
        st.lists(st.sampled_from(["", ".", "..", "a", "b%2F", "..."]), max_size=8), st.booleans()
    )
    def test_cleanPath(self, segments: List[str], slash: bool) -> None:
        """clean_path is idempotent and leaves no dot segment and no empty segment."""
        path = ("/" + "/".join(segments) + ("/" if slash else "")).encode()
        cleaned = clean_path(path)
        self.assertEqual(clean_path(cleaned), cleaned)
        inner = cleaned.strip(b"/").split(b"/")
        self.assertFalse([s for s in inner if s in (b".", b"..")])
        self.assertTrue(cleaned == b"/" or b"" not in inner)


class ConnectionTests(SynchronousTestCase):
    """The protocols, fed arbitrary bytes in arbitrary pieces."""

    @_FAST
    @given(_stream, st.lists(st.integers(min_value=0, max_value=2000), max_size=5))
    def test_clientConnection(self, data: bytes, cuts: List[int]) -> None:
        """No exception escapes; after readTimeout and idleTimeout the connection is closed."""
        clock = Clock()
        proto, transport = _server(clock)
        for piece in _pieces(data, cuts):
            proto.dataReceived(piece)
        clock.advance(READ_TIMEOUT)
        clock.advance(IDLE_TIMEOUT)
        self.assertTrue(transport.disconnecting, transport.value()[:200])
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(clock.getDelayedCalls(), [])

    @_FAST
    @given(
        st.binary(max_size=400)
        | st.builds(
            lambda status, headers, body: (
                status + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body
            ),
            st.sampled_from(
                [
                    b"HTTP/1.1 200 OK\r\n",
                    b"HTTP/1.1 100 Continue\r\n",
                    b"HTTP/1.0 204 X\r\n",
                    b"HTTP/2 200\r\n",
                ]
            ),
            st.lists(st.sampled_from(_HEADERS[2:]), max_size=4),
            st.sampled_from(_BODIES) | st.binary(max_size=40),
        ),
        st.lists(st.integers(min_value=0, max_value=500), max_size=4),
        st.booleans(),
    )
    def test_backendConnection(self, data: bytes, cuts: List[int], clean: bool) -> None:
        """Any response bytes, then the connection's end: exactly one outcome reaches the
        exchange, and no exception escapes."""
        clock = Clock()
        conn = BackendConnection(BackendPool(None, clock), ("http", "127.0.0.1", 1))
        conn.factory = _Ready()
        transport = StringTransport()
        conn.makeConnection(transport)
        recorder = _Recorder()
        conn.begin(recorder, b"GET")
        for piece in _pieces(data, cuts):
            conn.dataReceived(piece)
        conn.connectionLost(Failure(ConnectionDone() if clean else ConnectionLost()))
        self.assertEqual(len(recorder.ends), 1, recorder.ends)
