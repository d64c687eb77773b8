"""Strict YAML loading that keeps the line of every document, mapping, key and list item.

YAML 1.2 scalars only (``yes``/``010``/``1:20`` stay strings), duplicate keys are errors;
nothing here knows about Kubernetes kinds or does any file I/O.
"""

from __future__ import annotations

import re
from typing import Callable, Iterator

import attrs
import yaml
import yaml.constructor
import yaml.nodes
import yaml.reader

from tsproxy.config.errors import ConfigError

__all__ = ["CaselessMap", "Document", "KVText", "YAMLList", "YAMLMap", "load_documents"]


class YAMLMap(dict):  # type: ignore[type-arg]
    """A mapping that knows its own line and the line of each of its keys (1-based)."""

    __slots__ = ("line", "key_lines")

    line: int
    key_lines: dict[object, int]


class CaselessMap(YAMLMap):
    """A mapping read from a key-value store, whose keys are case-insensitive (Traefik's
    ``entrypoints`` is ``entryPoints``): lookups ignore case, iteration keeps the keys as
    written. Built with ``put`` only."""

    __slots__ = ("lower",)

    caseless = True
    lower: dict[str, str]

    @classmethod
    def empty(cls, line: int) -> CaselessMap:
        made = cls()
        made.line = line
        made.key_lines = {}
        made.lower = {}
        return made

    def put(self, key: str, value: object, line: int) -> None:
        self.lower[key.lower()] = key
        self[key] = value
        self.key_lines[key] = line

    def _written(self, key: object) -> object:
        return self.lower.get(key.lower(), key) if isinstance(key, str) else key

    def get(self, key: object, default: object = None) -> object:
        return dict.get(self, self._written(key), default)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, self._written(key))

    def line_of(self, key: object, default: int) -> int:
        return self.key_lines.get(self._written(key), default)


class KVText(str):
    """A value read from a key-value store: always text, which the schema reads as the
    integer, boolean or duration a field wants (``"10"``, ``"true"``)."""


class YAMLList(list):  # type: ignore[type-arg]
    """A sequence that knows its own line and the line of each of its items (1-based)."""

    __slots__ = ("line", "item_lines")

    line: int
    item_lines: list[int]


@attrs.frozen
class Document:
    """One non-empty document of a YAML stream."""

    index: int
    line: int
    data: object


_TAG = "tag:yaml.org,2002:"
# YAML 1.1 resolvers PyYAML ships that YAML 1.2 (and Kubernetes users' intuition) lack:
# yes/no/on/off booleans, octal and sexagesimal ints, timestamps, merge keys.
_DROPPED_RESOLVERS = {
    _TAG + name for name in ("bool", "int", "float", "timestamp", "merge", "value")
}
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
# A float needs a dot or an exponent, so "010" is neither an int nor a float: it stays a string.
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*|[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+)"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class _StrictLoader(yaml.SafeLoader):  # type: ignore[misc,unused-ignore]
    """SafeLoader with YAML 1.2 core-schema scalars and located, duplicate-free collections."""


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_RESOLVERS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(_TAG + "bool", _BOOL, list("tTfF"))
_StrictLoader.add_implicit_resolver(_TAG + "int", _INT, list("-+0123456789"))
_StrictLoader.add_implicit_resolver(_TAG + "float", _FLOAT, list("-+0123456789."))


def _construct_map(loader: _StrictLoader, node: yaml.MappingNode) -> Iterator[YAMLMap]:
    data = YAMLMap()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    yield data
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, "mapping keys must be scalars", key_node.start_mark
            )
        key = loader.construct_object(key_node, deep=True)
        if key in data:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {data.key_lines[key]})",
                key_node.start_mark,
            )
        data[key] = loader.construct_object(value_node, deep=False)
        data.key_lines[key] = key_node.start_mark.line + 1


def _construct_seq(loader: _StrictLoader, node: yaml.SequenceNode) -> Iterator[YAMLList]:
    data = YAMLList()
    data.line = node.start_mark.line + 1
    data.item_lines = []
    yield data
    for item_node in node.value:
        data.append(loader.construct_object(item_node, deep=False))
        data.item_lines.append(item_node.start_mark.line + 1)


def _construct_strict_scalar(
    pattern: re.Pattern[str], kind: str, convert: Callable[[str], object]
) -> Callable[[_StrictLoader, yaml.ScalarNode], object]:
    """An explicit ``!!int``/``!!bool`` constructor with the same YAML 1.2 grammar."""

    def construct(loader: _StrictLoader, node: yaml.ScalarNode) -> object:
        text = loader.construct_scalar(node)
        if not isinstance(text, str) or not pattern.match(text):
            raise yaml.constructor.ConstructorError(
                None, None, f"{text!r} is not a YAML 1.2 {kind}", node.start_mark
            )
        return convert(text)

    return construct


_StrictLoader.add_constructor(_TAG + "map", _construct_map)
_StrictLoader.add_constructor(_TAG + "seq", _construct_seq)
_StrictLoader.add_constructor(_TAG + "int", _construct_strict_scalar(_INT, "integer", int))
_StrictLoader.add_constructor(
    _TAG + "bool", _construct_strict_scalar(_BOOL, "boolean", lambda t: t.lower() == "true")
)


def _line_of(text: str, exc: BaseException, fallback: int) -> int:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            return int(mark.line) + 1
    if isinstance(exc, yaml.reader.ReaderError):
        return text.count("\n", 0, exc.position) + 1
    return fallback


def _describe(exc: BaseException) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = exc.problem or exc.context or "malformed YAML"
        if exc.context and exc.problem and exc.context_mark is not None:
            return f"{problem} ({exc.context} at line {exc.context_mark.line + 1})"
        return problem
    if isinstance(exc, yaml.reader.ReaderError):
        return f"unacceptable character #x{exc.character:04x}: {exc.reason}"
    if isinstance(exc, RecursionError):
        return "nesting too deep"
    return str(exc) or type(exc).__name__


# ValueError and friends escape PyYAML's own constructors for explicit tags (!!float x).
_CONSTRUCT_ERRORS = (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError)


def load_documents(text: str, file: str) -> tuple[tuple[Document, ...], tuple[ConfigError, ...]]:
    """Parse a YAML stream into located documents, never raising for bad input.

    A syntax error makes the whole file unusable: no documents, one error. A document whose
    content cannot be built (duplicate key, bad explicit tag) is skipped with its own error.
    Empty documents are dropped; ``Document.index`` still counts them.
    """
    try:
        loader = _StrictLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        return (), (ConfigError(file, line, "", f"invalid YAML: {_describe(exc)}"),)
    documents: list[Document] = []
    errors: list[ConfigError] = []
    index = 0
    try:
        while True:
            try:
                node = loader.get_node() if loader.check_node() else None
            except (yaml.YAMLError, RecursionError) as exc:
                line = _line_of(text, exc, loader.get_mark().line + 1)
                return (), (ConfigError(file, line, "", f"invalid YAML: {_describe(exc)}"),)
            if node is None:
                break
            try:
                data = loader.construct_document(node)
            except _CONSTRUCT_ERRORS as exc:
                # construct_document leaves its caches filled when it fails midway.
                loader.constructed_objects = {}
                loader.recursive_objects = {}
                loader.state_generators = []
                line = _line_of(text, exc, node.start_mark.line + 1)
                errors.append(ConfigError(file, line, "", f"invalid YAML: {_describe(exc)}"))
            else:
                if data is not None:
                    documents.append(Document(index, node.start_mark.line + 1, data))
            index += 1
    finally:
        loader.dispose()
    return tuple(documents), tuple(errors)
