"""Tests for tsproxy.rules.templates: gorilla/mux route templates as Go regexes."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.rules.regex import RegexError, compile_search
from tsproxy.rules.templates import HOST, PATH, PREFIX, QUERY, brace_indices, quote_meta, to_regex


class TemplateTests(SynchronousTestCase):
    """How each kind of template becomes a regex."""

    def test_quoteMeta(self) -> None:
        """Go's QuoteMeta escapes regex metacharacters only."""
        self.assertEqual(quote_meta("a.b*c{d}-/"), "a\\.b\\*c\\{d\\}-/")

    def test_kinds(self) -> None:
        """Default variable patterns and anchoring differ by kind."""
        self.assertEqual(to_regex("/u/{id}", PATH), ("^/u/(?P<v0>[^/]+)$", ["[^/]+"]))
        self.assertEqual(to_regex("/u/{id:[0-9]+}", PREFIX)[0], "^/u/(?P<v0>[0-9]+)")
        self.assertEqual(to_regex("{s}.a.com", HOST, True)[0], "(?i)^(?P<v0>[^.]+)\\.a\\.com$")
        self.assertEqual(to_regex("k=", QUERY)[0], "^k=.*$")

    def test_nestedBraces(self) -> None:
        """Braces inside a variable's pattern belong to it."""
        self.assertEqual(brace_indices("/{a:x{2}}/{b}"), [1, 9, 10, 13])
        self.assertTrue(compile_search(to_regex("/{a:x{2}}", PATH)[0])("/xx"))

    def test_errors(self) -> None:
        """Unbalanced braces and empty names or patterns are errors."""
        for template in ("{a", "a}", "{:x}", "{a:}", "}{"):
            self.assertRaises(RegexError, to_regex, template, PATH)
