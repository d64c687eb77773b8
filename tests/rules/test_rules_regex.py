"""Tests for tsproxy.rules.regex: Go semantics through re and the automaton, linear-time safety."""

from __future__ import annotations

import re
import time

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.rules import dfa
from tsproxy.rules.regex import (
    backtrack_safe,
    compile_search,
    parse,
    required_literal,
    to_python,
)

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


class RequiredLiteralTests(SynchronousTestCase):
    """The literal a match must contain, used as a cheap pre-check."""

    def test_literals(self) -> None:
        """Anchored prefixes, longest plain runs, and nothing under (?i) or alternation."""
        cases = {
            "^svc5\\.[a-z]+\\.example\\.com$": ("svc5.", True),
            "[a-z]+\\.example\\.com": (".example.com", False),
            "^[a-z]+abc": ("abc", False),
            "(?i)^abc": ("", False),
            "a|bcd": ("", False),
            "(?m)^ab": ("ab", False),
            "x(?:yz)w": ("xyzw", False),
        }
        for pattern, expected in cases.items():
            self.assertEqual(required_literal(parse(pattern)), expected, pattern)

    def test_precheckKeepsAnswers(self) -> None:
        """With the pre-check, matches are still Go's."""
        search = compile_search("^svc5\\.[a-z]+\\.example\\.com$")
        self.assertTrue(search("svc5.eu.example.com"))
        self.assertFalse(search("svc6.eu.example.com"))
        self.assertFalse(compile_search("[0-9]\\.example")("a.example"))
