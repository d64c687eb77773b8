"""HTTP/2 to clients: the stream conversions, real clients (curl, h2load) through the seed's
routes, and the HTTP/2 attacks (rapid reset, CONTINUATION flood, HPACK bomb, control-frame
floods) against real listeners or a connection on a test transport."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import time
import types
from typing import Any, List, Optional, Tuple

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import DataReceived, ResponseReceived, StreamEnded
from h2.exceptions import ProtocolError
from h2.utilities import HeaderValidationFlags, validate_headers
from hpack import Decoder, Encoder
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, reactor, threads
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SkipTest, TestCase

from tests.proxyfixture import STATIC, ProxyTestCase
from tsproxy.http.h2server import H2Limits, H2ServerConnection
from tsproxy.http.h2wire import (
    StreamRequestError,
    canonical_name,
    exchange_response_headers,
    hpack_block,
    request_header_error,
    response_headers,
    stream_request,
)
from tsproxy.http.headers import client_response_head
from tsproxy.http.wire import (
    HTTPError,
    ResponseHead,
    find_head_end,
    parse_request_head,
    parse_response_head,
)

WRR = "traefikservice-wrr.kubesre.lc"
COOKIE = "traefikservice-cokie.kubesre.lc"
COPY = "traefikservice-copy.kubesre.lc"

MIDDLEWARES = """\
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata:
  name: addhdr
spec:
  headers:
    customResponseHeaders:
      X-Via: h2-test
    customRequestHeaders:
      X-Req: r
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata:
  name: locked
spec:
  basicAuth:
    users: ["u:$2b$04$QDALmgkIEFZIG0sR5b3v4ODQoxkyqj3GGONRstwhT7RYdGItUR5Sq"]
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: mw
spec:
  entryPoints: [web]
  routes:
    - match: Host(`mw.test`)
      kind: Rule
      middlewares: [{name: addhdr}]
      services: [{name: app-v1, port: 80}]
    - match: Host(`locked.test`)
      kind: Rule
      middlewares: [{name: locked}]
      services: [{name: app-v1, port: 80}]
"""

BASE = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a.test"), (b":path", b"/")]

STREAM_REQUESTS = [
    # (headers, end_stream, (method, path, headers, framing) or error status, chunked)
    (BASE, True, (b"GET", b"/", [(b"Host", b"a.test")], "none"), False),
    (
        BASE + [(b"x-foo-bar", b"1"), (b"cookie", b"a=1; b=2")],
        True,
        (
            b"GET",
            b"/",
            [(b"Host", b"a.test"), (b"X-Foo-Bar", b"1"), (b"Cookie", b"a=1; b=2")],
            "none",
        ),
        False,
    ),
    (
        [(b":method", b"POST")] + BASE[1:],
        False,
        (b"POST", b"/", [(b"Host", b"a.test")], "chunked"),
        True,
    ),
    (
        [(b":method", b"POST")] + BASE[1:] + [(b"content-length", b"3")],
        False,
        (b"POST", b"/", [(b"Host", b"a.test"), (b"Content-Length", b"3")], "length"),
        False,
    ),
    (
        [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"host", b"h.test")],
        True,
        (b"GET", b"/", [(b"Host", b"h.test")], "none"),
        False,
    ),
    (
        BASE + [(b"te", b"trailers")],
        True,
        (b"GET", b"/", [(b"Host", b"a.test")], "none"),
        False,
    ),
    (BASE + [(b"x-a", b"1\r\nX-Injected: 1")], True, 400, False),
    (BASE + [(b"x-a\r\nb", b"1")], True, 400, False),
    (BASE + [(b"transfer-encoding", b"chunked")], True, 400, False),
    (BASE + [(b":protocol", b"websocket")], True, 400, False),
    ([(b":method", b"CONNECT"), (b":authority", b"a.test:443")], True, 405, False),
    ([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")], True, 400, False),
    (
        [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a"), (b":path", b"/ x")],
        True,
        400,
        False,
    ),
]

#: Requests the HTTP/1.1 parser judges too: the head built for each is the one it reads from
#: the same request written as text, or both refuse it with the same status.
PARITY = [
    BASE,
    BASE[:3] + [(b":path", b"/a/../b//c")],
    BASE[:3] + [(b":path", b"/a%2fb%7e?q=%2F")],
    BASE[:3] + [(b":path", b"/a#frag")],
    BASE[:3] + [(b":path", "/\u00e9".encode())],
    BASE[:3] + [(b":path", b"*")],
    BASE[:3] + [(b":path", b"http://x.test/y")],
    BASE[:3] + [(b":path", b"/a%zz")],
    [(b":method", b"G(T")] + BASE[1:],
    [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a b"), (b":path", b"/")],
    [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a,b"), (b":path", b"/")],
    BASE + [(b"x-a", b"1\x01")],
    BASE + [(b"x-a", b"a\tb"), (b"x-b", b" padded ")],
    BASE + [(b"x(a", b"1")],
    BASE + [(b"content-length", b"x")],
    BASE + [(b"content-length", b"3"), (b"content-length", b"4")],
    BASE + [(b"content-length", b"0")],
    BASE + [(b"expect", b"100-continue"), (b"content-length", b"2")],
    BASE + [(b"expect", b"later")],
    BASE + [(b"x-h%d" % i, b"1") for i in range(99)],
    BASE + [(b"x-h%d" % i, b"1") for i in range(100)],
]


def _as_text(headers: List[Tuple[bytes, bytes]]) -> bytes:
    """An HTTP/2 request's header list written as the HTTP/1.1 request it stands for."""
    pseudo = dict(h for h in headers if h[0][:1] == b":")
    lines = [pseudo[b":method"], b" ", pseudo[b":path"], b" HTTP/1.1\r\n"]
    lines += [b"Host: ", pseudo[b":authority"], b"\r\n"]
    for name, value in headers:
        if name[:1] != b":":
            lines += [canonical_name(name), b": ", value, b"\r\n"]
    return b"".join(lines)[:-2]  # a head as read: no final line end


