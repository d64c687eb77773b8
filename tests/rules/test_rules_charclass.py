"""Tests for tsproxy.rules.charclass: range arithmetic, named classes, re spelling."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.rules import charclass


class RangeTests(SynchronousTestCase):
    """Union and complement."""

    def test_unionMerges(self) -> None:
        """Overlapping and adjacent ranges merge."""
        self.assertEqual(
            charclass.union([((5, 9), (1, 2)), ((3, 4), (20, 20))]), ((1, 9), (20, 20))
        )

    @given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 50)), max_size=6))
    def test_negateTwiceIsIdentity(self, spans: list) -> None:
        """Complementing twice gives the merged set back."""
        ranges = charclass.union([tuple((low, low + width) for low, width in spans)])
        self.assertEqual(charclass.negate(charclass.negate(ranges)), ranges)


class NamedClassTests(SynchronousTestCase):
    """Perl, POSIX and Unicode classes."""

    def test_perlIsASCII(self) -> None:
        """\\d, \\s, \\w are ASCII only; \\s has no vertical tab."""
        self.assertEqual(charclass.perl_class("d"), ((48, 57),))
        self.assertEqual(charclass.perl_class("s"), ((9, 10), (12, 13), (32, 32)))
        self.assertEqual(charclass.negate(charclass.perl_class("W")), charclass.perl_class("w"))

    def test_posix(self) -> None:
        """[:name:] and [:^name:]; unknown names are None."""
        self.assertEqual(charclass.posix_class("[:xdigit:]"), ((48, 57), (65, 70), (97, 102)))
        self.assertEqual(charclass.posix_class("[:^ascii:]"), ((128, charclass.MAX_RUNE),))
        self.assertIsNone(charclass.posix_class("[:nope:]"))

    def test_unicode(self) -> None:
        """General categories and Any; scripts are not known."""
        letters = charclass.unicode_class("L")
        assert letters is not None
        python = re.compile(charclass.to_python(letters))
        self.assertTrue(python.match("é") and not python.match("1"))
        self.assertEqual(charclass.unicode_class("Any"), charclass.ANY)
        self.assertIsNone(charclass.unicode_class("Greek"))


class SpellingTests(SynchronousTestCase):
    """The re source for a set."""

    def test_special(self) -> None:
        """Empty, full, single characters and negation."""
        self.assertIsNone(re.match(charclass.to_python(()), "a"))
        self.assertTrue(re.match(charclass.to_python((), negated=True), "\n"))
        self.assertTrue(re.match(charclass.to_python(charclass.ANY), "\n"))
        self.assertEqual(charclass.to_python(((46, 46),)), "\\.")
        self.assertEqual(charclass.to_python(((97, 99),), fold=True), "(?i:[a-c])")

    @given(
        st.lists(st.tuples(st.integers(0, 0x10FFFF), st.integers(0, 3)), max_size=4),
        st.integers(0, 0x10FFFF),
    )
    def test_membership(self, spans: list, code: int) -> None:
        """The re source matches exactly the code points in the ranges."""
        ranges = charclass.union([tuple((lo, min(lo + w, charclass.MAX_RUNE)) for lo, w in spans)])
        inside = any(lo <= code <= hi for lo, hi in ranges)
        compiled = re.compile(charclass.to_python(ranges))
        self.assertEqual(bool(compiled.match(chr(code))), inside)
