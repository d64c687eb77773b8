"""Tests for tsproxy.rules.request: canonical host, routing path, query, cookies."""

from __future__ import annotations

from typing import Any, Callable, List, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.rulevectors import add_case_tests, check, load
from tsproxy.rules import HTTPRequestInfo, TCPConnectionInfo, routing_path
from tsproxy.rules.request import (
    canonical_host,
    parse_cookies,
    parse_query,
    query_unescape,
    split_host_port,
)


def routing_cases() -> List[Tuple[str, str, Callable[[SynchronousTestCase], None]]]:
    cases = []
    for index, case in enumerate(load("http-routing-misc.json")):
        if case["kind"] != "routing_path":
            continue
        key = "http-routing-misc.json#%d" % index

        def body(test: SynchronousTestCase, case: Any = case, key: str = key) -> None:
            check(test, key, routing_path(case["request_path"]), case["expected_routing_path"])

        cases.append((key, "routing path of %s" % case["request_path"], body))
    return cases


class RoutingPathTests(SynchronousTestCase):
    """routing_path: Traefik's TestRoutingPath table and Go's EscapedPath corner cases."""

    def test_unreservedDecodedReservedKept(self) -> None:
        """Unreserved escapes decode, reserved ones stay with upper-case hex."""
        self.assertEqual(routing_path("/%7Eu%2fv%3a%41"), "/~u%2Fv%3AA")

    def test_utf8Decoded(self) -> None:
        """Percent-encoded UTF-8 decodes to the character."""
        self.assertEqual(routing_path("/caf%C3%A9"), "/café")

    def test_invalidUTF8KeptAsSurrogates(self) -> None:
        """A byte that is not UTF-8 survives as a surrogate escape, never an exception."""
        self.assertEqual(routing_path("/%FF"), "/\udcff")

    def test_rawNonASCIIMakesGoReencode(self) -> None:
        """With a raw non-ASCII character Go re-encodes the decoded path: %2F becomes '/'."""
        self.assertEqual(routing_path("/é%2Fx"), "/é/x")

    def test_invalidEscapeKept(self) -> None:
        """An invalid escape is left as it is (Go answers 400 before routing)."""
        self.assertEqual(routing_path("/a%zz%"), "/a%zz%")

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=30))
    def test_anyText(self, text: str) -> None:
        """Any path gives a string and plain paths come back unchanged."""
        result = routing_path("/" + text)
        self.assertIsInstance(result, str)
        if "%" not in text and all(c.isascii() and c.isalnum() or c in "/-._~" for c in text):
            self.assertEqual(result, "/" + text)


add_case_tests(RoutingPathTests, "vector", routing_cases())


class HostTests(SynchronousTestCase):
    """Which host a request is routed on."""

    def test_splitHostPort(self) -> None:
        """split_host_port follows Go's net.SplitHostPort."""
        self.assertEqual(split_host_port("a:80"), ("a", "80"))
        self.assertEqual(split_host_port("[::1]:80"), ("::1", "80"))
        self.assertEqual(split_host_port("a:"), ("a", ""))
        for bad in ("a", "::1", "[::1]", "a:b:c", "[a]x:1", "a]:1"):
            self.assertIsNone(split_host_port(bad), bad)

    def test_canonicalHost(self) -> None:
        """Port and brackets go, case is lowered, a bare IPv6 address is kept."""
        self.assertEqual(canonical_host("EXAMPLE.com:8080"), "example.com")
        self.assertEqual(canonical_host("[::1]"), "::1")
        self.assertEqual(canonical_host("10::10"), "10::10")

    def test_absoluteFormWins(self) -> None:
        """The authority of an absolute-form target wins over the Host header."""
        req = HTTPRequestInfo.from_request(
            "GET", "http://user@A.com:81/p?q", [("Host", "b.com")], "1.2.3.4"
        )
        self.assertEqual((req.host, req.path, req.raw_query), ("a.com", "/p", "q"))
        self.assertEqual(req.authority, "A.com:81")

    def test_emptyAuthorityFallsBack(self) -> None:
        """http://@/ has an empty authority, so the Host header is used."""
        req = HTTPRequestInfo.from_request("GET", "http://@/", [("host", "B.com")], "")
        self.assertEqual(req.host, "b.com")

    def test_trailingDots(self) -> None:
        """host drops trailing dots; traefik_host keeps them for Host and HostRegexp."""
        req = HTTPRequestInfo.from_request("GET", "/", [("Host", "a.com.")], "")
        self.assertEqual((req.host, req.traefik_host), ("a.com", "a.com."))

    def test_connect(self) -> None:
        """A CONNECT target is an authority."""
        req = HTTPRequestInfo.from_request("CONNECT", "a.com:443", [], "")
        self.assertEqual((req.host, req.path), ("a.com", ""))

    def test_noHost(self) -> None:
        """Without a Host header and with an origin-form target the host is empty."""
        self.assertEqual(HTTPRequestInfo.from_request("GET", "/", [], "").host, "")

    def test_hostGiven(self) -> None:
        """A Host value the caller parsed is used and the header lines are not read; the
        target's authority still wins."""

        class Unread:
            def __iter__(self) -> Any:
                raise AssertionError("the header lines were read")

        cases = [
            # (target, host given, routed host, authority)
            ("/", "A.com:80", "a.com", "A.com:80"),
            ("/", "", "", ""),
            ("http://b.com/", "a.com", "b.com", "b.com"),
        ]
        for target, host, routed, authority in cases:
            req = HTTPRequestInfo.from_request("GET", target, Unread(), "", host=host)  # type: ignore[arg-type]
            self.assertEqual((req.host, req.authority), (routed, authority), target)