class StreamRequestTests(TestCase):
    """h2wire: the request head built for an HTTP/2 request."""

    def test_table(self) -> None:
        """Each header list gives its head (or the status it is refused with)."""
        for headers, ended, want, chunked in STREAM_REQUESTS:
            if isinstance(want, int):
                with self.assertRaises(StreamRequestError) as caught:
                    stream_request(headers, ended)
                self.assertEqual(caught.exception.status, want, headers)
                continue
            req = stream_request(headers, ended)
            head = req.head
            self.assertEqual((head.method, head.path, head.headers, head.framing), want, headers)
            self.assertFalse(head.keep_alive, headers)
            self.assertEqual(req.chunked, chunked, headers)

    def test_parityWithHTTP11(self) -> None:
        """The head is what parse_request_head reads from the same request as text, and a
        request is refused, with the same status, exactly where the parser refuses it."""
        for headers in PARITY:
            try:
                want = parse_request_head(_as_text(headers))
            except HTTPError as e:
                with self.assertRaises(StreamRequestError, msg=repr(headers)) as caught:
                    stream_request(headers, True)
                self.assertEqual(caught.exception.status, e.status, headers)
                continue
            got = stream_request(headers, True).head
            want.keep_alive = False  # the exchange ends with its stream
            self.assertEqual(got, want, headers)

    def test_wantsTrailers(self) -> None:
        """te: trailers is noted (and not written: it is hop-by-hop)."""
        self.assertTrue(stream_request(BASE + [(b"te", b"trailers")], True).wants_trailers)
        self.assertFalse(stream_request(BASE, True).wants_trailers)

    def test_canonicalName(self) -> None:
        """Names are written as Go's CanonicalMIMEHeaderKey writes them."""
        for raw, want in [
            (b"x-foo-bar", b"X-Foo-Bar"),
            (b"content-type", b"Content-Type"),
            (b"etag", b"Etag"),
            (b"x--a", b"X--A"),
        ]:
            self.assertEqual(canonical_name(raw), want)

    def test_responseHeaders(self) -> None:
        """Connection-specific fields, and those Connection names, are not sent over HTTP/2."""
        head = ResponseHead(
            1,
            200,
            b"OK",
            [
                (b"Content-Type", b"text/plain"),
                (b"Connection", b"close, x-hop"),
                (b"X-Hop", b"1"),
                (b"Transfer-Encoding", b"chunked"),
                (b"Keep-Alive", b"timeout=5"),
                (b"Set-Cookie", b"a=1"),
            ],
            connection_tokens=(b"close", b"x-hop"),
        )
        self.assertEqual(
            response_headers(head),
            [(b":status", b"200"), (b"content-type", b"text/plain"), (b"set-cookie", b"a=1")],
        )

    def test_exchangeResponseHeaders(self) -> None:
        """A response head handed over directly gives the header list its HTTP/1.1 text
        (client_response_head) gives once parsed back, for each body framing."""
        fields = [
            (b"Content-Type", b"text/plain"),
            (b"Connection", b"keep-alive, x-hop, content-length"),
            (b"X-Hop", b"1"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Content-Length", b"5"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Trailer", b"x-t"),
            (b"Set-Cookie", b"a=1"),
        ]
        tokens = (b"keep-alive", b"x-hop", b"content-length")
        extra = [(b"Set-Cookie", b"sticky=v1")]
        for framing in ("none", "length", "chunked", "close"):
            head = ResponseHead(1, 200, b"OK", fields, framing, 5, True, tokens)
            text = client_response_head(
                head, framing_out=framing, keep_alive=False, client_http10=False, extra=extra
            )
            end, _ = find_head_end(text)
            parsed = parse_response_head(text[:end], b"GET")
            self.assertEqual(
                exchange_response_headers(head, framing, extra), response_headers(parsed), framing
            )


