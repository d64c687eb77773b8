"""Go regexp matching for rule matchers: Go's MatchString (an unanchored search) on a tree.

Trees ``re`` searches in linear time go to ``re``, others to ``dfa``; it must not parse text.
"""

from __future__ import annotations

import re
from typing import Callable, List, Tuple

from tsproxy.rules import charclass, dfa
from tsproxy.rules.regex_syntax import (
    Alt,
    Assert,
    Chars,
    Concat,
    Node,
    RegexError,
    Repeat,
    parse,
    size,
)

__all__ = ["RegexError", "Search", "backtrack_safe", "compile_search", "parse", "size", "to_python"]

# -- translation to Python's re --------------------------------------------------------

_WORD = "[0-9A-Za-z_]"
_ASSERTIONS = {
    "bot": r"\A",
    "eot": r"\Z",
    "bol": r"(?m:^)",
    "eol": r"(?m:$)",
    "wordb": "(?:(?<=%s)(?!%s)|(?<!%s)(?=%s))" % (_WORD, _WORD, _WORD, _WORD),
    "nwordb": "(?:(?<=%s)(?=%s)|(?<!%s)(?!%s))" % (_WORD, _WORD, _WORD, _WORD),
}


def to_python(node: Node) -> str:
    """Python ``re`` source with the same matches as the Go tree (no flags needed)."""
    if isinstance(node, Chars):
        return charclass.to_python(node.ranges, node.negated, node.fold)
    if isinstance(node, Assert):
        return _ASSERTIONS[node.kind]
    if isinstance(node, Concat):
        return "".join(to_python(item) for item in node.items)
    if isinstance(node, Alt):
        return "(?:%s)" % "|".join(to_python(branch) for branch in node.branches)
    body = "(?:%s)" % to_python(node.body)
    if (node.min, node.max) == (0, -1):
        quantifier = "*"
    elif (node.min, node.max) == (1, -1):
        quantifier = "+"
    elif (node.min, node.max) == (0, 1):
        quantifier = "?"
    elif node.max < 0:
        quantifier = "{%d,}" % node.min
    elif node.min == node.max:
        quantifier = "{%d}" % node.min
    else:
        quantifier = "{%d,%d}" % (node.min, node.max)
    return body + quantifier + ("" if node.greedy else "?")


# -- which trees backtracking cannot blow up on ------------------------------------------

MAX_CHOICES = 256


def _variable(node: Repeat) -> bool:
    return node.max != node.min


def _contains_variable(node: Node) -> bool:
    if isinstance(node, Repeat):
        return _variable(node) or _contains_variable(node.body)
    if isinstance(node, Concat):
        return any(_contains_variable(item) for item in node.items)
    if isinstance(node, Alt):
        return any(_contains_variable(branch) for branch in node.branches)
    return False


def _choices(node: Node) -> int:
    """How many ways a tree without variable repetitions can be tried at one position."""
    if isinstance(node, Concat):
        total = 1
        for item in node.items:
            total *= _choices(item)
        return total
    if isinstance(node, Alt):
        return sum(_choices(branch) for branch in node.branches)
    if isinstance(node, Repeat):
        return _choices(node.body) ** node.min
    return 1


def backtrack_safe(node: Node) -> bool:
    """Whether Python's ``re`` searches this tree in time linear in the subject.

    Conservative: a variable repetition must sit at the top level with a single character
    as its body (or be a ``?`` of a fixed tree, or a short bounded run). A repetition that
    ends the pattern never backtracks; one followed by a character it cannot match
    (``[0-9]+/``) fails in one pass, which is linear only when the pattern is anchored,
    because ``re`` restarts the search at every position. An anchored pattern may keep
    one repetition with neither property (``^/api/.*x``); the others go to the automaton.
    """
    items = node.items if isinstance(node, Concat) else (node,)
    anchored = bool(items) and items[0] == Assert("bot")
    unguarded = 0
    choices = 1
    for index, item in enumerate(items):
        following = items[index + 1] if index + 1 < len(items) else None
        if isinstance(item, Repeat) and _variable(item):
            if not isinstance(item.body, Chars):
                if item.max != 1 or _contains_variable(item.body):
                    return False
                choices *= 1 + _choices(item.body)
            elif following is None:
                continue
            elif 0 <= item.max <= item.min + 16:
                choices *= item.max - item.min + 1
            elif _guarded(item.body, following):
                if not anchored:
                    return False
            else:
                unguarded += 1
        elif _contains_variable(item):
            return False
        else:
            choices *= _choices(item)
        if choices > MAX_CHOICES:
            return False
    return unguarded <= (1 if anchored else 0)


def _guarded(body: Chars, following: Node) -> bool:
    """A repetition of body is followed by something body can never match."""
    if following == Assert("eot"):
        return True
    return isinstance(following, Chars) and charclass.disjoint(body, following)


Search = Callable[[str], bool]


def _literal(item: Node) -> str:
    """The character a Chars node stands for when it is one exact character, else ""."""
    if isinstance(item, Chars) and not item.negated and not item.fold and len(item.ranges) == 1:
        low, high = item.ranges[0]
        if low == high:
            return chr(low)
    return ""


def required_literal(node: Node) -> Tuple[str, bool]:
    """A literal every match contains, and whether it must start the subject.

    The literal right after a leading start-of-text anchor, else the longest run of
    plain characters in the top-level sequence; ("", False) when there is none.
    """
    items = node.items if isinstance(node, Concat) else (node,)
    if items and items[0] == Assert("bot"):
        prefix = []
        for item in items[1:]:
            char = _literal(item)
            if not char:
                break
            prefix.append(char)
        if prefix:
            return "".join(prefix), True
    best = ""
    run: List[str] = []
    for item in items:
        char = _literal(item)
        if char:
            run.append(char)
            continue
        best = max(best, "".join(run), key=len)
        run = []
    return max(best, "".join(run), key=len), False


def compile_search(pattern: str) -> Search:
    """A function telling whether the Go pattern matches anywhere in a string."""
    node = parse(pattern)
    if backtrack_safe(node):
        compiled = re.compile(to_python(node)).search
        search: Search = lambda text: compiled(text) is not None  # noqa: E731
    else:
        search = dfa.compile_search(node)
    # A cheap string test first: most subjects a rule sees do not match it, and PyPy's
    # JIT copes badly with many distinct patterns run in turn.
    literal, anchored = required_literal(node)
    if anchored:
        return lambda text: text.startswith(literal) and search(text)
    if len(literal) >= 2:
        return lambda text: literal in text and search(text)
    return search
