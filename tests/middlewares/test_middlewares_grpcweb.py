"""Tests for tsproxy.middlewares.grpcweb: the pure framing functions with plain values (the
expected values read from a real Traefik 3.7 answering the same requests), the config
parse, the step on a Request and its response sink."""

from __future__ import annotations

import base64
from typing import Any, List, Tuple

from twisted.internet.defer import fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from tests.authfixture import FakeContext, fields_of
from tests.trafficfixture import Collected, HookedContext
from tsproxy.config.schema import FieldError
from tsproxy.middlewares import grpcweb
from tsproxy.middlewares.base import (
    Answer,
    BodyTooLarge,
    BuildError,
    HeaderList,
    Request,
    Response,
)

ORIGINS = ("https://ok.test",)


def request(method: str, headers: List[Tuple[str, str]], body: bytes = b"") -> Request:
    req = Request(method, "/t.Echo/Unary", None, HeaderList(headers), "192.0.2.1")
    req.read_body = lambda limit: succeed(body)
    return req


class FramingTests(SynchronousTestCase):
    """The pure gRPC-Web framing functions."""

    def test_isGrpcWeb(self) -> None:
        """POST with a Content-Type starting application/grpc-web, compared as Go does."""
        cases = [
            ("POST", "application/grpc-web", True),
            ("POST", "application/grpc-web+proto", True),
            ("POST", "application/grpc-web-text", True),
            ("POST", "application/grpc-web-text+proto", True),
            ("POST", "application/grpc", False),
            ("POST", "Application/grpc-web", False),
            ("POST", None, False),
            ("GET", "application/grpc-web", False),
            ("PUT", "application/grpc-web", False),
        ]
        for method, content_type, want in cases:
            self.assertEqual(grpcweb.is_grpc_web(method, content_type), want, content_type)

    def test_isPreflight(self) -> None:
        """OPTIONS whose Access-Control-Request-Headers names x-grpc-web, any case."""
        cases = [
            ("OPTIONS", "x-grpc-web,content-type", True),
            ("OPTIONS", "Content-Type, X-Grpc-Web", True),
            ("OPTIONS", "content-type", False),
            ("OPTIONS", None, False),
            ("POST", "x-grpc-web", False),
        ]
        for method, asked, want in cases:
            self.assertEqual(grpcweb.is_preflight(method, asked), want, asked)

    def test_contentTypes(self) -> None:
        """The request's type made gRPC's and the answer's made the request's variant."""
        requests = [
            ("application/grpc-web", "application/grpc"),
            ("application/grpc-web+proto", "application/grpc+proto"),
            ("application/grpc-web-text", "application/grpc"),
            ("application/grpc-web-text+proto", "application/grpc+proto"),
            ("application/grpc-web+json; charset=x", "application/grpc+json; charset=x"),
        ]
        for given, want in requests:
            self.assertEqual(grpcweb.request_content_type(given), want)
        responses = [
            ("application/grpc", False, "application/grpc-web"),
            ("application/grpc+proto", False, "application/grpc-web+proto"),
            ("application/grpc", True, "application/grpc-web-text"),
            ("application/grpc+proto", True, "application/grpc-web-text+proto"),
            ("text/plain", True, "text/plain"),
        ]
        for given, text, want in responses:
            self.assertEqual(grpcweb.response_content_type(given, text), want)

    def test_decodeText(self) -> None:
        """Padded base64, line breaks ignored, padded pieces one after another accepted."""
        cases = [
            (b"AAAAAAVoZWxsbw==", b"\x00\x00\x00\x00\x05hello"),
            (b"AAAAAAVo\r\nZWxsbw==", b"\x00\x00\x00\x00\x05hello"),
            (b"AAAAAAJoaQ==AAAAAAF4", b"\x00\x00\x00\x00\x02hi\x00\x00\x00\x00\x01x"),
            (b"", b""),
        ]
        for given, want in cases:
            self.assertEqual(grpcweb.decode_text(given), want, given)
        for bad in (b"!!!!", b"AAA", b"A===", b"AA=A", b"=AAA", b"AAAAAAVoZWxsbw"):
            self.assertRaises(ValueError, grpcweb.decode_text, bad)

    def test_trailerFrame(self) -> None:
        """Flag 0x80, big-endian length, sorted lower-case lines; head names and
        Trailer left out; line breaks in values made spaces. The first case is Traefik's
        frame byte for byte for the same grpcio answer."""
        cases: List[Tuple[Any, Tuple[str, ...], bytes]] = [
            (
                [("grpc-status", "0"), ("grpc-message", ""), ("x-trailer", "t1")],
                (),
                b"\x80\x00\x00\x00/grpc-message: \r\ngrpc-status: 0\r\nx-trailer: t1\r\n",
            ),
            ([], (), b"\x80\x00\x00\x00\x00"),
            ([("grpc-status", "5")], ("Grpc-Status",), b"\x80\x00\x00\x00\x00"),
            (
                [("X-A", "1"), ("x-a", "2"), ("Trailer", "x"), ("b", " two\r\nlines ")],
                (),
                b"\x80\x00\x00\x00\x1fb: two  lines\r\nx-a: 1\r\nx-a: 2\r\n",
            ),
        ]
        for trailers, sent, want in cases:
            self.assertEqual(grpcweb.trailer_frame(trailers, sent), want)

    def test_preflightHeaders(self) -> None:
        """rs/cors's preflight answer, as Traefik sent it: Vary always, the rest for an
        allowed origin and a simple method."""
        vary = [
            ("Vary", "Origin"),
            ("Vary", "Access-Control-Request-Method"),
            ("Vary", "Access-Control-Request-Headers"),
        ]
        allowed = vary + [
            ("Access-Control-Allow-Origin", "https://ok.test"),
            ("Access-Control-Allow-Methods", "POST"),
            ("Access-Control-Allow-Headers", "X-Grpc-Web, Content-Type"),
            ("Access-Control-Allow-Credentials", "true"),
            ("Access-Control-Max-Age", "600"),
        ]
        cases: List[Tuple[Tuple[str, ...], Any, Any, Any, Any]] = [
            (ORIGINS, "https://ok.test", "post", "x-grpc-web,content-type", allowed),
            (("*",), "https://ok.test", "POST", "x-grpc-web, content-type", allowed),
            (ORIGINS, "https://bad.test", "POST", "x-grpc-web", vary),
            ((), "https://ok.test", "POST", "x-grpc-web", vary),
            (ORIGINS, None, "POST", "x-grpc-web", vary),
            (ORIGINS, "https://ok.test", "PUT", "x-grpc-web", vary),
        ]
        for origins, origin, method, asked, want in cases:
            self.assertEqual(grpcweb.preflight_headers(origins, origin, method, asked), want)

    def test_responseHeaders(self) -> None:
        """Go's spelling, gRPC-Web's Content-Type, length dropped, CORS added, every name
        exposed with grpc-status and grpc-message (Traefik's trailers-only answer)."""
        got = grpcweb.response_headers(
            [
                ("content-type", "application/grpc"),
                ("grpc-status", "5"),
                ("grpc-message", "no"),
                ("content-length", "0"),
            ],
            grpcweb.cors_headers(ORIGINS, "https://ok.test"),
            False,
        )
        self.assertEqual(
            got,
            [
                (
                    "Access-Control-Expose-Headers",
                    "Content-Type, Grpc-Status, Grpc-Message, Vary, Access-Control-Allow-Origin,"
                    " Access-Control-Allow-Credentials, grpc-status, grpc-message",
                ),
                ("Content-Type", "application/grpc-web"),
                ("Grpc-Status", "5"),
                ("Grpc-Message", "no"),
                ("Vary", "Origin"),
                ("Access-Control-Allow-Origin", "https://ok.test"),
                ("Access-Control-Allow-Credentials", "true"),
            ],
        )
        self.assertEqual(grpcweb.cors_headers(ORIGINS, "https://bad.test"), [("Vary", "Origin")])