# Every code point, lone surrogates included (what a bad decoding upstream could hand us).
ANY_CHARACTER = st.characters(blacklist_categories=())


class LazyViewTests(SynchronousTestCase):
    """Headers, query and cookies are computed on first use and kept."""

    def test_headersOnePerLine(self) -> None:
        """Header names are lower-cased and each line is one value."""
        req = HTTPRequestInfo.from_request("GET", "/", [("X-A", "1"), ("x-a", "2, 3")], "")
        self.assertEqual(req.headers, {"x-a": ("1", "2, 3")})
        self.assertIs(req.headers, req.headers)

    def test_query(self) -> None:
        """Form decoding, ';' as a separator, invalid escapes skipped, bare keys empty."""
        self.assertEqual(
            parse_query("a=1+2;b=%41&c&a=x%zz&=v&d=%E9"),
            {"a": ("1 2",), "b": ("A",), "c": ("",), "": ("v",), "d": ("\udce9",)},
        )
        self.assertIsNone(query_unescape("%4"))

    def test_cookies(self) -> None:
        """Go's readCookies: first value wins, quotes stripped, malformed pairs skipped."""
        lines = ['a=1; b="2"; bad name=3; c=x"y; a=4', " d = 5 ;e"]
        self.assertEqual(parse_cookies(lines), {"a": "1", "b": "2", "d": " 5", "e": ""})
        req = HTTPRequestInfo.from_request("GET", "/", [("Cookie", "s=v")], "")
        self.assertEqual(req.cookies, {"s": "v"})

    def test_clientAddress(self) -> None:
        """The client IP is parsed once; a non-IP gives None."""
        self.assertEqual(
            HTTPRequestInfo.from_request("GET", "/", [], "10.0.0.1").client_address,
            (4, 0x0A000001),
        )
        self.assertIsNone(HTTPRequestInfo.from_request("GET", "/", [], "x").client_address)
        self.assertIsNone(TCPConnectionInfo(client_ip="").client_address)

    @settings(max_examples=300, deadline=None)
    @given(
        st.text(max_size=20),
        st.text(ANY_CHARACTER, max_size=30)
        | st.text(st.sampled_from("/%?;=&aF2é\ud800"), max_size=30),
        st.lists(st.tuples(st.text(max_size=8), st.text(ANY_CHARACTER, max_size=12)), max_size=4),
    )
    def test_anyRequest(self, method: str, target: str, headers: List[Tuple[str, str]]) -> None:
        """Any method, target and headers (lone surrogates too) build a view whose parts work."""
        req = HTTPRequestInfo.from_request(method, target, headers, "1.2.3.4")
        self.assertEqual(req.host, req.host.lower().rstrip("."))
        req.headers, req.query, req.cookies, req.client_address  # noqa: B018
