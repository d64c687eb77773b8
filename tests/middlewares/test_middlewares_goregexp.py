"""Tests for tsproxy.middlewares.goregexp: Go's submatch numbering, Expand and
ReplaceAllString semantics, and the linear-time prefilter."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.middlewares.goregexp import RegexError, compile_go

# (pattern, subject, template, Go's ReplaceAllString)
REPLACE = [
    ("x*", "abxd", "-", "-a-b-d-"),
    ("a|", "ab", "-", "-b-"),
    ("(b)", "abc", "[$1]", "a[b]c"),
    ("(b)", "abc", "[$1x]", "a[]c"),
    ("(b)", "abc", "[${1}x]", "a[bx]c"),
    ("(b)", "abc", "[$$1]", "a[$1]c"),
    ("(b)", "abc", "[$]", "a[$]c"),
    ("(b)", "abc", "[${1]", "a[${1]c"),
    ("(b)", "abc", "[$2]", "a[]c"),
    ("(b)", "abc", "[$01]", "a[]c"),
    ("(?P<n>b)", "abc", "[$n|${n}|$1]", "a[b|b|b]c"),
    ("(?<n>b)", "abc", "[${n}]", "a[b]c"),
    ("(a)(?:b)(c)", "abc", "$2$1", "ca"),
    ("(?i)(B)", "abc", "$1$1", "abbc"),
    ("((a)|b)+", "ab", "[$1|$2]", "[b|a]"),
    ("(a)?b", "b", "[$1]", "[]"),
    ("^/api", "/api/api", "", "/api"),
    ("\\bx", "x x", "y", "y y"),
    ("é", "café", "e", "cafe"),
]


class GoRegexpTests(SynchronousTestCase):
    """Capture groups and replacement as Go's regexp package does them."""

    def test_replace_all(self) -> None:
        """Each replacement gives Go's result (empty matches, $-expansion, group numbers)."""
        for pattern, subject, template, expected in REPLACE:
            self.assertEqual(compile_go(pattern).replace_all(subject, template), expected, pattern)

    def test_names(self) -> None:
        """Group names are kept by number, unnamed groups as ""."""
        self.assertEqual(compile_go("(a)(?P<x>b)(?:c)(?<y>d)").names, ("", "x", "y"))

    def test_refused(self) -> None:
        """What Go's regexp.Compile refuses is a RegexError."""
        for pattern in ["a(", "(?=a)", "\\1", "(?P<a>x)(?P<a>y)", "a{1001}"]:
            self.assertRaises(RegexError, compile_go, pattern)

    def test_prefilter(self) -> None:
        """A pattern Python could backtrack on exponentially is refused quickly when it does
        not match, thanks to the automaton; safe patterns skip it."""
        self.assertIsNone(compile_go("^/api/(.*)").prefilter)
        dangerous = compile_go("^(a+)+$")
        self.assertIsNotNone(dangerous.prefilter)
        started = time.monotonic()
        self.assertIsNone(dangerous.search("a" * 40 + "b"))
        self.assertLess(time.monotonic() - started, 1.0)
        self.assertEqual(dangerous.replace_all("aaa", "[$1]"), "[aaa]")


class GoRegexpPropertyTests(SynchronousTestCase):
    """Replacement invariants over arbitrary subjects."""

    @given(
        st.sampled_from(["a*", "(a|b)+", "x?", "", "^", "$", "\\b", "(a)(b)?", "[ab]*?", "a|"]),
        st.text(alphabet="abx \n"),
    )
    def test_whole_match_template_is_identity(self, pattern: str, subject: str) -> None:
        """Replacing every match by itself (${0}) gives the subject back."""
        self.assertEqual(compile_go(pattern).replace_all(subject, "${0}"), subject)
