"""Tests for tsproxy.rules.regex and dfa: Go RE2 syntax, semantics and linear-time matching."""

from __future__ import annotations

import re
import time

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.rules import dfa, regex
from tsproxy.rules.regex import RegexError, backtrack_safe, compile_search, parse, to_python

# From Go's regexp/syntax parse_test.go (invalidRegexps), plus RE2's unsupported Perl forms.
GO_INVALID = [
    "(",
    ")",
    "(a",
    "a)",
    "(a))",
    "(a|b|",
    "a|b|)",
    "(a|b|))",
    "[a-z",
    "([a-z)",
    "[a-z)",
    "([a-z]))",
    "x{1001}",
    "x{9876543210}",
    "x{2,1}",
    "x{1,9876543210}",
    "(?P<name>a",
    "(?P<name>",
    "(?P<name",
    "(?P<x y>a)",
    "(?P<>a)",
    "(?<name>a",
    "(?<x y>a)",
    "(?<>a)",
    "[a-Z]",
    "(?i)[a-Z]",
    "\\Q\\E*",
    "a{100000}",
    "a{100000,}",
    "((((((((((x{2}){2}){2}){2}){2}){2}){2}){2}){2}){2})",
    "a**",
    "a*+",
    "a??*",
    "*",
    "(*)",
    "a|*",
    "\\1",
    "\\8",
    "\\Z",
    "\\C",
    "\\e",
    "[\\b]",
    "(?=a)",
    "(?!a)",
    "(?<=a)",
    "(?<!a)",
    "(?>a)",
    "(?#c)",
    "(?(1)a|b)",
    "(?P=n)",
    "(?z)",
    "(?-)",
    "(?i-)",
    "(?--i)",
    "(?P<n>a)(?P<n>b)",
    "\\x{110000}",
    "\\xZ1",
    "\\p{Nope}",
    "[[:nope:]]",
    "\\",
]
# Valid in Go (Perl mode), including the forms Python's re would read differently.
GO_VALID = [
    "[a-b-c]",
    "\\Qabc\\E",
    "\\Q*+?{[\\E",
    "\\Q\\\\E",
    "(?:a)",
    "(?P<name>a)",
    "(?<name>a)",
    "(?P<1a>a)",
    "(?i)(?m)(?s)(?U)a",
    "(?i-ms:a)",
    "(?)",
    "a{,5}",
    "a{01}",
    "{",
    "a{",
    "^*",
    "\\b+",
    "()*",
    "[]a]",
    "[^]a]",
    "[a-]",
    "\\pL\\PL\\p{Lu}\\p{^Lu}\\p{Any}",
    "[[:alpha:][:^digit:]]",
    "\\x{10FFFF}\\x41\\101\\0\\07",
    "\\_\\-\\.",
    "a(?i)*",
]


class SyntaxTests(SynchronousTestCase):
    """Which patterns Go's regexp.Compile accepts."""

    def test_goRejects(self) -> None:
        """Every pattern Go rejects is a RegexError."""
        for pattern in GO_INVALID:
            self.assertRaises(RegexError, parse, pattern)

    def test_goAccepts(self) -> None:
        """Every pattern Go accepts parses and compiles."""
        for pattern in GO_VALID:
            compile_search(pattern)

    def test_nestingLimit(self) -> None:
        """Deep nesting is a RegexError, not a RecursionError."""
        for pattern in ["(" * 300 + ")" * 300, "(?:" * 300 + ")*" * 300, "(?:a|" * 300]:
            self.assertRaises(RegexError, parse, pattern)

    def test_errorOffset(self) -> None:
        """A RegexError says where in the pattern the problem is."""
        with self.assertRaises(RegexError) as caught:
            parse("ab(?=c)")
        self.assertEqual(caught.exception.offset, 2)


