"""Character sets for the Go regex parser: code point ranges, Go's named classes, ``re`` spelling.

Only set arithmetic and tables (Perl, POSIX, Unicode categories); it must not parse patterns.
"""

from __future__ import annotations

import sys
import unicodedata
from typing import Any, Dict, Iterable, List, Optional, Tuple

Ranges = Tuple[Tuple[int, int], ...]

MAX_RUNE = sys.maxunicode
ANY: Ranges = ((0, MAX_RUNE),)
ANY_BUT_NEWLINE: Ranges = ((0, 9), (11, MAX_RUNE))


def union(pieces: Iterable[Ranges]) -> Ranges:
    """Sorted, merged union of range lists."""
    flat = sorted(r for piece in pieces for r in piece)
    merged: List[Tuple[int, int]] = []
    for low, high in flat:
        if merged and low <= merged[-1][1] + 1:
            if high > merged[-1][1]:
                merged[-1] = (merged[-1][0], high)
        else:
            merged.append((low, high))
    return tuple(merged)


def negate(ranges: Ranges) -> Ranges:
    """The complement within all code points."""
    out: List[Tuple[int, int]] = []
    next_low = 0
    for low, high in union([ranges]):
        if low > next_low:
            out.append((next_low, low - 1))
        next_low = high + 1
    if next_low <= MAX_RUNE:
        out.append((next_low, MAX_RUNE))
    return tuple(out)


def _chars(text: str) -> Ranges:
    """Ranges from a compact spec such as "09AZaz__" (pairs of inclusive bounds)."""
    return union([tuple((ord(text[i]), ord(text[i + 1])) for i in range(0, len(text), 2))])


_PERL = {
    "d": _chars("09"),
    "s": union([_chars("\t\n"), _chars("\f\r"), _chars("  ")]),
    "w": _chars("09AZaz__"),
}

_POSIX = {
    "alnum": _chars("09AZaz"),
    "alpha": _chars("AZaz"),
    "ascii": ((0, 0x7F),),
    "blank": _chars("\t\t  "),
    "cntrl": ((0, 0x1F), (0x7F, 0x7F)),
    "digit": _chars("09"),
    "graph": _chars("!~"),
    "lower": _chars("az"),
    "print": _chars(" ~"),
    "punct": _chars("!/:@[`{~"),
    "space": union([_chars("\t\r"), _chars("  ")]),
    "upper": _chars("AZ"),
    "word": _chars("09AZaz__"),
    "xdigit": _chars("09AFaf"),
}


def perl_class(letter: str) -> Ranges:
    """``\\d \\s \\w`` (ASCII only, as in Go) and their upper-case complements."""
    ranges = _PERL[letter.lower()]
    return negate(ranges) if letter.isupper() else ranges


def posix_class(name: str) -> Optional[Ranges]:
    """``[:alpha:]`` or ``[:^alpha:]``; None for an unknown name."""
    inner = name[2:-2]
    negated = inner.startswith("^")
    ranges = _POSIX.get(inner[1:] if negated else inner)
    if ranges is None:
        return None
    return negate(ranges) if negated else ranges


_categories: Dict[str, Ranges] = {}


def _load_categories() -> None:
    """Ranges per Unicode general category, from the running Python's tables."""
    found: Dict[str, List[Tuple[int, int]]] = {}
    category = unicodedata.category
    previous = None
    start = 0
    for code in range(MAX_RUNE + 1):
        current = category(chr(code))
        if current != previous:
            if previous is not None:
                found.setdefault(previous, []).append((start, code - 1))
            previous, start = current, code
    found.setdefault(previous or "Cn", []).append((start, MAX_RUNE))
    for name, ranges in found.items():
        _categories[name] = tuple(ranges)
    for major in "CLMNPSZ":
        _categories[major] = union(tuple(r) for name, r in found.items() if name[0] == major)


def unicode_class(name: str) -> Optional[Ranges]:
    """``\\p{Name}`` for Any and the general categories (L, Lu, Nd, ...); None otherwise."""
    if name == "Any":
        return ANY
    if len(name) not in (1, 2) or not name.isascii() or not name[:1].isupper():
        return None
    if not _categories:
        _load_categories()
    ranges = _categories.get(name)
    if ranges is None and name in ("Lc", "LC"):
        return None
    return ranges


def has_case(ch: str) -> bool:
    """Whether (?i) can make this character match another one."""
    return ch.lower() != ch or ch.upper() != ch or ch.casefold() != ch


def _has_cased(ranges: Ranges) -> bool:
    for low, high in ranges:
        if high >= 0x80 or (low <= ord("z") and high >= ord("A")):
            return True
    return False


def disjoint(first: Any, second: Any) -> bool:
    """Whether two Chars nodes can never match the same character (conservative)."""
    a = negate(first.ranges) if first.negated else first.ranges
    b = negate(second.ranges) if second.negated else second.ranges
    if (first.fold or second.fold) and (_has_cased(a) or _has_cased(b)):
        return False
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][1] < b[j][0]:
            i += 1
        elif b[j][1] < a[i][0]:
            j += 1
        else:
            return False
    return True


def _escape(code: int) -> str:
    ch = chr(code)
    if ch.isascii() and (ch.isalnum() or ch == "_"):
        return ch
    if 0x20 < code < 0x7F:
        return "\\" + ch
    if code <= 0xFFFF:
        return "\\u%04x" % code
    return "\\U%08x" % code


def to_python(ranges: Ranges, negated: bool = False, fold: bool = False) -> str:
    """Python ``re`` source matching one character of the set."""
    if not ranges:
        source = "(?s:.)" if negated else "(?!)"
    elif ranges == ANY and not negated:
        source = "(?s:.)"
    elif len(ranges) == 1 and ranges[0][0] == ranges[0][1] and not negated:
        source = _escape(ranges[0][0])
    else:
        parts = []
        for low, high in ranges:
            if low == high:
                parts.append(_escape(low))
            elif high == low + 1:
                parts.append(_escape(low) + _escape(high))
            else:
                parts.append("%s-%s" % (_escape(low), _escape(high)))
        source = "[%s%s]" % ("^" if negated else "", "".join(parts))
    return "(?i:%s)" % source if fold else source