class ParseTests(SynchronousTestCase):
    """The grpcWeb section of a Middleware."""

    def test_parse(self) -> None:
        """allowOrigins read as a list (none by default); anything else is an error."""
        self.assertEqual(grpcweb.parse(fields_of({})), grpcweb.GrpcWebSpec(()))
        self.assertEqual(
            grpcweb.parse(fields_of({"allowOrigins": ["*", "https://a"]})),
            grpcweb.GrpcWebSpec(("*", "https://a")),
        )
        bad = [
            ({"allowOrigin": ["*"]}, "spec.kind.allowOrigin: unknown field"),
            ({"allowOrigins": [1]}, "spec.kind.allowOrigins[0]: must be a string"),
            ({"allowOrigins": "*"}, "spec.kind.allowOrigins: must be a list"),
        ]
        for section, message in bad:
            with self.assertRaises(FieldError) as caught:
                grpcweb.parse(fields_of(section))
            self.assertIn(message, str(caught.exception))

    def test_buildNeedsTheEngineHooks(self) -> None:
        """Without the response-sink or request-body hooks the step is refused (fail
        closed)."""
        spec = grpcweb.GrpcWebSpec(ORIGINS)
        self.assertRaises(BuildError, grpcweb.build, spec, "gw", FakeContext())
        self.assertRaises(BuildError, grpcweb.build, spec, "gw", HookedContext())
        step = grpcweb.build(spec, "gw", HookedContext(request_bodies=True))
        self.assertEqual(step.name, "gw")