#: Received header blocks, good and malformed: request_header_error must judge each as the h2
#: library's own inbound validation does (it is turned off for tsproxy's one pass).
H2_BLOCKS = [
    BASE,
    BASE + [(b"x-a", b"")],
    BASE + [(b"X-A", b"1")],
    BASE + [(b"x a", b"1")],
    BASE + [(b"x:a", b"1")],
    BASE + [(b"", b"1")],
    BASE + [("\u00e9".encode(), b"1")],
    BASE + [(b"x-a", b"1\x00")],
    BASE + [(b"x-a", b"1\r")],
    BASE + [(b"x-a", b"\x01")],
    BASE + [(b"x-a", b" 1")],
    BASE + [(b"x-a", b"1\t")],
    BASE + [(b"x-a", b"a b")],
    BASE + [(b"connection", b"close")],
    BASE + [(b"upgrade", b"h2c")],
    BASE + [(b"keep-alive", b"1")],
    BASE + [(b"te", b"trailers")],
    BASE + [(b"te", b"TRAILERS")],
    BASE + [(b"te", b"gzip")],
    BASE + [(b":path", b"/")],
    BASE + [(b":foo", b"1")],
    BASE + [(b":status", b"200")],
    [(b"x-a", b"1")] + BASE,
    BASE[1:],
    [BASE[0], BASE[2], BASE[3]],
    BASE[:3],
    BASE[:2] + BASE[3:],
    BASE[:2] + BASE[3:] + [(b"host", b"a.test")],
    BASE + [(b"host", b"a.test")],
    BASE + [(b"host", b"b.test")],
    BASE + [(b"host", b"a.test"), (b"host", b"a.test")],
    BASE[:3] + [(b":path", b"")],
    [(b":method", b"CONNECT"), (b":authority", b"a.test:443")],
    [(b":method", b"CONNECT"), (b":authority", b"a:1"), (b":path", b"/")],
    [(b":method", b"CONNECT"), (b":protocol", b"websocket")] + BASE[1:],
    [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":authority", b"a")],
    BASE + [(b":protocol", b"websocket")],
    [(b":method", b"G(T")] + BASE[1:],
]
#: Blocks h2 4.4 decides otherwise than 4.3: accepted (True) or refused (False) by 4.4 and
#: tsproxy (several Host fields are refused; a CONNECT with only :authority is a request).
H2_4_4_CHANGED = {
    tuple(BASE + [(b"host", b"a.test"), (b"host", b"a.test")]): False,
    ((b":method", b"CONNECT"), (b":authority", b"a.test:443")): True,
}

TRAILER_BLOCKS = [
    [(b"grpc-status", b"0")],
    [(b":path", b"/")],
    [(b"x-a", b" 1")],
    [(b"connection", b"x")],
    [(b"host", b"a"), (b"host", b"b")],
    [],
]


class H2ValidationTests(TestCase):
    """h2wire.request_header_error against the h2 library's own inbound validation."""

    def test_parity(self) -> None:
        """Every block, request or trailers, is refused exactly where h2 refuses it (twice:
        the second time with the good fields already known)."""
        for blocks, trailer in ((H2_BLOCKS, False), (TRAILER_BLOCKS, True)) * 2:
            flags = HeaderValidationFlags(False, trailer, False, False)
            for headers in blocks:
                try:
                    list(validate_headers(headers, flags))
                    h2_ok = True
                except ProtocolError:
                    h2_ok = False
                why = request_header_error(headers, trailer)
                if not trailer and tuple(headers) in H2_4_4_CHANGED:
                    # h2 4.3 (what pip installs on Python 3.9) decides these otherwise than
                    # 4.4; tsproxy decides as 4.4 whichever h2 it runs on.
                    self.assertEqual(why is None, H2_4_4_CHANGED[tuple(headers)], (headers, why))
                    continue
                self.assertEqual(why is None, h2_ok, (headers, why))


