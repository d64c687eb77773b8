"""Tests for tsproxy.rules.tree: spellings, argument checks, negation and required values."""

from __future__ import annotations

from typing import Any, FrozenSet, Optional

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.rules.parse import Call, RuleError, parse
from tsproxy.rules.tree import (
    Matcher,
    Syntax,
    build,
    leaves,
    normalize,
    required_values,
    spellings,
)


def constant(call: Call) -> Any:
    value = call.args[0] == "yes"
    return lambda subject: value


SYNTAX = Syntax(
    "test",
    {"PathPrefix": Matcher("PathPrefix", constant), "Pair": Matcher("Pair", constant, (2,))},
    {"old": "Old is gone"},
)


class SpellingTests(SynchronousTestCase):
    """Traefik accepts four spellings of each matcher name."""

    def test_spellings(self) -> None:
        """As declared, lower, upper and Title-of-lower."""
        self.assertEqual(
            spellings("PathPrefix"), ("PathPrefix", "pathprefix", "PATHPREFIX", "Pathprefix")
        )

    def test_resolve(self) -> None:
        """Other mixes are errors naming the valid spellings; foreign names get their hint."""
        for name in spellings("PathPrefix"):
            self.assertEqual(SYNTAX.resolve(Call(name, ("a",), 1, (2,))).name, "PathPrefix")
        with self.assertRaises(RuleError) as caught:
            SYNTAX.resolve(Call("pathPrefix", (), 3, ()))
        self.assertEqual(caught.exception.column, 3)
        self.assertIn("Pathprefix", caught.exception.message)
        with self.assertRaises(RuleError) as caught:
            SYNTAX.resolve(Call("OLD", (), 1, ()))
        self.assertEqual(caught.exception.message, "Old is gone")


class BuildTests(SynchronousTestCase):
    """Turning trees into predicates."""

    def test_booleanLogic(self) -> None:
        """&&, || and ! combine leaf results."""
        cases = {
            "PathPrefix(`yes`) && !PathPrefix(`no`)": True,
            "PathPrefix(`no`) || PathPrefix(`no`) || PathPrefix(`yes`)": True,
            "!(PathPrefix(`yes`) && PathPrefix(`yes`) && PathPrefix(`no`))": True,
            "PathPrefix(`yes`) && PathPrefix(`no`)": False,
        }
        for text, expected in cases.items():
            self.assertEqual(build(parse(text), SYNTAX)(None), expected, text)

    def test_argumentChecks(self) -> None:
        """No argument, an empty one, or the wrong count: RuleError at the right column."""
        for text, column in (("PathPrefix()", 1), ("PathPrefix(`a`, ``)", 17), ("Pair(`a`)", 1)):
            with self.assertRaises(RuleError) as caught:
                build(parse(text), SYNTAX)
            self.assertEqual(caught.exception.column, column, text)


def hosts(call: Call) -> Optional[FrozenSet[str]]:
    return frozenset(call.args) if call.name == "H" else None


class NormalizeTests(SynchronousTestCase):
    """De Morgan and the values a rule requires."""

    def test_deMorgan(self) -> None:
        """Negations end up on leaves only."""
        node = normalize(parse("!(H(`a`) && !(P(`b`) || H(`c`)))"))
        self.assertEqual(type(node).__name__, "Or")
        kinds = [type(operand).__name__ for operand in node.operands]  # type: ignore[union-attr]
        self.assertEqual(kinds, ["Not", "Or"])

    def test_requiredValues(self) -> None:
        """And takes the smallest known set, Or needs every branch, Not gives nothing."""
        cases = {
            "H(`a`, `b`) && H(`c`)": {"c"},
            "H(`a`) || H(`b`)": {"a", "b"},
            "H(`a`) || P(`x`)": None,
            "!H(`a`)": None,
            "!!H(`a`)": {"a"},
            "P(`x`) && (H(`a`) || H(`b`))": {"a", "b"},
        }
        for text, expected in cases.items():
            found = required_values(normalize(parse(text)), hosts)
            self.assertEqual(found, None if expected is None else frozenset(expected), text)

    def test_leaves(self) -> None:
        """Leaves come left to right."""
        self.assertEqual(
            [c.args for c in leaves(parse("!(H(`a`) || P(`b`)) && H(`c`)"))],
            [("a",), ("b",), ("c",)],
        )
