"""Go regexps with capture groups for the rewriting middlewares: search, ReplaceAllString, Expand.

Reuses the rules' Go-syntax parser (so Go's accepted syntax and errors hold) and keeps its
capture groups, which the rules drop; pure, no I/O.
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple

import attrs

from tsproxy.rules import dfa, regex, regex_syntax
from tsproxy.rules.regex_syntax import Alt, Concat, Node, RegexError, Repeat

__all__ = ["GoRegexp", "RegexError", "compile_go", "expand"]


@attrs.frozen
class Group:
    """A capturing group: its number (1-based, by opening parenthesis) and name ("" if none)."""

    index: int
    name: str
    body: Node


class _CaptureParser(regex_syntax._Parser):
    """The rules' parser, keeping capturing groups as `Group` nodes."""

    def __init__(self, pattern: str) -> None:
        super().__init__(pattern)
        self.open_captures: List[Optional[Tuple[int, str]]] = []
        self.group_names: List[str] = []

    def open_group(self) -> None:
        pattern, start = self.pattern, self.pos
        depth = len(self.frames)
        name: Optional[str] = None
        for opener in ("(?P<", "(?<"):
            if pattern.startswith(opener, start):
                end = pattern.find(">", start)
                name = pattern[start + len(opener) : end]
                break
        else:
            if not pattern.startswith("(?", start):
                name = ""
        super().open_group()
        if len(self.frames) > depth:
            if name is None:
                self.open_captures.append(None)
            else:
                self.group_names.append(name)
                self.open_captures.append((len(self.group_names), name))

    def close_group(self) -> None:
        info = self.open_captures.pop() if len(self.frames) > 1 else None
        super().close_group()
        if info is not None:
            items = self.frames[-1].items
            # A Group stands where the tree expects a Node; only this module walks it.
            items[-1] = Group(info[0], info[1], items[-1])  # type: ignore[call-overload]


def _quantifier(node: Repeat) -> str:
    if (node.min, node.max) == (0, -1):
        text = "*"
    elif (node.min, node.max) == (1, -1):
        text = "+"
    elif (node.min, node.max) == (0, 1):
        text = "?"
    elif node.max < 0:
        text = "{%d,}" % node.min
    elif node.min == node.max:
        text = "{%d}" % node.min
    else:
        text = "{%d,%d}" % (node.min, node.max)
    return text + ("" if node.greedy else "?")


def _to_python(node: object) -> str:
    """Python re source; capturing groups become plain numbered groups, in the same order."""
    if isinstance(node, Group):
        return "(%s)" % _to_python(node.body)
    if isinstance(node, Concat):
        return "".join(_to_python(item) for item in node.items)
    if isinstance(node, Alt):
        return "(?:%s)" % "|".join(_to_python(branch) for branch in node.branches)
    if isinstance(node, Repeat):
        return "(?:%s)" % _to_python(node.body) + _quantifier(node)
    return regex.to_python(node)  # type: ignore[arg-type]


@attrs.frozen
class GoRegexp:
    """A compiled Go regexp: leftmost-first search with submatches, as Go's regexp does.

    Python's backtracking gives the same leftmost-first matches as RE2. For patterns it could
    take exponential time on, a linear automaton first says whether there is a match at all,
    so a subject that does not match never reaches the backtracking engine.
    """

    pattern: str
    compiled: re.Pattern[str]
    names: Tuple[str, ...]  # group names by number - 1 ("" for unnamed)
    prefilter: Optional[regex.Search]

    def search(self, text: str) -> Optional[re.Match[str]]:
        """The leftmost-first match in text, or None."""
        if self.prefilter is not None and not self.prefilter(text):
            return None
        return self.compiled.search(text)

    def group_number(self, name: str) -> int:
        """The number of the first group called `name`, or -1."""
        for index, group_name in enumerate(self.names):
            if group_name == name:
                return index + 1
        return -1

    def replace_all(self, src: str, template: str) -> str:
        """Go's ReplaceAllString: every non-overlapping match replaced by Expand(template)."""
        out: List[str] = []
        last_end = 0
        pos = 0
        match = self.search(src)
        while match is not None:
            start, end = match.span()
            out.append(src[last_end:start])
            # An empty match right after another match is not replaced (Go's rule).
            if end > last_end or start == 0:
                out.append(expand(self, template, match))
            last_end = end
            pos = pos + 1 if pos + 1 > end else end
            if pos > len(src):
                break
            match = self.compiled.search(src, pos)
        out.append(src[last_end:])
        return "".join(out)


def compile_go(pattern: str) -> GoRegexp:
    """Compile a Go (RE2) pattern; raise RegexError with Go's message where Go would refuse it."""
    plain = regex_syntax.parse(pattern)  # Go's acceptance rules and size limits
    parser = _CaptureParser(pattern)
    tree = parser.parse()
    prefilter = None if regex.backtrack_safe(plain) else dfa.compile_search(plain)
    return GoRegexp(pattern, re.compile(_to_python(tree)), tuple(parser.group_names), prefilter)


def _extract(text: str) -> Optional[Tuple[str, int, str]]:
    """Go's regexp extract: a $name or ${name} at the start of text as (name, number, rest)."""
    if not text:
        return None
    brace = text[0] == "{"
    if brace:
        text = text[1:]
    i = 0
    while i < len(text) and (text[i].isalpha() or text[i].isdigit() or text[i] == "_"):
        i += 1
    if i == 0:
        return None
    name = text[:i]
    if brace:
        if i >= len(text) or text[i] != "}":
            return None
        i += 1
    num = int(name) if name.isascii() and name.isdigit() and len(name) <= 8 else -1
    if len(name) > 1 and name[0] == "0":
        num = -1
    return name, num, text[i:]


def expand(compiled: GoRegexp, template: str, match: re.Match[str]) -> str:
    """Go's Regexp.Expand: $1, ${1}, $name, ${name}, $$; $1x means ${1x}; unknown = ""."""
    out: List[str] = []
    while template:
        before, dollar, after = template.partition("$")
        if not dollar:
            break
        out.append(before)
        template = after
        if template.startswith("$"):
            out.append("$")
            template = template[1:]
            continue
        extracted = _extract(template)
        if extracted is None:
            out.append("$")
            continue
        name, num, template = extracted
        if num < 0:
            num = compiled.group_number(name)
        if 0 <= num <= len(compiled.names):
            value = match.group(num)
            if value is not None:
                out.append(value)
    out.append(template)
    return "".join(out)
