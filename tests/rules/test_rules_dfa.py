"""Tests for tsproxy.rules.dfa: the linear-time automaton agrees with Go semantics."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.rules import dfa
from tsproxy.rules.regex import parse, to_python


class CacheTests(SynchronousTestCase):
    """The automaton's bounded state cache."""

    def test_cacheLimit(self) -> None:
        """The automaton forgets its cache past MAX_STATES and still answers right."""
        search = dfa.Searcher(parse("(a|b)*a(a|b){8}c"))
        subject = "ab" * 3000 + "a" + "b" * 8 + "c"
        self.assertTrue(search.search(subject))
        self.assertLessEqual(len(search.states), dfa.MAX_STATES)

    def test_anchoredStopsEarly(self) -> None:
        """An anchored pattern gives up at the first character that cannot continue it."""
        search = dfa.Searcher(parse("^(a|b)*c"))
        self.assertFalse(search.search("x" + "a" * 100))
        self.assertTrue(search.anchored)

    def test_emptyWidthAssertions(self) -> None:
        """Word boundaries and line anchors see the characters on both sides."""
        for pattern, subject, expected in [
            ("\\bb\\b", "a b c", True),
            ("\\bb\\b", "abc", False),
            ("(?m)^b$", "a\nb\nc", True),
            ("x\\B", "xy", True),
            ("x\\B", "x", False),
        ]:
            self.assertEqual(dfa.compile_search(parse(pattern))(subject), expected, pattern)


ATOMS = ["a", "b", ".", "[ab]", "[^a]", "\\b", "^", "$", "(?i)A", "\\n", "(?m:^)", "(?m:$)"]


@st.composite
def patterns(draw: Any, depth: int = 3) -> str:
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(ATOMS))
    kind = draw(st.sampled_from(["concat", "alt", "star", "plus", "quest", "count"]))
    if kind == "concat":
        return "".join(draw(st.lists(patterns(depth - 1), min_size=2, max_size=3)))
    if kind == "alt":
        return "(?:%s)" % "|".join(draw(st.lists(patterns(depth - 1), min_size=2, max_size=3)))
    inner = "(?:%s)" % draw(patterns(depth - 1))
    if kind == "count":
        low = draw(st.integers(0, 2))
        return inner + "{%d,%d}" % (low, low + draw(st.integers(0, 2)))
    return inner + {"star": "*", "plus": "+", "quest": "?"}[kind]


class DifferentialTests(SynchronousTestCase):
    """The automaton and the re translation agree on generated patterns and subjects."""

    @settings(max_examples=400, deadline=None)
    @given(patterns(), st.text(st.sampled_from(list("abAB\n ")), max_size=8))
    def test_sameAnswer(self, pattern: str, subject: str) -> None:
        """dfa.search(s) == re.search(translated pattern, s) for every generated case."""
        node = parse(pattern)
        expected = re.compile(to_python(node)).search(subject) is not None
        self.assertEqual(dfa.compile_search(node)(subject), expected)
