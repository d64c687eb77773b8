"""TOML loading into the same located values YAML gives (YAMLMap, YAMLList, Document).

``tomllib`` (Python 3.11+) or ``tomli`` parses; neither says where a value was written, so the
lines come from a light scan of the text: table headers (``[a.b]``, ``[[a.b]]``), ``key =``
lines and their dotted keys. A value the scan cannot place (an item of an inline array
spanning lines, say) gets the line of what holds it; the key path in every error is exact.
Pure: no file I/O.
"""

from __future__ import annotations

import re
import sys
from typing import Dict, List, Optional, Tuple

from tsproxy.config.errors import ConfigError
from tsproxy.config.yamlio import Document, YAMLList, YAMLMap

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 and PyPy 3.9
    import tomli as tomllib

__all__ = ["load_toml", "toml_lines"]

Path = Tuple[object, ...]
_HEADER = re.compile(r"^\s*(\[\[?)(.*?)\]\]?\s*(?:#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'))*)\s*="""
)
_PART = re.compile(r"""[A-Za-z0-9_-]+|"((?:[^"\\]|\\.)*)"|'([^']*)'""")
_AT_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def _parts(text: str) -> List[str]:
    parts = []
    for match in _PART.finditer(text):
        if match.group(1) is not None:
            parts.append(match.group(1).encode().decode("unicode_escape"))
        elif match.group(2) is not None:
            parts.append(match.group(2))
        else:
            parts.append(match.group(0))
    return parts


def toml_lines(text: str) -> Dict[Path, int]:
    """The 1-based line of every table, array-of-tables item and key the scan finds, by key
    path (array items by index)."""
    lines: Dict[Path, int] = {}
    counts: Dict[Path, int] = {}
    current: Path = ()
    in_string: Optional[str] = None
    for number, line in enumerate(text.splitlines(), 1):
        if in_string is not None:
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        header = _HEADER.match(line)
        if header is not None and not line.lstrip().startswith("[="):
            parts = _parts(header.group(2))
            concrete: List[object] = []
            for part in parts[:-1] if header.group(1) == "[[" else parts:
                concrete.append(part)
                count = counts.get(tuple(concrete))
                if count:
                    concrete.append(count - 1)
                lines.setdefault(tuple(concrete), number)
            if header.group(1) == "[[" and parts:
                key = tuple(concrete) + (parts[-1],)
                index = counts.get(key, 0)
                counts[key] = index + 1
                lines.setdefault(key, number)
                current = key + (index,)
            else:
                current = tuple(concrete)
            lines[current] = number
            continue
        assignment = _KEY.match(line)
        if assignment is None:
            continue
        path = current
        for part in _parts(assignment.group(1)):
            path = path + (part,)
            lines.setdefault(path, number)
        rest = line[assignment.end() :]
        for quote in ('"""', "'''"):
            if rest.count(quote) % 2 == 1:
                in_string = quote
    return lines


def _located(value: object, path: Path, line: int, lines: Dict[Path, int]) -> object:
    if isinstance(value, dict):
        mapping = YAMLMap()
        mapping.line = lines.get(path, line)
        mapping.key_lines = {}
        for key, item in value.items():
            key_line = lines.get(path + (key,), mapping.line)
            mapping[key] = _located(item, path + (key,), key_line, lines)
            mapping.key_lines[key] = key_line
        return mapping
    if isinstance(value, list):
        items = YAMLList()
        items.line = lines.get(path, line)
        items.item_lines = []
        for index, item in enumerate(value):
            item_line = lines.get(path + (index,), items.line)
            items.append(_located(item, path + (index,), item_line, lines))
            items.item_lines.append(item_line)
        return items
    return value


def load_toml(text: str, file: str) -> Tuple[Tuple[Document, ...], Tuple[ConfigError, ...]]:
    """Parse a TOML file into one located document (none when empty), or a located error."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _AT_LINE.search(message)
        line = int(found.group(1)) if found else 1
        message = _AT_LINE.sub("", message).strip()
        return (), (ConfigError(file, line, "", f"invalid TOML: {message}"),)
    except (ValueError, RecursionError) as exc:
        return (), (ConfigError(file, 1, "", f"invalid TOML: {exc}"),)
    if not data:
        return (), ()
    return (Document(0, 1, _located(data, (), 1, toml_lines(text))),), ()