class StepTests(SynchronousTestCase):
    """The step on a Request, and the sink it wraps around the answer."""

    def step(self) -> grpcweb.GrpcWeb:
        return grpcweb.GrpcWeb("gw", grpcweb.GrpcWebSpec(ORIGINS))

    def test_passThrough(self) -> None:
        """Other requests are left exactly as they are."""
        for method, headers in [
            ("POST", [("Content-Type", "application/grpc")]),
            ("GET", [("Content-Type", "application/grpc-web")]),
            ("OPTIONS", [("Access-Control-Request-Method", "POST"), ("Origin", "https://ok")]),
            ("OPTIONS", [("Access-Control-Request-Headers", "x-grpc-web")]),
        ]:
            req = request(method, headers)
            self.assertIsNone(self.step().handle(req))
            self.assertEqual(list(req.headers), headers)
            self.assertEqual((req.sink_wrappers, req.keep_trailers), ([], False))

    def test_preflight(self) -> None:
        """A gRPC-Web preflight is answered by the step."""
        req = request(
            "OPTIONS",
            [
                ("Origin", "https://ok.test"),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "x-grpc-web"),
            ],
        )
        answer = self.step().handle(req)
        assert isinstance(answer, Answer)
        self.assertEqual(answer.status, 200)
        self.assertIn(("Access-Control-Allow-Origin", "https://ok.test"), answer.headers)

    def run_sink(self, text: bool, head: Any, chunks: List[bytes], trailers: Any) -> Collected:
        """The step on a call, then an answer through its sink: what the client got."""
        ct = "application/grpc-web-text" if text else "application/grpc-web"
        req = request("POST", [("Content-Type", ct), ("Content-Length", "8")], b"AAAAAAA=")
        result = self.step().handle(req)
        self.assertEqual(req.headers.get("Content-Type"), "application/grpc")
        self.assertTrue(req.keep_trailers)
        if text:
            self.assertIsNone(self.successResultOf(result))
            self.assertEqual(req.new_body, b"\x00\x00\x00\x00\x00")
        client = Collected()
        sink = req.sink_wrappers[0](client)
        response = Response(200, HeaderList(head), req)
        sink.head(response)
        for chunk in chunks:
            sink.data(chunk)
        response.trailers = trailers
        sink.end()
        return client

    def test_sink(self) -> None:
        """Binary: chunks as they are, then the trailers' frame; -text: each chunk and the
        frame base64 on their own."""
        frame = b"\x00\x00\x00\x00\x01x"
        trailers = HeaderList([("grpc-status", "0")])
        last = b"\x80\x00\x00\x00\x10grpc-status: 0\r\n"
        head = [("content-type", "application/grpc")]
        client = self.run_sink(False, head, [frame, frame], trailers)
        self.assertEqual(client.chunks, [frame, frame, last])
        self.assertEqual(client.headers.get("Content-Type"), "application/grpc-web")
        self.assertTrue(client.ended)
        client = self.run_sink(True, head, [frame, frame], trailers)
        self.assertEqual(client.chunks, [base64.b64encode(c) for c in (frame, frame, last)])
        self.assertEqual(client.headers.get("Content-Type"), "application/grpc-web-text")

    def test_trailersOnly(self) -> None:
        """The status in the head stays there; the body is the empty trailers' frame."""
        head = [("content-type", "application/grpc"), ("grpc-status", "5")]
        client = self.run_sink(False, head, [], None)
        self.assertEqual(client.chunks, [b"\x80\x00\x00\x00\x00"])
        self.assertEqual(client.headers.get("Grpc-Status"), "5")

    def test_badText(self) -> None:
        """A -text body that is not base64 gets a 400; one too long a 413."""
        req = request("POST", [("Content-Type", "application/grpc-web-text")], b"!!!!")
        answer = self.successResultOf(self.step().handle(req))
        self.assertEqual(answer.status, 400)
        req = request("POST", [("Content-Type", "application/grpc-web-text")])
        req.read_body = lambda limit: fail(BodyTooLarge("too big"))
        answer = self.successResultOf(self.step().handle(req))
        self.assertEqual(answer.status, 413)