class HpackTests(TestCase):
    """h2wire and the connection's encoder: HPACK without the dynamic table."""

    FIELDS = [
        (b":status", b"200"),
        (b":status", b"599"),
        (b"content-type", b"text/plain"),
        (b"x-custom-field-name", b"v" * 300),
        (b"set-cookie", b""),
        (b"date", b"Fri, 04 Dec 2026 04:40:00 GMT"),
    ]

    def test_roundTrip(self) -> None:
        """Each block decodes to its fields, whatever came before (no table state)."""
        decoder = Decoder()
        for _ in range(2):
            for cut in range(1, len(self.FIELDS) + 1):
                block = hpack_block(self.FIELDS[:cut])
                self.assertEqual(decoder.decode(block, raw=True), self.FIELDS[:cut])
        self.assertEqual(len(decoder.header_table.dynamic_entries), 0)
        self.assertEqual(hpack_block([(b":status", b"200")]), b"\x88")

    def test_tableSizeChange(self) -> None:
        """After the client shrinks the table, the next block starts with the size update."""
        proto = H2ServerConnection(types.SimpleNamespace())  # type: ignore[arg-type]
        encoder = proto.conn.encoder
        plain = encoder.encode(self.FIELDS[:2])
        self.assertEqual(plain, hpack_block(self.FIELDS[:2]))
        encoder.header_table_size = 0
        block = encoder.encode(self.FIELDS[:2])
        self.assertEqual(block[:1], b"\x20")  # dynamic table size update to 0
        decoder = Decoder()
        decoder.max_allowed_table_size = 0
        self.assertEqual(decoder.decode(block, raw=True), self.FIELDS[:2])
        self.assertEqual(encoder.encode(self.FIELDS[:2]), plain)


# -- real clients through the seed's routes ----------------------------------------------------


def _run(args: List[str], timeout: float = 30.0) -> Any:
    return threads.deferToThread(
        subprocess.run, args, capture_output=True, timeout=timeout, check=False
    )


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        raise SkipTest(tool + " is not installed")


