"""Tests for tsproxy.rules.regex_syntax: which patterns Go's regexp.Compile accepts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.rules import dfa, regex
from tsproxy.rules.regex_syntax import RegexError, parse

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
            regex.compile_search(pattern)

    def test_nestingLimit(self) -> None:
        """Deep nesting is a RegexError, not a RecursionError."""
        for pattern in ["(" * 300 + ")" * 300, "(?:" * 300 + ")*" * 300, "(?:a|" * 300]:
            self.assertRaises(RegexError, parse, pattern)

    def test_errorOffset(self) -> None:
        """A RegexError says where in the pattern the problem is."""
        with self.assertRaises(RegexError) as caught:
            parse("ab(?=c)")
        self.assertEqual(caught.exception.offset, 2)


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
        regex.compile_search(pattern)("ab-:0{}")
        dfa.compile_search(node)("ab-:0{}")
        self.assertIsInstance(regex.size(node), int)
