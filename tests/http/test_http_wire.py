"""Tests for tsproxy.http.wire: request/response heads and body framing."""

from __future__ import annotations

from typing import List, Optional

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.http import wire
from tsproxy.http.wire import (
    ChunkedDecoder,
    HTTPError,
    LengthDecoder,
    RequestPolicy,
    encode_chunk,
    find_head_end,
    parse_request_head,
    parse_response_head,
)

# (description, head, expected: dict of attributes, or an int status for an error)
REQUEST_HEADS = [
    ("simple GET", b"GET / HTTP/1.1\r\nHost: a", {"framing": "none", "keep_alive": True}),
    ("HTTP/1.0 closes by default", b"GET / HTTP/1.0", {"keep_alive": False}),
    ("HTTP/1.0 keep-alive", b"GET / HTTP/1.0\r\nConnection: keep-alive", {"keep_alive": True}),
    ("Connection: close", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close", {"keep_alive": False}),
    (
        "content length",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12",
        {"framing": "length", "content_length": 12},
    ),
    (
        "zero content length",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0",
        {"framing": "none"},
    ),
    (
        "repeated identical content length",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3",
        {"framing": "length", "content_length": 3},
    ),
    (
        "chunked",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked",
        {"framing": "chunked"},
    ),
    (
        "chunked any case",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked",
        {"framing": "chunked"},
    ),
    ("bare LF line endings", b"GET / HTTP/1.1\nHost: a", {"framing": "none"}),
    ("leading empty line ignored", b"\r\nGET / HTTP/1.1\r\nHost: a", {"method": b"GET"}),
    (
        "websocket upgrade",
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket",
        {"upgrade": b"websocket"},
    ),
    (
        "upgrade without Connection token is not an upgrade",
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket",
        {"upgrade": None},
    ),
    (
        "expect continue",
        b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1",
        {"expect_continue": True},
    ),
    ("absolute form target", b"GET http://a/b?c HTTP/1.1\r\nHost: a", {"target": b"http://a/b?c"}),
    (
        "header value whitespace trimmed",
        b"GET / HTTP/1.1\r\nHost:   a  ",
        {"headers": [(b"Host", b"a")]},
    ),
    ("missing Host in HTTP/1.1", b"GET / HTTP/1.1\r\nX: y", 400),
    ("two Host headers", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b", 400),
    ("garbage request line", b"HELLO", 400),
    ("four-part request line", b"GET / x HTTP/1.1\r\nHost: a", 400),
    ("bad method token", b"G(T / HTTP/1.1\r\nHost: a", 400),
    ("unknown version", b"GET / HTTP/2.0\r\nHost: a", 505),
    ("bad version", b"GET / HTTX/1.1\r\nHost: a", 400),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : a", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\n b", 400),
    ("no colon", b"GET / HTTP/1.1\r\nHost: a\r\nnocolon", 400),
    ("control char in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b", 400),
    ("negative content length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1", 400),
    ("non-numeric content length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x", 400),
    (
        "conflicting content lengths",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2",
        400,
    ),
    (
        "CL and TE together",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked",
        400,
    ),
    ("unknown transfer coding", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip", 501),
    ("chunked not last", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip", 501),
    ("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked", 400),
    ("unknown expectation", b"GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot", 417),
    ("space in target", b"GET /a b HTTP/1.1\r\nHost: a", 400),
]

# (description, head, request method, expected framing, keep_alive, or 502)
RESPONSE_HEADS = [
    ("length", b"HTTP/1.1 200 OK\r\nContent-Length: 5", b"GET", "length", True),
    ("zero length", b"HTTP/1.1 200 OK\r\nContent-Length: 0", b"GET", "none", True),
    ("chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", b"GET", "chunked", True),
    (
        "TE wins over CL",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
        b"GET",
        "chunked",
        True,
    ),
    ("no length reads to close", b"HTTP/1.1 200 OK", b"GET", "close", False),
    ("HEAD has no body", b"HTTP/1.1 200 OK\r\nContent-Length: 5", b"HEAD", "none", True),
    ("204 has no body", b"HTTP/1.1 204 No Content", b"GET", "none", True),
    ("304 has no body", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9", b"GET", "none", True),
    ("100 continue", b"HTTP/1.1 100 Continue", b"PUT", "none", True),
    ("HTTP/1.0 closes", b"HTTP/1.0 200 OK\r\nContent-Length: 1", b"GET", "length", False),
    (
        "HTTP/1.0 keep-alive",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1",
        b"GET",
        "length",
        True,
    ),
    (
        "Connection: close",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1",
        b"GET",
        "length",
        False,
    ),
    ("empty reason", b"HTTP/1.1 200\r\nContent-Length: 1", b"GET", "length", True),
    ("garbage status", b"HTTP/1.1 2OO NOPE", b"GET", 502),
    ("not HTTP", b"SSH-2.0-OpenSSH", b"GET", 502),
    ("bad content length", b"HTTP/1.1 200 OK\r\nContent-Length: x", b"GET", 502),
]


class RequestHeadTests(SynchronousTestCase):
    """parse_request_head on valid and invalid heads."""

    def test_table(self) -> None:
        """Every request head in the table parses to the expected values or status, the
        first time and when its header section is remembered."""
        for description, head, expected in REQUEST_HEADS + REQUEST_HEADS:
            if isinstance(expected, int):
                with self.assertRaises(HTTPError, msg=description) as ctx:
                    parse_request_head(head)
                self.assertEqual(ctx.exception.status, expected, description)
                continue
            req = parse_request_head(head)
            for attr, value in expected.items():
                self.assertEqual(getattr(req, attr), value, description)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def test_arbitraryBytes(self, data: bytes) -> None:
        """Arbitrary bytes give a RequestHead or an HTTPError with a 4xx/5xx status, and
        the same again once the header section is remembered."""
        wire._REQUEST_SECTIONS.clear()
        outcomes = []
        for _ in range(2):
            try:
                outcomes.append(parse_request_head(data))
            except HTTPError as e:
                self.assertIn(e.status, (400, 417, 501, 505))
                outcomes.append((e.status, e.reason))
        self.assertEqual(outcomes[0], outcomes[1])


class RememberedSectionTests(SynchronousTestCase):
    """The parsers remember what they read from a header section by its bytes."""

    def test_headersOwned(self) -> None:
        """Each parse owns its header list: changing one (as a headers middleware does)
        changes nothing in the next parse of the same bytes."""
        first = parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1")
        first.headers.append((b"X-B", b"2"))
        first.headers[0] = (b"Host", b"b")
        second = parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1")
        self.assertEqual(second.headers, [(b"Host", b"a"), (b"X-A", b"1")])
        resp = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1", b"GET")
        resp.headers.clear()
        again = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1", b"GET")
        self.assertEqual(again.headers, [(b"Content-Length", b"1")])

    def test_sameSectionOtherLine(self) -> None:
        """A remembered section is read with each head's own start line: version, method
        and status still decide what it means."""
        section = b"\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive"
        self.assertEqual(parse_request_head(b"POST / HTTP/1.1" + section).framing, "chunked")
        with self.assertRaises(HTTPError) as ctx:
            parse_request_head(b"POST / HTTP/1.0" + section)
        self.assertEqual(ctx.exception.status, 400)
        self.assertEqual(
            parse_response_head(b"HTTP/1.1 200 OK" + section, b"GET").framing, "chunked"
        )
        self.assertEqual(parse_response_head(b"HTTP/1.1 304 OK" + section, b"GET").framing, "none")
        bad = b"\r\nContent-Length: x"
        self.assertEqual(parse_response_head(b"HTTP/1.1 204 OK" + bad, b"GET").framing, "none")
        with self.assertRaises(HTTPError):
            parse_response_head(b"HTTP/1.1 200 OK" + bad, b"GET")

    def test_bounded(self) -> None:
        """At most CACHED_SECTIONS sections of at most CACHED_SECTION_BYTES are kept; a
        refused section is never kept."""
        for n in range(wire.CACHED_SECTIONS + 10):
            parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\nX-N: %d" % n)
            self.assertLessEqual(len(wire._REQUEST_SECTIONS), wire.CACHED_SECTIONS)
        wire._REQUEST_SECTIONS.clear()
        value = b"v" * wire.CACHED_SECTION_BYTES
        parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + value)
        self.assertEqual(len(wire._REQUEST_SECTIONS), 0)
        for _ in range(2):
            with self.assertRaises(HTTPError):
                parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: 1")
        self.assertEqual(len(wire._REQUEST_SECTIONS), 0)

    def test_manyShortLinesNotKept(self) -> None:
        """A section under CACHED_SECTION_BYTES but of more than MAX_HEADERS short lines (a
        431 for a request) is not kept: each such entry is tens of KiB of parsed tuples."""
        lines = b"".join(b"\r\n%02d:" % (i % 100) for i in range(400))
        self.assertLess(len(lines), wire.CACHED_SECTION_BYTES)
        wire._REQUEST_SECTIONS.clear()
        wire._RESPONSE_SECTIONS.clear()
        for _ in range(2):
            with self.assertRaises(HTTPError) as ctx:
                parse_request_head(b"GET / HTTP/1.1\r\nHost: a" + lines)
            self.assertEqual(ctx.exception.status, 431)
            resp = parse_response_head(b"HTTP/1.1 200 OK" + lines, b"GET")
            self.assertEqual(len(resp.headers), 400)
        self.assertEqual(len(wire._REQUEST_SECTIONS), 0)
        self.assertEqual(len(wire._RESPONSE_SECTIONS), 0)
        at_limit = b"".join(b"\r\nX:" for _ in range(wire.MAX_HEADERS))
        parse_response_head(b"HTTP/1.1 200 OK" + at_limit, b"GET")
        self.assertEqual(len(wire._RESPONSE_SECTIONS), 1)

    def test_warmEqualsCold(self) -> None:
        """Every start line, policy and request method reads a section as it would with
        nothing remembered, whichever head put the section in memory."""
        fields = [
            b"Host: a",
            b"Host: b",
            b"Content-Length: 5",
            b"Content-Length: x",
            b"Transfer-Encoding: chunked",
            b"Transfer-Encoding: gzip",
            b"Connection: close",
            b"Connection: keep-alive, Upgrade",
            b"Upgrade: websocket",
            b"Expect: 100-continue",
            b"Expect: other",
            b"X-A: 1",
        ]
        sections = [b""] + [b"\r\n" + f for f in fields]
        sections += [b"\r\n" + a + b"\n" + b for a in fields for b in fields[::3]]
        requests = [b"GET / HTTP/1.1", b"POST /a HTTP/1.0", b"GET http://h/ HTTP/1.1"]
        policies = [RequestPolicy(), RequestPolicy(max_headers=1)]
        responses = [b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK", b"HTTP/1.1 304 x", b"HTTP/1.1 101 x"]

        def outcome(parse, *args: object) -> object:
            try:
                return parse(*args)
            except HTTPError as e:
                return (e.status, e.reason)

        for section in sections:
            heads = [(parse_request_head, line + section, p) for line in requests for p in policies]
            heads += [
                (parse_response_head, line + section, m)
                for line in responses
                for m in (b"GET", b"HEAD")
            ]
            cold = []
            for parse, head, arg in heads:
                wire._REQUEST_SECTIONS.clear()
                wire._RESPONSE_SECTIONS.clear()
                cold.append(outcome(parse, head, arg))
            for first in heads:
                wire._REQUEST_SECTIONS.clear()
                wire._RESPONSE_SECTIONS.clear()
                outcome(*first)  # remembered by this head, read by every other
                warm = [outcome(parse, head, arg) for parse, head, arg in heads]
                self.assertEqual(warm, cold, (first[1], section))


class ResponseHeadTests(SynchronousTestCase):
    """parse_response_head framing decisions."""

    def test_table(self) -> None:
        """Each response head gets the framing and keep-alive RFC 9112 §6.3 gives it, the
        first time and when its header section is remembered."""
        for case in RESPONSE_HEADS + RESPONSE_HEADS:
            description, head, method = case[:3]
            if case[3] == 502:
                with self.assertRaises(HTTPError, msg=description) as ctx:
                    parse_response_head(head, method)
                self.assertEqual(ctx.exception.status, 502)
                continue
            resp = parse_response_head(head, method)
            self.assertEqual((resp.framing, resp.keep_alive), case[3:], description)


class HeadEndTests(SynchronousTestCase):
    """find_head_end locates the blank line."""

    def test_table(self) -> None:
        """CRLF, LF and mixed endings are found; incomplete heads are not."""
        cases = [
            (b"GET / HTTP/1.1\r\n\r\nbody", (14, 18)),
            (b"GET / HTTP/1.1\n\nbody", (14, 16)),
            (b"GET / HTTP/1.1\n\r\nbody", (14, 17)),
            (b"GET / HTTP/1.1\r\nHost: a\r\n", (-1, -1)),
            (b"", (-1, -1)),
        ]
        for data, expected in cases:
            self.assertEqual(find_head_end(data), expected, data)


def _decode(decoder_factory, pieces: List[bytes]):  # type: ignore[no-untyped-def]
    out: List[bytes] = []
    decoder = decoder_factory(out.append)
    leftover: Optional[bytes] = None
    for piece in pieces:
        leftover = decoder.feed(piece)
        if leftover is not None:
            break
    return b"".join(out), leftover


CHUNKED = [
    ("one chunk", [b"5\r\nhello\r\n0\r\n\r\n"], b"hello", b""),
    ("two chunks and leftover", [b"2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\nNEXT"], b"hello", b"NEXT"),
    ("byte by byte", [bytes([c]) for c in b"3\r\nabc\r\n0\r\n\r\n"], b"abc", b""),
    ("extension ignored", [b"3;name=val\r\nabc\r\n0\r\n\r\n"], b"abc", b""),
    ("trailers dropped", [b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"], b"abc", b""),
    ("upper hex", [b"A\r\n0123456789\r\n0\r\n\r\n"], b"0123456789", b""),
    ("incomplete", [b"5\r\nhel"], b"hel", None),
]

CHUNKED_BAD = [
    ("non-hex size", b"zz\r\nabc\r\n"),
    ("missing CRLF after data", b"3\r\nabcX\r\n"),
    ("huge size line", b"1" * 5000),
    ("size too long", b"1234567890123456\r\n"),
]


class ChunkedDecoderTests(SynchronousTestCase):
    """ChunkedDecoder on good and bad chunked bodies."""

    def test_table(self) -> None:
        """Chunked bodies decode to their data and give back what follows them."""
        for description, pieces, body, leftover in CHUNKED:
            self.assertEqual(_decode(ChunkedDecoder, pieces), (body, leftover), description)

    def test_bad(self) -> None:
        """Malformed chunked framing raises HTTPError with the configured status."""
        for description, data in CHUNKED_BAD:
            decoder = ChunkedDecoder(lambda _: None, error_status=502)
            with self.assertRaises(HTTPError, msg=description) as ctx:
                decoder.feed(data)
            self.assertEqual(ctx.exception.status, 502)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.binary(min_size=1, max_size=40), max_size=8), st.integers(1, 7))
    def test_roundTrip(self, chunks: List[bytes], split: int) -> None:
        """encode_chunk output, split anywhere, decodes back to the same bytes."""
        wire = b"".join(b"".join(encode_chunk(c)) for c in chunks) + b"0\r\n\r\nREST"
        pieces = [wire[i : i + split] for i in range(0, len(wire), split)]
        body, leftover = _decode(ChunkedDecoder, pieces)
        self.assertEqual(body, b"".join(chunks))
        # Leftover is what followed the terminating chunk within the piece that ended it.
        self.assertTrue(b"REST".startswith(leftover or b"") or leftover.startswith(b"R"))


class LengthDecoderTests(SynchronousTestCase):
    """LengthDecoder stops at the length."""

    def test_table(self) -> None:
        """Bytes past the length are leftover; short input asks for more."""
        cases = [
            (5, [b"hel", b"loXY"], b"hello", b"XY"),
            (5, [b"hello"], b"hello", b""),
            (5, [b"he"], b"he", None),
            (0, [b"abc"], b"", b"abc"),
        ]
        for length, pieces, body, leftover in cases:
            got = _decode(lambda cb, n=length: LengthDecoder(n, cb), pieces)
            self.assertEqual(got, (body, leftover), (length, pieces))