class CurlTests(ProxyTestCase):
    """curl and h2load speak HTTP/2 to the seed's canary routes through a running proxy."""

    def setUp(self) -> None:
        super().setUp()
        _need("curl")
        self.use_seed_config()
        self.write("mw.yaml", MIDDLEWARES)
        self.start_proxy()

    def url(self, path: str = "/", entrypoint: str = "web") -> str:
        assert self.service is not None
        return "http://127.0.0.1:%d%s" % (self.service.port_of(entrypoint), path)

    @defer.inlineCallbacks
    def curl(self, *args: str) -> Any:
        done = yield _run(["curl", "-s", "--max-time", "20"] + list(args))
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stdout

    @defer.inlineCallbacks
    def test_priorKnowledgeCanary(self) -> None:
        """h2c with prior knowledge: the weighted canary answers, both versions (one curl per
        request: curl 7.88 fails reusing a prior-knowledge connection, nginx's too)."""
        out = b""
        for _ in range(6):
            got = yield self.curl("--http2-prior-knowledge", "-H", "Host: " + WRR, self.url())
            out += got
        lines = out.decode().split()
        self.assertEqual(out.decode().count("Hello app-"), 6, out)
        self.assertIn("app-v1", lines)
        self.assertIn("app-v2", lines)

    @defer.inlineCallbacks
    def test_upgradeSticky(self) -> None:
        """Upgrade: h2c is answered 101 then HTTP/2; the sticky cookie is set over HTTP/2 and
        pins the client to its version."""
        out = yield self.curl("--http2", "-i", "-H", "Host: " + COOKIE, self.url())
        text = out.decode()
        self.assertIn("101 Switching Protocols", text)
        self.assertIn("HTTP/2 200", text)
        cookie = [line for line in text.splitlines() if line.lower().startswith("set-cookie:")]
        self.assertEqual(len(cookie), 1, text)
        value = cookie[0].split(":", 1)[1].split(";")[0].strip()
        version = "app-v1" if "app-v1" in value else "app-v2"
        self.assertIn("Hello " + version, text)
        out = yield self.curl("--http2", "-b", value, "-H", "Host: " + COOKIE, *([self.url()] * 4))
        self.assertEqual(out.decode().count("Hello " + version), 4, out)

    @defer.inlineCallbacks
    def test_mirroring(self) -> None:
        """Mirroring over HTTP/2: 20 requests on one upgraded connection answered by app-v1,
        10% copied to app-v2."""
        out = yield self.curl("--http2", "-H", "Host: " + COPY, *([self.url()] * 20))
        self.assertEqual(out.decode().count("Hello app-v1"), 20, out)
        for _ in range(100):
            if len(self.apps["app-v2"].requests) >= 2:
                break
            yield threads.deferToThread(time.sleep, 0.02)
        self.assertEqual(len(self.apps["app-v2"].requests), 2)
        self.assertEqual(self.apps["app-v2"].requests[0]["headers"]["host"], [COPY])

    @defer.inlineCallbacks
    def test_tlsALPN(self) -> None:
        """An HTTPS router negotiates h2 by ALPN and serves the canary over HTTP/2."""
        assert self.service is not None
        port = self.service.port_of("websecure")
        out = yield self.curl(
            "-k",
            "-i",
            "--http2",
            "--resolve",
            "%s:%d:127.0.0.1" % (WRR, port),
            "https://%s:%d/headers" % (WRR, port),
        )
        text = out.decode()
        self.assertTrue(text.startswith("HTTP/2 200"), text)
        self.assertIn("x-forwarded-proto: https", text)

    @defer.inlineCallbacks
    def test_bodies(self) -> None:
        """Request bodies with and without content-length, and a large response under flow
        control, arrive whole."""
        body = bytes(range(256)) * 1024  # 256 KiB: more than the stream window
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(body)
        echoed = yield self.curl(
            "--http2-prior-knowledge",
            "-H",
            "Host: " + WRR,
            "--data-binary",
            "@" + path,
            self.url("/echo"),
        )
        self.assertEqual(echoed, body)
        echoed = yield self.curl(
            "--http2-prior-knowledge",
            "-H",
            "Host: " + WRR,
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            "@" + path,
            self.url("/echo"),
        )
        self.assertEqual(echoed, body)
        big = yield self.curl(
            "--http2-prior-knowledge", "-H", "Host: " + WRR, self.url("/bytes/3000000")
        )
        self.assertEqual(big, b"x" * 3000000)

    @defer.inlineCallbacks
    def test_middlewares(self) -> None:
        """A router's middlewares apply to HTTP/2 streams as to HTTP/1.1 requests: headers
        added both ways, and basicAuth answering 401 before any backend is reached."""
        out = yield self.curl(
            "--http2-prior-knowledge", "-i", "-H", "Host: mw.test", self.url("/headers")
        )
        text = out.decode()
        self.assertIn("HTTP/2 200", text)
        self.assertIn("x-via: h2-test", text)
        self.assertIn("x-req: r", text)
        out = yield self.curl(
            "--http2-prior-knowledge", "-i", "-H", "Host: locked.test", self.url("/")
        )
        self.assertIn(b"HTTP/2 401", out)
        self.assertIn(b"www-authenticate: Basic", out)
        before = len(self.apps["app-v1"].requests)
        out = yield self.curl(
            "--http2-prior-knowledge", "-u", "u:p", "-H", "Host: locked.test", self.url("/")
        )
        self.assertEqual(out, b"Hello app-v1\n")
        self.assertEqual(len(self.apps["app-v1"].requests), before + 1)

    @defer.inlineCallbacks
    def test_notFoundAndHead(self) -> None:
        """The proxy's own answers (404) and HEAD responses are complete HTTP/2 responses."""
        out = yield self.curl("--http2-prior-knowledge", "-i", "-H", "Host: nowhere", self.url())
        self.assertIn(b"HTTP/2 404", out)
        self.assertIn(b"404 page not found", out)
        out = yield self.curl("--http2-prior-knowledge", "-I", "-H", "Host: " + WRR, self.url())
        self.assertIn(b"HTTP/2 200", out)
        self.assertIn(b"content-length: 13", out)

    @defer.inlineCallbacks
    def test_noTextRoundTrip(self) -> None:
        """A proxied answer reaches the stream as a parsed head (no HTTP/1.1 response text is
        parsed back), and the proxy's own answers still do through the text."""
        from tsproxy.http import h2stream

        parsed: List[bytes] = []
        real = h2stream.parse_response_head

        def counting(head: bytes, method: bytes) -> Any:
            parsed.append(head)
            return real(head, method)

        self.patch(h2stream, "parse_response_head", counting)
        for _ in range(3):
            out = yield self.curl("--http2-prior-knowledge", "-H", "Host: " + WRR, self.url())
            self.assertIn(b"Hello app-", out)
        self.assertEqual(parsed, [])
        yield self.curl("--http2-prior-knowledge", "-H", "Host: nowhere", self.url())
        self.assertEqual(len(parsed), 1)

    @defer.inlineCallbacks
    def test_h2load(self) -> None:
        """h2load: 300 requests, 10 streams at once on each of 3 connections, all 2xx."""
        _need("h2load")
        done = yield _run(
            ["h2load", "-n", "300", "-c", "3", "-m", "10", "-H", ":authority: " + WRR, self.url()],
            timeout=60,
        )
        out = done.stdout.decode()
        self.assertIn("300 succeeded, 0 failed", out)
        self.assertIn("status codes: 300 2xx", out)


# -- the attacks --------------------------------------------------------------------------------


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


