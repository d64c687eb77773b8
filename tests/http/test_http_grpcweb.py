"""gRPC-Web through the proxy: a real grpcio server behind an h2c service, routed through a
grpcWeb middleware; the client sends hand-built gRPC-Web requests over HTTP/1.1 (binary and
base64 -text, unary and server-streaming, errors in the trailer frame and trailers-only),
CORS preflights, and requests the middleware leaves alone."""

from __future__ import annotations

import base64
import shutil
import struct
import subprocess
from typing import Any, Dict, List, Tuple

from twisted.internet import defer, threads
from twisted.trial.unittest import SkipTest

from tests.grpcfixture import GREETER, start_echo
from tests.proxyfixture import ProxyTestCase, raw_exchange

try:
    import grpc
except ImportError:  # pragma: no cover - the test extra installs it (not on PyPy)
    grpc = None

ROUTES = (
    """\
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata:
  name: gw
spec:
  grpcWeb:
    allowOrigins: ["https://ok.test"]
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: grpcweb
spec:
  entryPoints: [web]
  routes:
    - match: Host(`grpc.test`)
      kind: Rule
      middlewares: [{name: gw}]
      services:
        - name: greeter
          port: 80
          scheme: h2c
    - match: Host(`plain.test`)
      kind: Rule
      middlewares: [{name: gw}]
      services:
        - name: app-v1
          port: 80
"""
    + GREETER
)


