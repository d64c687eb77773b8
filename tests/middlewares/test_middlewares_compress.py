"""Tests for tsproxy.middlewares.compress and encoding: every case of Traefik's compress
vectors (encoding choice, Accept-Encoding parsing, the whole middleware through the response
sink, the brotli/zstd writer with flushes, media type comparison), decoded by real decoders."""

from __future__ import annotations

import gzip
import re
from typing import Any, Dict, List, Tuple

from twisted.trial.unittest import SynchronousTestCase

try:
    import zstandard
except ImportError:  # PyPy: zstandard has no wheel there (docs/middlewares-traffic.md)
    zstandard = None

from tests.authfixture import FakeContext, fields_of, load_vectors, request_of
from tests.trafficfixture import Collected, HookedContext
from tsproxy.config.schema import FieldError
from tsproxy.middlewares import compress
from tsproxy.middlewares.base import BuildError, HeaderList, Response
from tsproxy.middlewares.compress import _brotli
from tsproxy.middlewares.encoding import (
    media_type_equals,
    parse_accept_encoding,
    parse_media_type,
    select_encoding,
)

VECTORS = load_vectors("compress.json")
SMALL = b"aaabbc" + b"aaabbbccc" * 9 + b"aaabbbc"
BIG = ((b"aaabbbccc" * 66) + b" ") * 6 + b"aaabbbccc" * 66
NAMED = {"smallTestBody": SMALL, "bigTestBody": BIG}


def generate(size: int) -> bytes:
    return bytes((0x61 + i) % 256 for i in range(size))


def decode(encoding: str, body: bytes) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "br":
        return bytes(_brotli().decompress(body))
    assert zstandard is not None
    return zstandard.ZstdDecompressor().decompressobj().decompress(body)


def backend_plan(backend: Dict[str, Any]) -> Tuple[int, List[Tuple[str, str]], List[Any]]:
    """(status, headers, actions): actions are bytes (a write) or "flush"."""
    status = backend.get("status", 200)
    if "writeStatus" in backend:
        status = backend["writeStatus"][0]  # Go keeps the first WriteHeader
    headers: List[Tuple[str, str]] = []
    for step in backend.get("sequence", [backend]):
        for name, value in (step.get("headers") or step.get("addHeaders") or {}).items():
            for item in value if isinstance(value, list) else [value]:
                headers.append((name, item))
        if "bodyGenerator" in step:
            backend = dict(backend, bodyGenerator=step["bodyGenerator"], bodySize=step["bodySize"])
    if backend.get("bodyGenerator"):
        body = generate(backend["bodySize"])
    else:
        body = NAMED.get(backend.get("body") or "", (backend.get("body") or "").encode())
    actions: List[Any] = [body] if body else []
    text = backend.get("actions", "")
    writes = backend.get("writes", "")
    match = re.match(r"(\d+) single-byte writes of 'x'", writes)
    if match:
        actions = [b"x"] * int(match.group(1))
    elif writes.startswith("100-byte chunks"):
        actions = []
        for start in range(0, len(body), 100):
            actions += [body[start : start + 100], "flush"]
    elif text == "WriteHeader 200, Flush, then write bigTestBody":
        actions = ["flush", BIG]
    elif text.startswith("WriteHeader 200, write 1 byte, Flush"):
        actions = [BIG[:1], "flush"] + [BIG[i : i + 1] for i in range(1, len(BIG))]
    elif text == "write bigTestBody byte by byte, then Flush":
        actions = [BIG[i : i + 1] for i in range(len(BIG))] + ["flush"]
    elif text.startswith("WriteHeader 200, write smallTestBody"):
        actions = [SMALL, "flush"]
    elif text.startswith("WriteHeader 200, write nothing"):
        actions = ["flush"]
    if backend.get("flushAfterHeaders"):
        actions = ["flush"] + actions
    return status, headers, actions


def play(
    sink: Any, request: Any, status: int, headers: List[Tuple[str, str]], actions: List[Any]
) -> None:
    sink.head(Response(status, HeaderList(headers), request))
    for action in actions:
        if action == "flush":
            sink.flush()
        else:
            sink.data(action)
    sink.end()


def original_body(actions: List[Any]) -> bytes:
    return b"".join(a for a in actions if isinstance(a, bytes))