class _Client:
    """A blocking HTTP/2 client socket (run in a thread)."""

    def __init__(self, port: int, rcvbuf: int = 0) -> None:
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.h2.data_to_send())

    def goaway_until_closed(self, limit: float = 10.0) -> Optional[int]:
        """Read until the server closes; the error code of its GOAWAY, if one came."""
        data = b""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                got = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not got:
                break
            data += got
        self.sock.close()
        return _goaway(data)


def _goaway(data: bytes) -> Optional[int]:
    """The error code of the first GOAWAY frame in a server's byte stream."""
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos : pos + 3], "big")
        kind = data[pos + 3]
        payload = data[pos + 9 : pos + 9 + length]
        if kind == 0x7 and len(payload) >= 8:
            return int.from_bytes(payload[4:8], "big")
        pos += 9 + length
    return None


class AttackTests(ProxyTestCase):
    """The HTTP/2 attacks get GOAWAY and a closed connection from a running proxy."""

    def setUp(self) -> None:
        super().setUp()
        self.use_seed_config()
        self.start_proxy()
        assert self.service is not None
        self.port = self.service.port_of("web")

    def headers(self, path: bytes = b"/") -> List[Tuple[bytes, bytes]]:
        return [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", WRR.encode()),
            (b":path", path),
        ]

    @defer.inlineCallbacks
    def test_pseudoHeaderInTrailers(self) -> None:
        """Request trailers carrying a pseudo-header are a connection error (PROTOCOL_ERROR)."""

        def attack() -> Optional[int]:
            client = _Client(self.port)
            client.h2.config.validate_outbound_headers = False
            post = [(b":method", b"POST")] + self.headers(b"/echo")[1:]
            client.h2.send_headers(1, post, end_stream=False)
            client.h2.send_headers(1, [(b":path", b"/")], end_stream=True)
            client.flush()
            return client.goaway_until_closed()

        code = yield threads.deferToThread(attack)
        self.assertEqual(code, ErrorCodes.PROTOCOL_ERROR)

    @defer.inlineCallbacks
    def test_rapidReset(self) -> None:
        """CVE-2023-44487: streams opened and reset at once, past the limit, get GOAWAY
        ENHANCE_YOUR_CALM; the proxy still serves a new connection afterwards."""

        def attack() -> Tuple[Optional[int], int]:
            client = _Client(self.port)
            sent = 0
            try:
                for i in range(400):
                    sid = 1 + 2 * i
                    client.h2.send_headers(sid, self.headers(), end_stream=True)
                    client.h2.reset_stream(sid)
                    client.flush()
                    sent += 1
            except OSError:
                pass
            return client.goaway_until_closed(), sent

        code, sent = yield threads.deferToThread(attack)
        self.assertEqual(code, ErrorCodes.ENHANCE_YOUR_CALM)
        status = yield threads.deferToThread(self.one_request)
        self.assertEqual(status, b"200")

    def one_request(self) -> bytes:
        client = _Client(self.port)
        client.h2.send_headers(1, self.headers(), end_stream=True)
        client.flush()
        status = b""
        while True:
            data = client.sock.recv(65536)
            if not data:
                break
            for event in client.h2.receive_data(data):
                if isinstance(event, ResponseReceived):
                    status = dict(event.headers)[b":status"]
                if isinstance(event, StreamEnded):
                    client.sock.close()
                    return status
            client.flush()
        return status

    @defer.inlineCallbacks
    def test_resetMidResponse(self) -> None:
        """A client that resets a stream in the middle of a large answer cancels it alone:
        the next stream on the same connection is answered."""

        def run() -> Tuple[int, bytes]:
            client = _Client(self.port)
            client.h2.send_headers(1, self.headers(b"/bytes/50000000"), end_stream=True)
            client.flush()
            got = 0
            status = b""
            reset = False
            while True:
                data = client.sock.recv(65536)
                if not data:
                    break
                for event in client.h2.receive_data(data):
                    if isinstance(event, DataReceived) and event.stream_id == 1:
                        got += len(event.data)
                        client.h2.acknowledge_received_data(event.flow_controlled_length, 1)
                    if isinstance(event, ResponseReceived) and event.stream_id == 3:
                        status = dict(event.headers)[b":status"]
                    if isinstance(event, StreamEnded) and event.stream_id == 3:
                        client.sock.close()
                        return got, status
                if got > 200000 and not reset:
                    reset = True
                    client.h2.reset_stream(1)
                    client.h2.send_headers(3, self.headers(), end_stream=True)
                client.flush()
            return got, status

        got, status = yield threads.deferToThread(run)
        self.assertLess(got, 50000000)
        self.assertEqual(status, b"200")

    @defer.inlineCallbacks
    def test_continuationFlood(self) -> None:
        """A header block never ended (CONTINUATION after CONTINUATION) is refused once past
        64 KiB encoded: GOAWAY ENHANCE_YOUR_CALM, long before h2's own 64-frame backlog."""

        def attack() -> Tuple[Optional[int], int]:
            client = _Client(self.port)
            block = Encoder().encode(self.headers())
            frames = 0
            try:
                client.sock.sendall(_frame(0x1, 0x0, 1, block))  # HEADERS, no END_HEADERS
                for _ in range(60):
                    client.sock.sendall(_frame(0x9, 0x0, 1, b"\x40\x01a\x01b" * 3000))
                    frames += 1
            except OSError:
                pass
            return client.goaway_until_closed(), frames

        code, frames = yield threads.deferToThread(attack)
        self.assertEqual(code, ErrorCodes.ENHANCE_YOUR_CALM)

    @defer.inlineCallbacks
    def test_hpackBomb(self) -> None:
        """A small header block that decodes past the 60 KiB header list limit (one large
        field indexed once, referenced many times) closes the connection."""

        def attack() -> Tuple[Optional[int], int]:
            client = _Client(self.port)
            encoder = Encoder()
            big = [(b"x-bomb", b"b" * 4000)]
            block = encoder.encode(self.headers() + big * 30)
            client.sock.sendall(_frame(0x1, 0x5, 1, block))  # END_STREAM | END_HEADERS
            return client.goaway_until_closed(), len(block)

        code, size = yield threads.deferToThread(attack)
        self.assertLess(size, 16384)  # it fits one frame: only the decoded size is large
        self.assertEqual(code, ErrorCodes.ENHANCE_YOUR_CALM)

    @defer.inlineCallbacks
    def test_tooManyStreams(self) -> None:
        """More concurrent streams than SETTINGS_MAX_CONCURRENT_STREAMS (100) is refused."""

        def attack() -> Optional[int]:
            client = _Client(self.port)
            # Ignore our own view of the server's limit: a hostile client would.
            client.h2.remote_settings._settings[3] = __import__("collections").deque([1000])
            client.sock.recv(65536)  # the server's SETTINGS: now the limit is in force
            client.flush()
            try:
                for i in range(150):
                    # Requests whose bodies never come keep the streams open.
                    client.h2.send_headers(1 + 2 * i, self.headers(b"/echo"), end_stream=False)
                client.flush()
            except OSError:
                pass
            return client.goaway_until_closed()

        code = yield threads.deferToThread(attack)
        self.assertEqual(code, ErrorCodes.PROTOCOL_ERROR)


