"""Go's regexp/syntax for rule matchers: parse a pattern into a tree or say why Go refuses it.

What RE2 lacks (backreferences, lookaround, ...) is a RegexError; it must not match anything.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import attrs

from tsproxy.rules import charclass
from tsproxy.rules.charclass import Ranges
from tsproxy.rules.regex_tree import (
    EMPTY,
    MAX_DEPTH,
    MAX_REPEAT,
    MAX_SIZE,
    Alt,
    Assert,
    Chars,
    Concat,
    Node,
    RegexError,
    Repeat,
    depth,
    repeat_is_valid,
    size,
)

__all__ = [
    "EMPTY",
    "MAX_DEPTH",
    "MAX_REPEAT",
    "MAX_SIZE",
    "Alt",
    "Assert",
    "Chars",
    "Concat",
    "Node",
    "RegexError",
    "Repeat",
    "parse",
    "size",
]


_UNSUPPORTED_GROUPS = (
    ("(?=", "lookahead (?=...) is not supported by RE2"),
    ("(?!", "negative lookahead (?!...) is not supported by RE2"),
    ("(?<=", "lookbehind (?<=...) is not supported by RE2"),
    ("(?<!", "negative lookbehind (?<!...) is not supported by RE2"),
    ("(?>", "atomic groups (?>...) are not supported by RE2"),
    ("(?#", "comments (?#...) are not supported by RE2"),
    ("(?(", "conditionals (?(...)...) are not supported by RE2"),
    ("(?P=", "backreferences (?P=name) are not supported by RE2"),
    ("(?P>", "recursion (?P>name) is not supported by RE2"),
    ("(?R", "recursion (?R) is not supported by RE2"),
)
_FLAG_LETTERS = "imsU"


@attrs.define
class _Frame:
    """An open group: its finished alternatives, the current one, and flags to restore."""

    start: int
    saved_flags: str
    branches: List[Node] = attrs.field(factory=list)
    items: List[Node] = attrs.field(factory=list)


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.pos = 0
        self.flags = ""  # subset of "imsU"
        self.names: set = set()
        self.frames = [_Frame(0, "")]
        self.last_was_repeat = False

    def error(self, message: str, offset: Optional[int] = None) -> RegexError:
        return RegexError(message, self.pos if offset is None else offset)

    # -- main loop ---------------------------------------------------------------------

    def parse(self) -> Node:
        pattern = self.pattern
        while self.pos < len(pattern):
            ch = pattern[self.pos]
            was_repeat = False
            if ch == "(":
                self.open_group()
            elif ch == ")":
                self.close_group()
            elif ch == "|":
                frame = self.frames[-1]
                frame.branches.append(_concat(frame.items))
                frame.items = []
                self.pos += 1
            elif ch == "^":
                self.push(Assert("bol" if "m" in self.flags else "bot"))
                self.pos += 1
            elif ch == "$":
                self.push(Assert("eol" if "m" in self.flags else "eot"))
                self.pos += 1
            elif ch == ".":
                ranges = charclass.ANY if "s" in self.flags else charclass.ANY_BUT_NEWLINE
                self.push(Chars(ranges))
                self.pos += 1
            elif ch == "[":
                self.push(self.parse_class())
            elif ch in "*+?":
                start = self.pos
                self.pos += 1
                low, high = {"*": (0, -1), "+": (1, -1), "?": (0, 1)}[ch]
                self.repeat(low, high, start, counted=False)
                was_repeat = True
            elif ch == "{":
                counted = self.parse_counted()
                if counted is None:
                    self.push_literal("{")
                    self.pos += 1
                else:
                    start, low, high = counted
                    self.repeat(low, high, start, counted=True)
                    was_repeat = True
            elif ch == "\\":
                self.parse_escape()
            else:
                self.push_literal(ch)
                self.pos += 1
            self.last_was_repeat = was_repeat
        if len(self.frames) > 1:
            raise self.error("missing closing ): `%s`" % pattern, self.frames[-1].start)
        frame = self.frames[0]
        frame.branches.append(_concat(frame.items))
        return _alt(frame.branches)

    def push(self, node: Node) -> None:
        self.frames[-1].items.append(node)

    def push_literal(self, ch: str) -> None:
        self.push(Chars(((ord(ch), ord(ch)),), fold="i" in self.flags and charclass.has_case(ch)))

    # -- groups and flags --------------------------------------------------------------

    def open_group(self) -> None:
        pattern = self.pattern
        start = self.pos
        if len(self.frames) >= MAX_DEPTH:
            raise self.error("expression nests too deeply")
        for prefix, message in _UNSUPPORTED_GROUPS:
            if pattern.startswith(prefix, start):
                raise self.error(message)
        named = None
        if pattern.startswith("(?P<", start):
            named = start + 4
        elif pattern.startswith("(?<", start):
            named = start + 3
        if named is not None:
            end = pattern.find(">", named)
            name = pattern[named:end] if end >= 0 else ""
            if (
                end < 0
                or not name
                or not all(c.isascii() and (c.isalnum() or c == "_") for c in name)
            ):
                raise self.error("invalid named capture: `%s`" % pattern[start : end + 1])
            if name in self.names:
                raise self.error("duplicate capture group name: `%s`" % name)
            self.names.add(name)
            self.frames.append(_Frame(start, self.flags))
            self.pos = end + 1
            return
        if not pattern.startswith("(?", start):
            self.frames.append(_Frame(start, self.flags))
            self.pos = start + 1
            return
        self.parse_flags(start)

    def parse_flags(self, start: int) -> None:
        """``(?flags)`` or ``(?flags:``, with Go's rules for '-' and empty flag sets."""
        pattern = self.pattern
        flags = set(self.flags)
        negate = False
        saw_flag = False
        i = start + 2
        while i < len(pattern):
            c = pattern[i]
            if c in _FLAG_LETTERS:
                (flags.discard if negate else flags.add)(c)
                saw_flag = True
            elif c == "-" and not negate:
                negate = True
                saw_flag = False
            elif c in ":)":
                if negate and not saw_flag:
                    break
                new_flags = "".join(sorted(flags))
                if c == ":":
                    self.frames.append(_Frame(start, self.flags))
                self.flags = new_flags
                self.pos = i + 1
                return
            else:
                break
            i += 1
        raise self.error("invalid or unsupported Perl syntax: `%s`" % pattern[start : i + 1], start)

    def close_group(self) -> None:
        if len(self.frames) == 1:
            raise self.error("unexpected ): `%s`" % self.pattern)
        frame = self.frames.pop()
        frame.branches.append(_concat(frame.items))
        self.flags = frame.saved_flags
        self.push(_alt(frame.branches))
        self.pos += 1

    # -- repetition --------------------------------------------------------------------

    def parse_counted(self) -> Optional[Tuple[int, int, int]]:
        """``{n}``, ``{n,}``, ``{n,m}`` at pos as (start, min, max), or None if ``{`` is literal."""
        pattern = self.pattern
        start = self.pos
        low, i = _parse_int(pattern, start + 1)
        if low is None:
            return None
        high = low
        if i < len(pattern) and pattern[i] == ",":
            i += 1
            if i < len(pattern) and pattern[i] == "}":
                high = -1
            else:
                parsed, i = _parse_int(pattern, i)
                if parsed is None:
                    return None
                high = parsed
        if i >= len(pattern) or pattern[i] != "}":
            return None
        self.pos = i + 1
        if low > MAX_REPEAT or high > MAX_REPEAT or (high >= 0 and low > high):
            raise self.error("invalid repeat count: `%s`" % pattern[start : i + 1], start)
        return start, low, high

    def repeat(self, low: int, high: int, start: int, counted: bool) -> None:
        greedy = "U" not in self.flags
        if self.pos < len(self.pattern) and self.pattern[self.pos] == "?":
            self.pos += 1
            greedy = not greedy
        operator = self.pattern[start : self.pos]
        if self.last_was_repeat:
            raise self.error("invalid nested repetition operator: `%s`" % operator, start)
        items = self.frames[-1].items
        if not items:
            raise self.error("missing argument to repetition operator: `%s`" % operator, start)
        node = Repeat(items[-1], low, high, greedy, counted)
        if counted and (low >= 2 or high >= 2) and not repeat_is_valid(node, MAX_REPEAT):
            raise self.error("invalid repeat count: `%s`" % operator, start)
        if depth(node) >= MAX_DEPTH:
            raise self.error("expression nests too deeply", start)
        items[-1] = node

    # -- escapes -----------------------------------------------------------------------

    def parse_escape(self) -> None:
        pattern = self.pattern
        start = self.pos
        if start + 1 >= len(pattern):
            raise self.error("trailing backslash at end of expression")
        c = pattern[start + 1]
        simple = {"A": "bot", "z": "eot", "b": "wordb", "B": "nwordb"}
        if c in simple:
            self.push(Assert(simple[c]))
            self.pos = start + 2
            return
        if c == "Q":
            end = pattern.find("\\E", start + 2)
            text = pattern[start + 2 :] if end < 0 else pattern[start + 2 : end]
            for ch in text:
                self.push_literal(ch)
            self.pos = len(pattern) if end < 0 else end + 2
            return
        if c in "pP":
            ranges, self.pos = self.parse_unicode_class(start)
            self.push(Chars(ranges, fold="i" in self.flags))
            return
        if c in "dDsSwW":
            self.pos = start + 2
            self.push(Chars(charclass.perl_class(c), fold="i" in self.flags))
            return
        code, self.pos = self.parse_char_escape(start)
        self.push_literal(chr(code))

    def parse_char_escape(self, start: int) -> Tuple[int, int]:
        """A single-character escape at start (a backslash): (code point, next index)."""
        pattern = self.pattern
        c = pattern[start + 1] if start + 1 < len(pattern) else ""
        if not c:
            raise self.error("trailing backslash at end of expression", start)
        if c.isascii() and not c.isalnum():
            return ord(c), start + 2
        if c in "1234567" and not (start + 2 < len(pattern) and pattern[start + 2] in "01234567"):
            raise self.error(
                "invalid escape sequence: `\\%s` (backreferences are not supported by RE2)" % c,
                start,
            )
        if c in "01234567":
            end = start + 2
            while end < len(pattern) and end < start + 4 and pattern[end] in "01234567":
                end += 1
            return int(pattern[start + 1 : end], 8), end
        if c == "x":
            return self.parse_hex_escape(start)
        controls = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}
        if c in controls:
            return controls[c], start + 2
        raise self.error("invalid escape sequence: `\\%s`" % c, start)

    def parse_hex_escape(self, start: int) -> Tuple[int, int]:
        pattern = self.pattern
        i = start + 2
        if i < len(pattern) and pattern[i] == "{":
            end = pattern.find("}", i)
            digits = pattern[i + 1 : end] if end >= 0 else ""
            if end < 0 or not digits or not _is_hex(digits) or int(digits, 16) > 0x10FFFF:
                raise self.error("invalid escape sequence: `%s`" % pattern[start : end + 1], start)
            return int(digits, 16), end + 1
        digits = pattern[i : i + 2]
        if len(digits) != 2 or not _is_hex(digits):
            raise self.error("invalid escape sequence: `%s`" % pattern[start : i + 2], start)
        return int(digits, 16), i + 2

    def parse_unicode_class(self, start: int) -> Tuple[Ranges, int]:
        pattern = self.pattern
        negate = pattern[start + 1] == "P"
        i = start + 2
        if i >= len(pattern):
            raise self.error("invalid character class range: `%s`" % pattern[start:], start)
        if pattern[i] == "{":
            end = pattern.find("}", i)
            if end < 0:
                raise self.error("invalid character class range: `%s`" % pattern[start:], start)
            name = pattern[i + 1 : end]
            end += 1
        else:
            name = pattern[i]
            end = i + 1
        if name.startswith("^"):
            negate = not negate
            name = name[1:]
        ranges = charclass.unicode_class(name)
        if ranges is None:
            raise self.error(
                "invalid character class range: `%s` (tsproxy supports \\p{Any} and Unicode"
                " general categories such as \\pL, \\p{Lu}; not scripts)" % pattern[start:end],
                start,
            )
        return (charclass.negate(ranges) if negate else ranges), end

    # -- bracketed classes -------------------------------------------------------------

    def parse_class(self) -> Chars:
        pattern = self.pattern
        start = self.pos
        i = start + 1
        negated = i < len(pattern) and pattern[i] == "^"
        if negated:
            i += 1
        pieces: List[Ranges] = []
        first = True
        while True:
            if i >= len(pattern):
                raise self.error("missing closing ]: `%s`" % pattern[start:], start)
            c = pattern[i]
            if c == "]" and not first:
                break
            first = False
            if pattern.startswith("[:", i):
                close = pattern.find(":]", i + 2)
                if close >= 0:
                    name = pattern[i : close + 2]
                    ranges = charclass.posix_class(name)
                    if ranges is None:
                        raise self.error("invalid character class range: `%s`" % name, i)
                    pieces.append(ranges)
                    i = close + 2
                    continue
            if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "pP":
                self.pos = i
                ranges, i = self.parse_unicode_class(i)
                pieces.append(ranges)
                continue
            if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "dDsSwW":
                pieces.append(charclass.perl_class(pattern[i + 1]))
                i += 2
                continue
            low, i = self.parse_class_char(i, start)
            high = low
            if i + 1 < len(pattern) and pattern[i] == "-" and pattern[i + 1] != "]":
                range_start = i
                high, i = self.parse_class_char(i + 1, start)
                if high < low:
                    raise self.error(
                        "invalid character class range: `%s`" % pattern[range_start - 1 : i],
                        range_start,
                    )
            pieces.append(((low, high),))
        self.pos = i + 1
        ranges = charclass.union(pieces)
        fold = "i" in self.flags
        return Chars(ranges, negated=negated, fold=fold)

    def parse_class_char(self, i: int, class_start: int) -> Tuple[int, int]:
        pattern = self.pattern
        if i >= len(pattern):
            raise self.error("missing closing ]: `%s`" % pattern[class_start:], class_start)
        if pattern[i] == "\\":
            return self.parse_char_escape(i)
        return ord(pattern[i]), i + 1


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _parse_int(text: str, i: int) -> Tuple[Optional[int], int]:
    """Go's parser.parseInt: digits without a leading zero (too many digits: over any limit)."""
    end = i
    while end < len(text) and "0" <= text[end] <= "9":
        end += 1
    if end == i or (end - i >= 2 and text[i] == "0"):
        return None, i
    value = int(text[i:end]) if end - i <= 8 else 10**9
    return value, end


def _concat(items: List[Node]) -> Node:
    # Groups exist only for scoping; without captures their contents splice into the concat.
    flat: List[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, Concat) else (item,))
    return flat[0] if len(flat) == 1 else Concat(tuple(flat))


def _alt(branches: List[Node]) -> Node:
    return branches[0] if len(branches) == 1 else Alt(tuple(branches))


def parse(pattern: str) -> Node:
    """Parse a Go regular expression; raise RegexError where Go would reject it."""
    node = _Parser(pattern).parse()
    if size(node) > MAX_SIZE:
        raise RegexError("expression too large", 0)
    return node