SEMANTICS = [
    # (pattern, subject, Go's MatchString)
    ("a$", "a\n", False),
    ("(?m)a$", "a\n", True),
    ("^b", "a\nb", False),
    ("(?m)^b", "a\nb", True),
    ("a.c", "a\nc", False),
    ("(?s)a.c", "a\nc", True),
    ("[^x]", "\n", True),
    ("\\s", "\v", False),
    ("[[:space:]]", "\v", True),
    ("\\w", "é", False),
    ("\\d", "٣", False),
    ("\\bé", " é", False),
    ("\\Bé", " é", True),
    ("(?i)k", "\u212a", True),
    ("(a(?i)b)c", "aBc", True),
    ("(a(?i)b)c", "aBC", False),
    ("a(?i)b|c", "C", True),
    ("(?i:a)b", "AB", False),
    ("a{,5}", "a{,5}", True),
    ("a{,5}", "aa", False),
    ("\\Q.*\\E", "a", False),
    ("\\Q.*\\E", ".*", True),
    ("\\101\\x42\\x{43}", "ABC", True),
    ("\\pN", "½", True),
    ("\\p{^L}", "a", False),
    ("[\\d-z]", "-", True),
    ("[a-]", "-", True),
    ("[]a]", "]", True),
    ("^$", "", True),
    ("x*", "", True),
    ("\\z", "", True),
    ("\\A\\z", "a", False),
    ("(?U)a+", "aaa", True),
    ("a(?i)*", "aAa", True),
    ("\\_", "_", True),
]


class SemanticsTests(SynchronousTestCase):
    """Matches agree with Go's, through both engines."""

    def test_table(self) -> None:
        """Python re (when used) and the automaton give Go's answer for each case."""
        for pattern, subject, expected in SEMANTICS:
            node = parse(pattern)
            self.assertEqual(compile_search(pattern)(subject), expected, pattern)
            self.assertEqual(dfa.compile_search(node)(subject), expected, ("dfa", pattern))
            python = re.compile(to_python(node)).search(subject) is not None
            self.assertEqual(python, expected, ("re", pattern))


class BacktrackSafetyTests(SynchronousTestCase):
    """Which patterns may run on Python's re, and that the others stay linear."""

    def test_classification(self) -> None:
        """Anchored single-repeat and guarded shapes go to re; the rest to the automaton."""
        safe = [
            "^example\\.(com|org)$",
            "^/api/v[0-9]+/",
            "^/users/[0-9]+/posts/[0-9]+$",
            "^/api/.*x",
            "v[0-9]+",
            "foo",
            "(?i)^/API(/v1)?/",
            "[a-z]{1,3}x",
        ]
        unsafe = [
            ".*a.*b",
            "(a+)+$",
            "(a|aa)*c",
            "\\d*\\d*\\d*x",
            "[a-z]+\\.com",
            "^.*a.*b",
            "(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)",
        ]
        for pattern in safe:
            self.assertTrue(backtrack_safe(parse(pattern)), pattern)
        for pattern in unsafe:
            self.assertFalse(backtrack_safe(parse(pattern)), pattern)

    def test_catastrophicPatternsStayFast(self) -> None:
        """Patterns that make backtracking explode run in linear time."""
        cases = [
            ("(a+)+$", "a" * 5000 + "!"),
            (".*a.*b", "a" * 20000),
            ("(a|aa)*c", "a" * 20000),
            ("\\d*\\d*\\d*x", "1" * 20000),
            ("(x+x+)+y", "x" * 20000),
            ("[a-z]+\\.com", "a" * 20000),
        ]
        start = time.perf_counter()
        for pattern, subject in cases:
            self.assertFalse(compile_search(pattern)(subject), pattern)
        self.assertLess(time.perf_counter() - start, 2.0)


class AnyPatternTests(SynchronousTestCase):
    """parse on arbitrary text."""

    @settings(max_examples=500, deadline=None)
    @given(st.text(st.sampled_from(list("ab()[]{}|*+?^$.\\-:,0129PpQEizx<>=!#^")), max_size=16))
    def test_patternOrRegexError(self, pattern: str) -> None:
        """Any text is a RegexError or a pattern both engines run without error."""
        try:
            node = parse(pattern)
        except RegexError:
            return
        compile_search(pattern)("ab-:0{}")
        dfa.compile_search(node)("ab-:0{}")
        self.assertIsInstance(regex.size(node), int)