class FloodTests(TestCase):
    """Control-frame floods against a connection whose client does not read (test transport)."""

    def connection(self, limits: H2Limits = H2Limits()) -> Tuple[H2ServerConnection, Any]:
        factory = types.SimpleNamespace(
            connections=set(),
            clock=Clock(),
            entrypoint=types.SimpleNamespace(idle_timeout=0, read_timeout=0),
            observer=None,
            tls=False,
            name="web",
        )
        conn = H2ServerConnection(factory, limits)  # type: ignore[arg-type]
        transport = StringTransport()
        conn.makeConnection(transport)
        client = H2Connection(H2Configuration(client_side=True))
        client.initiate_connection()
        conn.dataReceived(client.data_to_send())
        return conn, transport

    def flood(self, frame: bytes, limits: H2Limits = H2Limits()) -> Tuple[Any, int]:
        conn, transport = self.connection(limits)
        transport.producer.pauseProducing()  # the client's socket is full
        transport.clear()
        sent = 0
        for _ in range(limits.max_queued_control_frames * 2):
            if transport.disconnecting:
                break
            conn.dataReceived(frame)
            sent += 1
        return transport, sent

    def test_malformedHeaderBlocks(self) -> None:
        """A malformed request or trailer block is a connection error: GOAWAY PROTOCOL_ERROR,
        and nothing after it in the same read is served."""
        bad_requests = [
            BASE + [(b"X-Upper", b"1")],
            BASE + [(b"connection", b"close")],
            [(b"x-a", b"1")] + BASE,
            BASE + [(b"host", b"other.test")],
        ]
        for headers in bad_requests:
            conn, transport = self.connection()
            client = H2Connection(
                H2Configuration(
                    client_side=True,
                    validate_outbound_headers=False,
                    normalize_outbound_headers=False,
                )
            )
            client.initiate_connection()
            client.data_to_send()
            client.send_headers(1, headers, end_stream=True)
            client.send_headers(3, BASE, end_stream=True)
            transport.clear()
            conn.dataReceived(client.data_to_send())
            self.assertTrue(transport.disconnecting, headers)
            self.assertEqual(_goaway(transport.value()), ErrorCodes.PROTOCOL_ERROR, headers)
            self.assertEqual(conn.streams, {}, headers)

    def test_pingFlood(self) -> None:
        """PINGs whose ACKs cannot be sent: past 1000 queued, GOAWAY and close."""
        transport, sent = self.flood(_frame(0x6, 0, 0, b"12345678"))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(sent, 1001)
        goaway = transport.value()[-17:]
        self.assertEqual(goaway[3], 0x7)  # GOAWAY, after the held answers
        self.assertEqual(struct.unpack(">I", goaway[-4:])[0], ErrorCodes.ENHANCE_YOUR_CALM)

    def test_settingsFlood(self) -> None:
        """SETTINGS frames whose ACKs cannot be sent are bounded the same way."""
        transport, sent = self.flood(_frame(0x4, 0, 0, b""))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(sent, 1001)

    def test_readingClientIsNotFlooding(self) -> None:
        """A client that reads its ACKs may send as many PINGs as it likes."""
        conn, transport = self.connection()
        for _ in range(3000):
            conn.dataReceived(_frame(0x6, 0, 0, b"12345678"))
        self.assertFalse(transport.disconnecting)
        conn.connectionLost(None)

    def test_shutdownGoaway(self) -> None:
        """At shutdown an idle connection gets GOAWAY NO_ERROR and is closed."""
        conn, transport = self.connection()
        transport.clear()
        conn.close()
        self.assertEqual(_goaway(transport.value()), ErrorCodes.NO_ERROR)
        self.assertTrue(transport.disconnecting)
        conn.connectionLost(None)

    def test_heldAnswersDrain(self) -> None:
        """Answers held while the client's socket was full go out when it drains, in order."""
        conn, transport = self.connection()
        transport.producer.pauseProducing()
        transport.clear()
        for i in range(5):
            conn.dataReceived(_frame(0x6, 0, 0, b"%08d" % i))
        self.assertEqual(transport.value(), b"")
        transport.producer.resumeProducing()
        out = transport.value()
        self.assertEqual(
            [out[i * 17 + 9 : i * 17 + 17] for i in range(5)], [b"%08d" % i for i in range(5)]
        )
        conn.connectionLost(None)


