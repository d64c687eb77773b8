"""Tests for tsproxy.rules.parse: Go's lexical rules, precedence and located errors."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.rules.parse import And, Call, Node, Not, RuleError, parse


def call(name: str, *args: str) -> Any:
    """A Call pattern for comparisons that ignore columns."""
    return (name, args)


def shape(node: Node) -> Any:
    """The tree without columns."""
    if isinstance(node, Call):
        return (node.name, node.args)
    if isinstance(node, Not):
        return ("!", shape(node.operand))
    return ("&&" if isinstance(node, And) else "||", tuple(shape(n) for n in node.operands))


class GrammarTests(SynchronousTestCase):
    """Operators, precedence and parentheses."""

    def test_andBindsTighter(self) -> None:
        """A || B && C parses as A || (B && C)."""
        self.assertEqual(
            shape(parse("A(`a`) || B(`b`) && C(`c`)")),
            ("||", (call("A", "a"), ("&&", (call("B", "b"), call("C", "c"))))),
        )

    def test_notAndParentheses(self) -> None:
        """! applies to the next operand; parentheses group."""
        self.assertEqual(
            shape(parse("!(A(`a`) || !B(`b`))")),
            ("!", ("||", (call("A", "a"), ("!", call("B", "b"))))),
        )

    def test_arguments(self) -> None:
        """Any number of arguments, a trailing comma allowed as in Go calls."""
        self.assertEqual(shape(parse("M()")), call("M"))
        self.assertEqual(shape(parse('M(`a`, "b",)')), call("M", "a", "b"))

    def test_columns(self) -> None:
        """Calls and arguments remember their 1-based columns."""
        node = parse("  Host( `a` ,`b`)")
        self.assertIsInstance(node, Call)
        self.assertEqual((node.column, node.arg_columns), (3, (9, 14)))  # type: ignore[union-attr]


class StringTests(SynchronousTestCase):
    """Backquoted and double-quoted string literals."""

    def test_rawStrings(self) -> None:
        """Backquotes take text as is (newlines included), dropping carriage returns."""
        self.assertEqual(shape(parse("M(`a\\n\r\nb`)")), call("M", "a\\n\nb"))

    def test_goEscapes(self) -> None:
        """Double quotes decode Go escapes, including bytes that form UTF-8."""
        text = 'M("\\"\\\\\\n\\t\\x41\\u00e9\\U0001F600\\101\\303\\251")'
        self.assertEqual(shape(parse(text)), call("M", '"\\\n\tAé\U0001f600Aé'))

    def test_badEscapes(self) -> None:
        """Unknown escapes, short hex, octal above 255, surrogates and \\' are errors."""
        for bad in ('M("\\q")', 'M("\\x4")', 'M("\\400")', 'M("\\ud800")', 'M("\\\'")'):
            self.assertRaises(RuleError, parse, bad)

    def test_unterminated(self) -> None:
        """An unterminated string names the column where it starts."""
        for text, column in (("M(`abc", 3), ('M("a\nb")', 3)):
            with self.assertRaises(RuleError) as caught:
                parse(text)
            self.assertEqual(caught.exception.column, column)


class NewlineTests(SynchronousTestCase):
    """Go's automatic semicolons: where a line break may go."""

    def test_afterOperator(self) -> None:
        """A line break after an operator, '(' or ',' is whitespace."""
        parse("A(`a`) &&\n  B(\n`b`,\n)")

    def test_trailingNewlines(self) -> None:
        """Trailing line breaks and blanks after a complete rule are fine."""
        parse("A(`a`)\n")
        parse("A(`a`)\n\n  \n")

    def test_operatorStartingALine(self) -> None:
        """A line that starts with && after a complete term is an error at the &&."""
        with self.assertRaises(RuleError) as caught:
            parse("A(`a`)\n&& B(`b`)")
        self.assertEqual(caught.exception.column, 8)

    def test_breakInsideCall(self) -> None:
        """A line break right after an argument or a name ends the statement: error."""
        for text in ("A(`a`\n)", "A\n(`a`)", "(A(`a`)\n)"):
            self.assertRaises(RuleError, parse, text)


