"""gorilla/mux route templates (``/users/{id}``, ``{sub:[a-z]+}.example.com``) as Go regexes.

For the v2 syntax's Path, PathPrefix, HostRegexp, Query, HostSNIRegexp; it compiles nothing.
"""

from __future__ import annotations

from typing import List, Tuple

from tsproxy.rules.regex_syntax import RegexError

HOST, PATH, PREFIX, QUERY = "host", "path", "prefix", "query"
_DEFAULT_PATTERN = {HOST: "[^.]+", PATH: "[^/]+", PREFIX: "[^/]+", QUERY: ".*"}
# Go's regexp.QuoteMeta escapes exactly these.
_META = frozenset("\\.+*?()|[]{}^$")


def quote_meta(text: str) -> str:
    """Go's regexp.QuoteMeta."""
    return "".join("\\" + ch if ch in _META else ch for ch in text)


def brace_indices(template: str) -> List[int]:
    """Start and end+1 of each top-level ``{...}``; RegexError when braces are unbalanced."""
    level = 0
    start = 0
    found: List[int] = []
    for i, ch in enumerate(template):
        if ch == "{":
            level += 1
            if level == 1:
                start = i
        elif ch == "}":
            level -= 1
            if level == 0:
                found += [start, i + 1]
            elif level < 0:
                raise RegexError("mux: unbalanced braces in %r" % template, i)
    if level != 0:
        raise RegexError("mux: unbalanced braces in %r" % template, len(template))
    return found


def to_regex(template: str, kind: str, case_insensitive: bool = False) -> Tuple[str, List[str]]:
    """The Go regex for a template, and each variable's own pattern (gorilla checks both).

    Literal text is quoted; ``{name}`` takes the kind's default pattern; the result is
    anchored at both ends, except a path prefix, which is anchored at the start only.
    """
    indices = brace_indices(template)
    default = _DEFAULT_PATTERN[kind]
    parts = ["(?i)" if case_insensitive else "", "^"]
    variables: List[str] = []
    end = 0
    for i in range(0, len(indices), 2):
        raw = template[end : indices[i]]
        end = indices[i + 1]
        name, colon, pattern = template[indices[i] + 1 : end - 1].partition(":")
        if not colon:
            pattern = default
        if not name or not pattern:
            raise RegexError(
                "mux: missing name or pattern in %r" % template[indices[i] : end], indices[i]
            )
        parts.append("%s(?P<v%d>%s)" % (quote_meta(raw), i // 2, pattern))
        variables.append(pattern)
    parts.append(quote_meta(template[end:]))
    if kind == QUERY and template.partition("=")[2] == "":
        parts.append(default)
    if kind != PREFIX:
        parts.append("$")
    return "".join(parts), variables