OBSERVED = """\
  traefik:
    address: "127.0.0.1:0"
metrics:
  prometheus: {{}}
accessLog:
  filePath: "{path}"
"""


class ObservedTests(ProxyTestCase):
    """HTTP/2 exchanges are observed as HTTP/1.1 ones are: metrics, access log, connections."""

    def setUp(self) -> None:
        super().setUp()
        _need("curl")
        self.use_seed_config()
        self.log_path = self.mktemp()
        static = STATIC.replace("log:\n", OBSERVED.format(path=self.log_path) + "log:\n")
        self.write("tsproxy.yaml", static)
        self.start_proxy()

    def samples(self) -> dict:
        assert self.service is not None and self.service.metrics is not None
        _, body = self.service.metrics.exposition()
        found = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                found[sample.name, frozenset(sample.labels.items())] = sample.value
        return found

    @defer.inlineCallbacks
    def test_observed(self) -> None:
        """Three streams on one connection: three requests in the service metrics, three
        access log lines as HTTP/2.0, one open connection while it lasts and none after."""
        assert self.service is not None
        port = self.service.port_of("web")
        url = "http://127.0.0.1:%d/" % port
        done = yield _run(["curl", "-s", "--http2", "-H", "Host: " + WRR, url, url, url])
        self.assertEqual(done.stdout.decode().count("Hello app-"), 3, done.stderr)
        samples = self.samples()
        total = sum(
            value
            for (name, labels), value in samples.items()
            if name == "traefik_service_requests_total"
            and dict(labels).get("service") == "default-app-wrr@kubernetescrd"
        )
        self.assertEqual(total, 3)
        opened = frozenset({"entrypoint": "web", "protocol": "TCP"}.items())
        for _ in range(100):  # the proxy sees curl's close a moment after curl exits
            if self.samples().get(("traefik_open_connections", opened), 0.0) == 0.0:
                break
            yield deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(self.samples().get(("traefik_open_connections", opened), 0.0), 0.0)
        self.service.access_log.flush()  # type: ignore[union-attr]
        for _ in range(100):  # flush hands the lines to the writer thread; it does not wait
            with open(self.log_path) as f:
                lines = f.read().splitlines()
            if len(lines) >= 3:
                break
            yield deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(len(lines), 3, lines)
        for line in lines:
            self.assertIn('"GET / HTTP/2.0" 200', line)
