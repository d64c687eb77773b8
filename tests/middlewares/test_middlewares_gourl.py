"""Tests for tsproxy.middlewares.gourl: Go's path escaping model and url.Parse's refusals."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.middlewares.gourl import (
    cut_raw,
    escape_path,
    has_dot_segments,
    remove_dot_segments,
    unescape,
    url_parse_error,
    wire_path,
)


class GoURLTests(SynchronousTestCase):
    """Each function against a table of Go's results."""

    def test_unescape(self) -> None:
        """%XX decodes (to UTF-8 text, other bytes kept apart); a bad escape is Go's error."""
        table = [
            ("/a%2Fb", "/a/b"),
            ("/caf%C3%A9", "/caf\u00e9"),
            ("/a+b", "/a+b"),
            ("/%FF", "/\udcff"),
            ("/%zz", None),
            ("/%4", None),
            ("/%", None),
        ]
        for raw, decoded in table:
            self.assertEqual(unescape(raw)[0], decoded, raw)
        self.assertEqual(unescape("/x%g1"), (None, 'invalid URL escape "%g1"'))

    def test_escape_and_wire_path(self) -> None:
        """Go escapes what a path may not hold and sends RawPath only while it is a valid,
        consistent encoding of Path."""
        self.assertEqual(escape_path("/a b/\u00e9?#%!*"), "/a%20b/%C3%A9%3F%23%25%21%2A")
        self.assertEqual(escape_path("/$&+,:;=@-_.~"), "/$&+,:;=@-_.~")
        table = [
            ("/a%2Fb", "/a/b", "/a%2Fb"),
            ("/a%41", "/aA", "/a%41"),
            ("/a b", "/a b", "/a%20b"),
            ("/a%2Fb", "/a%2Fb", "/a%252Fb"),  # RawPath not decoding to Path is dropped
            ("/(x)!", "/(x)!", "/(x)!"),
        ]
        for raw, decoded, wire in table:
            self.assertEqual(wire_path(raw, decoded), wire, raw)

    def test_cut_raw(self) -> None:
        """A %XX escape stands for one decoded byte."""
        for raw, count, rest in [
            ("/ap%69/a%2Fb", 5, "a%2Fb"),
            ("/caf%C3%A9/x", 6, "/x"),
            ("/abc", 9, ""),
            ("/caf\u00e9/x", 6, "/x"),
        ]:
            self.assertEqual(cut_raw(raw, count), rest, raw)

    def test_dot_segments(self) -> None:
        """RFC 3986 removal; only a path it changes has dot segments."""
        for path, cleaned in [
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/../b", "/b"),
            ("/a/..", "/"),
            ("/a/.", "/a/"),
            ("/a//b/", "/a//b/"),
            ("/a..b/.c", "/a..b/.c"),
        ]:
            self.assertEqual(remove_dot_segments(path), cleaned, path)
        self.assertEqual(
            [has_dot_segments(p) for p in ["", "x", "./x", "/x/", "/x/.."]],
            [False, False, True, False, True],
        )

    def test_url_parse_error(self) -> None:
        """What Go's url.Parse refuses, and some of what it accepts."""
        refused = {
            "http://192.168.0.%31/": 'invalid URL escape "%31"',
            "http://foo:x/": 'invalid port ":x" after host',
            "http://exa mple/": 'invalid character " " in host name',
            "http://foo/%zz": 'invalid URL escape "%zz"',
            "http://[::1/": "missing ']' in host",
            ":x": "missing protocol scheme",
            "a/b:c:d": "",
            "a:b/c": "",
            "ab:c/d": "",
            "/a\nb": "net/url: invalid control character in URL",
        }
        for url, error in refused.items():
            self.assertEqual(url_parse_error(url), error, url)
        self.assertEqual(url_parse_error("1a:b"), "first path segment in URL cannot contain colon")
        for url in [
            "https://foo",
            "http://foo:80/x?q=%zz#f",
            "http://[::1]:80/",
            "/a:b",
            "http://%C3%A9.example/",
            "http://u:p@host:1/",
        ]:
            self.assertEqual(url_parse_error(url), "", url)


class GoURLPropertyTests(SynchronousTestCase):
    """Invariants of the path model over arbitrary text."""

    @given(st.text())
    def test_escape_round_trip(self, decoded: str) -> None:
        """Escaping then unescaping gives the text back, and Go would send the escaped form."""
        escaped = escape_path(decoded)
        self.assertEqual(unescape(escaped), (decoded, ""))
        self.assertEqual(wire_path(escaped, decoded), escaped)

    @given(st.text(), st.data())
    def test_cut_raw_matches_decoded_cut(self, decoded: str, data: st.DataObject) -> None:
        """Cutting the escaped path after a decoded prefix's bytes leaves the escaped rest."""
        index = data.draw(st.integers(0, len(decoded)))
        cut = cut_raw(escape_path(decoded), len(decoded[:index].encode("utf-8")))
        self.assertEqual(cut, escape_path(decoded[index:]))