class VectorTests(SynchronousTestCase):
    """compress.json, every case, by harness."""

    def test_vectors(self) -> None:
        """Each case gives Traefik's result."""
        seen = set()
        for index, case in enumerate(VECTORS["cases"]):
            seen.add(case["harness"])
            uses_zstd = case.get("algorithm") == "zstd" or "zstd" in str(
                case["request"].get("headers", {}) if "request" in case else ""
            )
            if (
                zstandard is None
                and uses_zstd
                and case["harness"] in ("middleware", "brotliZstdHandler")
            ):
                continue  # zstd is not available on this Python
            with self.subTest("%d %s" % (index, case["name"])):
                getattr(self, "run_" + case["harness"].lower())(case)
        self.assertEqual(len(seen), 5)

    def accept(self, case: Dict[str, Any]) -> Any:
        headers = case["request"].get("headers", {})
        if "Accept-Encoding" not in headers:
            return None
        value = headers["Accept-Encoding"]
        return value if isinstance(value, list) else [value]

    def run_selectencoding(self, case: Dict[str, Any]) -> None:
        config = case["config"]
        selected = select_encoding(
            self.accept(case), config["encodings"], config.get("defaultEncoding", "")
        )
        self.assertEqual(selected, case["expect"]["selected"])

    def run_parseacceptencoding(self, case: Dict[str, Any]) -> None:
        parsed, _ = parse_accept_encoding(self.accept(case), case["config"]["encodings"])
        self.assertEqual([[name, weight] for name, weight in parsed], case["expect"]["parsed"])

    def run_contenttypeequals(self, case: Dict[str, Any]) -> None:
        given = case["input"]
        configured = (given["configured"]["mediaType"], given["configured"]["params"])
        response = (given["response"]["mediaType"], given["response"]["params"])
        self.assertEqual(media_type_equals(configured, response), case["expect"]["equal"])

    def run_middleware(self, case: Dict[str, Any]) -> None:
        step = compress.build(compress.parse(fields_of(case["config"])), "c", HookedContext())
        request = request_of(case["request"])
        self.assertIsNone(step.handle(request))
        status, headers, actions = backend_plan(case["backendResponse"])
        client = Collected()
        sink: Any = client
        for wrapper in request.sink_wrappers:
            sink = wrapper(sink)
        play(sink, request, status, headers, actions)
        self.check(case, client, original_body(actions))
        backend = case["expect"].get("backend")
        if backend:
            for name, value in backend["headers"].items():
                self.assertEqual(request.headers.get(name), value)

    def run_brotlizstdhandler(self, case: Dict[str, Any]) -> None:
        config = case["config"]
        excluded = tuple(parse_media_type(t) for t in config.get("excludedContentTypes", []))
        included = tuple(parse_media_type(t) for t in config.get("includedContentTypes", []))
        for item in case.get("steps", [case]):
            client = Collected()
            sink = compress.CompressSink(
                client,
                case["algorithm"],
                config["minSize"],
                excluded,
                included,  # type: ignore[arg-type]
            )
            status, headers, actions = backend_plan(item["backendResponse"])
            play(sink, request_of({}), status, headers, actions)
            self.check(dict(case, expect=item["expect"]), client, original_body(actions))

    def check(self, case: Dict[str, Any], client: Collected, original: bytes) -> None:
        expect = case["expect"]
        if "status" in expect:
            self.assertEqual(client.status, expect["status"])
        for name, value in expect.get("headers", {}).items():
            if name == "Accept-Encoding":
                continue  # a request header in the Go test's response check: always absent
            got = client.headers.get_all(name)
            self.assertEqual(
                got, [] if value is None else (value if isinstance(value, list) else [value]), name
            )
        for name, value in expect.get("headersNot", {}).items():
            self.assertNotIn(value, client.headers.get_all(name))
        encoding = client.headers.get("Content-Encoding")
        if "body" in expect:
            want = expect["body"]
            wanted = (
                original if want == "backend body unchanged" else NAMED.get(want, want.encode())
            )
            self.assertEqual(client.body, wanted)
        if expect.get("bodyCompressed"):
            self.assertNotEqual(client.body, original)
            self.assertEqual(decode(encoding or "", client.body), original)
        if "bodyDecodesTo" in expect:
            want = NAMED.get(expect["bodyDecodesTo"], original)
            self.assertEqual(decode(encoding or "", client.body), want)
        self.assertTrue(client.ended)


class ConfigTests(SynchronousTestCase):
    """Configuration errors and the fail-closed build."""

    def test_errors(self) -> None:
        """Bad encodings, default not listed, both type lists: located errors."""
        table = [
            ({"encodings": ["deflate"]}, "unsupported encoding"),
            ({"encodings": []}, "at least one"),
            ({"encodings": ["gzip"], "defaultEncoding": "br"}, "not in encodings"),
            ({"excludedContentTypes": ["a/b"], "includedContentTypes": ["c/d"]}, "exclusive"),
            ({"excludedContentTypes": ["a/b;x=1;x=2"]}, "invalid media type"),
        ]
        for config, message in table:
            with self.subTest(config):
                with self.assertRaises(FieldError) as caught:
                    compress.parse(fields_of(config))
                self.assertIn(message, str(caught.exception))

    def test_needs_hooks(self) -> None:
        """Without the engine's response sinks the kind does not build."""
        spec = compress.parse(fields_of({}))
        self.assertRaises(BuildError, compress.build, spec, "c", FakeContext())

    def test_streams(self) -> None:
        """A long body goes out as it comes: output after each flush, not only at the end."""
        client = Collected()
        sink = compress.CompressSink(client, "gzip", 1024)
        request = request_of({})
        sink.head(Response(200, HeaderList([("Content-Length", "99999")]), request))
        seen = []
        for _ in range(50):
            sink.data(generate(2000))
            sink.flush()
            seen.append(len(client.body))
        sink.end()
        self.assertEqual(sorted(set(seen)), seen)  # grew at every flush
        self.assertIsNone(client.headers.get("Content-Length"))
        self.assertEqual(gzip.decompress(client.body), generate(2000) * 50)
