"""The tree Go's regexp/syntax parses a rule pattern into (``regex_syntax`` builds it), the
limits on it, and the walks over it; plain frozen values, no parsing here.
"""

from __future__ import annotations

from typing import Tuple, Union

import attrs

from tsproxy.rules.charclass import Ranges

# "regex" is the matching side: this module only reads patterns.
MAX_REPEAT = 1000  # Go's limit on a counted repetition
MAX_SIZE = 100_000  # instructions after expanding counted repetitions (Go: ~3M; ours is lower)
MAX_DEPTH = 200  # nesting; Go allows 1000, but our tree walks and re's compiler recurse


class RegexError(ValueError):
    """A pattern Go's regexp.Compile would reject (or that tsproxy cannot run)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message, offset)
        self.message = message
        self.offset = offset  # 0-based index in the pattern

    def __str__(self) -> str:
        return self.message


@attrs.frozen
class Chars:
    """One character out of a set (a literal is a one-element set); ``fold`` = (?i)."""

    ranges: Ranges
    negated: bool = False
    fold: bool = False


@attrs.frozen
class Assert:
    """An empty-width assertion: bot, eot, bol, eol, wordb, nwordb."""

    kind: str


@attrs.frozen
class Concat:
    items: Tuple[Node, ...]


@attrs.frozen
class Alt:
    branches: Tuple[Node, ...]


@attrs.frozen
class Repeat:
    body: Node
    min: int
    max: int  # -1 = unbounded
    greedy: bool = True
    counted: bool = False  # written {n,m}: Go limits the product of nested counts


Node = Union[Chars, Assert, Concat, Alt, Repeat]
EMPTY = Concat(())


def repeat_is_valid(node: Node, limit: int) -> bool:
    """Go's repeatIsValid: nested {n,m} counts may not multiply past the limit."""
    if isinstance(node, Repeat) and node.counted:
        count = node.max if node.max >= 0 else node.min
        if count == 0 and node.max == 0:
            return True
        if count > limit:
            return False
        if count > 0:
            limit //= count
    return all(repeat_is_valid(child, limit) for child in children(node))


def children(node: Node) -> Tuple[Node, ...]:
    if isinstance(node, Concat):
        return node.items
    if isinstance(node, Alt):
        return node.branches
    if isinstance(node, Repeat):
        return (node.body,)
    return ()


def depth(node: Node) -> int:
    """Nesting depth of the tree, walked iteratively (it is what the limit protects)."""
    deepest = 0
    stack = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children(current))
    return deepest


def size(node: Node) -> int:
    """Instructions a Thompson program would need, counted repetitions expanded."""
    if isinstance(node, (Chars, Assert)):
        return 1
    if isinstance(node, Concat):
        return sum(size(item) for item in node.items)
    if isinstance(node, Alt):
        return sum(size(branch) + 1 for branch in node.branches)
    copies = node.max if node.max >= 0 else max(node.min, 1)
    return size(node.body) * max(copies, 1) + 1