class ErrorTests(SynchronousTestCase):
    """What the errors say and where."""

    def test_message(self) -> None:
        """str(RuleError) is 'column N: message', or the message alone without a column."""
        with self.assertRaises(RuleError) as caught:
            parse("Host(`example.com`")
        self.assertEqual(str(caught.exception), "column 19: expected ')' after argument")
        self.assertEqual(str(RuleError("no column")), "no column")

    def test_located(self) -> None:
        """Each grammar error points at the offending token."""
        cases = {
            "": 1,
            "A(`a`) B(`b`)": 8,
            "A(`a`) == B(`b`)": 8,
            "A(`a`) and B(`b`)": 8,
            "A(1)": 3,
            "A('a')": 3,
            "A(`a` `b`)": 7,
            "(A(`a`)": 8,
            "A(`a`))": 7,
            "`a`": 1,
            "A(`a`) &&": 10,
            "A(`a`) ¤": 8,
        }
        for text, column in cases.items():
            with self.assertRaises(RuleError) as caught:
                parse(text)
            self.assertEqual(caught.exception.column, column, text)


NAMES = st.sampled_from(["Host", "PathPrefix", "m", "HOST"])
# Go string literals hold Unicode scalar values only: a lone surrogate cannot be written in one.
VALUES = st.text(
    st.characters(blacklist_characters="`\r", blacklist_categories=("Cs",)), max_size=6
)


@st.composite
def trees(draw: Any, depth: int = 3) -> Any:
    if depth == 0 or draw(st.booleans()):
        return ("call", draw(NAMES), tuple(draw(st.lists(VALUES, max_size=3))))
    kind = draw(st.sampled_from(["!", "&&", "||"]))
    if kind == "!":
        return ("!", draw(trees(depth - 1)))
    return (kind, tuple(draw(st.lists(trees(depth - 1), min_size=2, max_size=3))))


def render(tree: Any, draw: Any) -> str:
    """Rule text for a tree, parenthesising every operator node, with random blanks."""
    blank = draw(st.sampled_from(["", " ", "\t", "  "]))
    if tree[0] == "call":
        quoted = []
        for value in tree[2]:
            if draw(st.booleans()):
                quoted.append("`%s`" % value)
            else:
                escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                quoted.append('"%s"' % escaped)
        return "%s(%s%s)" % (tree[1], blank, ("," + blank).join(quoted))
    if tree[0] == "!":
        return "!" + blank + render(tree[1], draw)
    joiner = blank + tree[0] + draw(st.sampled_from([" ", "\n", " \n\t"]))
    return "(" + joiner.join(render(item, draw) for item in tree[1]) + ")"


def expected_shape(tree: Any) -> Any:
    if tree[0] == "call":
        return (tree[1], tree[2])
    if tree[0] == "!":
        return ("!", expected_shape(tree[1]))
    return (tree[0], tuple(expected_shape(item) for item in tree[1]))


class ParseAnyTextTests(SynchronousTestCase):
    """parse on generated and arbitrary text."""

    @settings(max_examples=300, deadline=None)
    @given(trees(), st.data())
    def test_roundTrip(self, tree: Any, data: Any) -> None:
        """Rendering a tree to text (either quoting, blanks, breaks after operators) parses back."""
        self.assertEqual(shape(parse(render(tree, data.draw))), expected_shape(tree))

    @settings(max_examples=500, deadline=None)
    @given(st.text(st.sampled_from(list("Ab(`)\"\\!&|, \n\t'1=x")), max_size=30) | st.text())
    def test_treeOrRuleError(self, text: str) -> None:
        """Any text parses to a tree or raises RuleError with a column inside the text."""
        try:
            parse(text)
        except RuleError as err:
            self.assertIsNotNone(err.column)
            self.assertTrue(1 <= err.column <= len(text) + 1)  # type: ignore[operator]