def message(payload: bytes) -> bytes:
    """One gRPC(-Web) data frame."""
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def post(host: str, path: str, content_type: str, body: bytes, extra: str = "") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nX-Grpc-Web: 1\r\n{extra}Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def parse(raw: bytes) -> Tuple[int, Dict[str, List[str]], bytes]:
    """(status, headers by lower-case name, body de-chunked) of an HTTP/1.1 answer."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: Dict[str, List[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    if "chunked" not in headers.get("transfer-encoding", []):
        return int(lines[0].split()[1]), headers, rest
    body = b""
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        body, rest = body + rest[:size], rest[size + 2 :]
    return int(lines[0].split()[1]), headers, body


def frames(body: bytes) -> List[Tuple[int, bytes]]:
    """The gRPC-Web frames of a body: (flag, payload) each."""
    out = []
    while body:
        flag, size = body[0], struct.unpack(">I", body[1:5])[0]
        out.append((flag, body[5 : 5 + size]))
        body = body[5 + size :]
    return out


def text_body(body: bytes) -> bytes:
    """A -text body decoded, padded base64 pieces one after another (as browsers do)."""
    out, rest = b"", body
    while rest:
        end = rest.find(b"=")
        if end < 0:
            out, rest = out + base64.b64decode(rest), b""
            continue
        while end < len(rest) and rest[end : end + 1] == b"=":
            end += 1
        out, rest = out + base64.b64decode(rest[:end]), rest[end:]
    return out


def trailers(payload: bytes) -> Dict[str, str]:
    lines = payload.decode("latin-1").split("\r\n")
    assert lines[-1] == "", payload
    return dict(line.split(": ", 1) for line in lines[:-1])


class GRPCWebTests(ProxyTestCase):
    """gRPC-Web client (raw HTTP/1.1) → proxy with grpcWeb → grpcio server (h2c)."""

    def setUp(self) -> None:
        if grpc is None:
            raise SkipTest("grpcio is not installed")
        super().setUp()
        port = start_echo(self, many_size=3000)
        self.use_seed_config()
        self.write("grpcweb.yaml", ROUTES.replace("{port}", str(port)))
        self.start_proxy()

    @defer.inlineCallbacks
    def call(self, payload: bytes) -> Any:
        assert self.service is not None
        raw = yield raw_exchange(self.service.port_of("web"), payload, half_close=False)
        return parse(raw)

    @defer.inlineCallbacks
    def test_unary(self) -> None:
        """A binary unary call: the answer's message, then its trailers (status, trailing
        metadata) in the last frame; CORS for the allowed origin, grpc-status exposed."""
        status, headers, body = yield self.call(
            post(
                "grpc.test",
                "/t.Echo/Unary",
                "application/grpc-web+proto",
                message(b"hello"),
                "Origin: https://ok.test\r\n",
            )
        )
        self.assertEqual(status, 200)
        # grpcio answers application/grpc whatever the request's suffix: Traefik too sends
        # application/grpc-web then.
        self.assertEqual(headers["content-type"], ["application/grpc-web"])
        self.assertEqual(headers["access-control-allow-origin"], ["https://ok.test"])
        self.assertEqual(headers["access-control-allow-credentials"], ["true"])
        exposed = headers["access-control-expose-headers"][0].split(", ")
        self.assertIn("grpc-status", exposed)
        self.assertIn("grpc-message", exposed)
        got = frames(body)
        self.assertEqual(got[0], (0, b"olleh"))
        self.assertEqual(got[1][0], 0x80)
        self.assertEqual(len(got), 2)
        last = trailers(got[1][1])
        self.assertEqual((last["grpc-status"], last["x-trailer"]), ("0", "t1"))

    @defer.inlineCallbacks
    def test_text(self) -> None:
        """A -text call: the request body is base64 (decoded for the server), the answer
        is base64 too, its frames the same as the binary call's; no CORS headers for an
        origin not allowed (the call is still made: the browser enforces)."""
        status, headers, body = yield self.call(
            post(
                "grpc.test",
                "/t.Echo/Unary",
                "application/grpc-web-text",
                base64.b64encode(message(b"hello")),
                "Origin: https://bad.test\r\n",
            )
        )
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], ["application/grpc-web-text"])
        self.assertNotIn("access-control-allow-origin", headers)
        self.assertEqual(headers["vary"], ["Origin"])
        got = frames(text_body(body))
        self.assertEqual(got[0], (0, b"olleh"))
        self.assertEqual(trailers(got[1][1])["grpc-status"], "0")

    @defer.inlineCallbacks
    def test_serverStreaming(self) -> None:
        """A server-streaming call: every message in order, then the trailers' frame; in
        binary and in -text (+proto)."""
        want = [(0, b"%d:" % i + b"x" * 3000) for i in range(30)]
        _, _, body = yield self.call(
            post("grpc.test", "/t.Echo/Many", "application/grpc-web", message(b"30"))
        )
        got = frames(body)
        self.assertEqual(got[:-1], want)
        self.assertEqual(trailers(got[-1][1])["grpc-status"], "0")
        _, headers, body = yield self.call(
            post(
                "grpc.test",
                "/t.Echo/Many",
                "application/grpc-web-text+proto",
                base64.b64encode(message(b"30")),
            )
        )
        self.assertEqual(headers["content-type"], ["application/grpc-web-text"])
        got = frames(text_body(body))
        self.assertEqual(got[:-1], want)
        self.assertEqual(trailers(got[-1][1])["grpc-status"], "0")

    @defer.inlineCallbacks
    def test_errorInTrailerFrame(self) -> None:
        """An error after a message: its status and message arrive in the trailer frame."""
        status, headers, body = yield self.call(
            post("grpc.test", "/t.Echo/Late", "application/grpc-web", message(b""))
        )
        self.assertEqual(status, 200)
        self.assertNotIn("grpc-status", headers)
        got = frames(body)
        self.assertEqual(got[0], (0, b"first"))
        last = trailers(got[1][1])
        self.assertEqual((last["grpc-status"], last["grpc-message"]), ("7", "not you"))

    @defer.inlineCallbacks
    def test_trailersOnly(self) -> None:
        """An error before any message (a trailers-only answer): the status in the head,
        the body one empty trailer frame, as Traefik answers."""
        status, headers, body = yield self.call(
            post("grpc.test", "/t.Echo/Fail", "application/grpc-web", message(b"abc"))
        )
        self.assertEqual(status, 200)
        self.assertEqual(headers["grpc-status"], ["5"])
        self.assertEqual(headers["grpc-message"], ["no such thing: abc"])
        self.assertEqual(body, b"\x80\x00\x00\x00\x00")

    @defer.inlineCallbacks
    def test_http2Client(self) -> None:
        """Over HTTP/2 (curl, h2c prior knowledge) the trailers come in the body's last frame
        too, not as HTTP/2 trailers, and a trailers-only answer still gets its frame."""
        if shutil.which("curl") is None:
            raise SkipTest("curl is not installed")
        assert self.service is not None
        url = "http://127.0.0.1:%d" % self.service.port_of("web")
        out = {}
        for name, body in (("Unary", b"hello"), ("Fail", b"abc")):
            args = ["curl", "-s", "--max-time", "20", "--http2-prior-knowledge", "-D", "-"]
            args += ["-H", "Host: grpc.test", "-H", "Content-Type: application/grpc-web"]
            args += ["--data-binary", "@-", url + "/t.Echo/" + name]
            done = yield threads.deferToThread(
                subprocess.run, args, input=message(body), capture_output=True, timeout=30
            )
            self.assertEqual(done.returncode, 0, done.stderr)
            out[name] = done.stdout.partition(b"\r\n\r\n")
        head, _, body = out["Unary"]
        self.assertTrue(head.startswith(b"HTTP/2 200"), head)
        got = frames(body)
        self.assertEqual(got[0], (0, b"olleh"))
        self.assertEqual(trailers(got[1][1])["grpc-status"], "0")
        head, _, body = out["Fail"]
        self.assertIn(b"grpc-status: 5", head)
        self.assertEqual(body, b"\x80\x00\x00\x00\x00")

    @defer.inlineCallbacks
    def test_preflight(self) -> None:
        """A gRPC-Web preflight is answered by the proxy: allowed origins get the CORS
        grant, others only the Vary lines."""
        ask = (
            "OPTIONS /t.Echo/Unary HTTP/1.1\r\nHost: grpc.test\r\nOrigin: {}\r\n"
            "Access-Control-Request-Method: POST\r\n"
            "Access-Control-Request-Headers: x-grpc-web,content-type\r\nConnection: close\r\n\r\n"
        )
        status, headers, body = yield self.call(ask.format("https://ok.test").encode())
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(headers["access-control-allow-origin"], ["https://ok.test"])
        self.assertEqual(headers["access-control-allow-methods"], ["POST"])
        self.assertEqual(headers["access-control-allow-headers"], ["X-Grpc-Web, Content-Type"])
        self.assertEqual(headers["access-control-max-age"], ["600"])
        status, headers, body = yield self.call(ask.format("https://bad.test").encode())
        self.assertEqual((status, body), (200, b""))
        self.assertNotIn("access-control-allow-origin", headers)
        self.assertEqual(len(headers["vary"]), 3)

    @defer.inlineCallbacks
    def test_textBodyDecodedForHTTP1Backend(self) -> None:
        """To an HTTP/1.1 service the decoded body goes with its own length and gRPC's
        Content-Type; the echo comes back base64 with an empty trailer frame (an HTTP/1.1
        answer has no trailers to carry)."""
        payload = message(b"hello")
        status, headers, body = yield self.call(
            post("plain.test", "/echo", "application/grpc-web-text", base64.b64encode(payload))
        )
        self.assertEqual(status, 200)
        self.assertEqual(text_body(body), payload + b"\x80\x00\x00\x00\x00")
        seen = self.apps["app-v1"].requests[-1]["headers"]
        self.assertEqual(seen["content-type"], ["application/grpc"])
        self.assertEqual(seen["content-length"], [str(len(payload))])

    @defer.inlineCallbacks
    def test_badText(self) -> None:
        """A -text body that is not base64 is refused with a 400, the service not asked."""
        status, _, _ = yield self.call(
            post("plain.test", "/echo", "application/grpc-web-text", b"!!!!")
        )
        self.assertEqual(status, 400)
        self.assertEqual(self.apps["app-v1"].requests, [])

    @defer.inlineCallbacks
    def test_passThrough(self) -> None:
        """A request that is not gRPC-Web (nor its preflight) reaches the service as sent,
        and its answer comes back unchanged."""
        status, headers, body = yield self.call(
            post("plain.test", "/echo", "text/plain", b"just text", "Origin: https://ok.test\r\n")
        )
        self.assertEqual((status, body), (200, b"just text"))
        self.assertNotIn("access-control-expose-headers", headers)
        self.assertNotIn("access-control-allow-origin", headers)
        seen = self.apps["app-v1"].requests[-1]["headers"]
        self.assertEqual(seen["content-type"], ["text/plain"])
        ask = (
            b"OPTIONS /x HTTP/1.1\r\nHost: plain.test\r\nOrigin: https://ok.test\r\n"
            b"Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n"
        )
        status, _, body = yield self.call(ask)
        self.assertEqual((status, body), (200, b"Hello app-v1\n"))
        self.assertEqual(self.apps["app-v1"].requests[-1]["method"], "OPTIONS")
