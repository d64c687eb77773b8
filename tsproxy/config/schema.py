"""Typed reading of located YAML mappings: every problem names its field path and line.

Used by the static and the dynamic configuration readers; knows no kinds, raises FieldError.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Mapping, Sequence, Union

from tsproxy.config.yamlio import CaselessMap, KVText, YAMLList, YAMLMap

__all__ = ["FieldError", "Fields", "parse_duration"]

PortRef = Union[int, str]


class FieldError(Exception):
    """A field holds a value the schema does not accept."""

    def __init__(self, line: int, path: str, message: str) -> None:
        super().__init__(line, path, message)
        self.line = line
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_KV_INT = re.compile(r"^[-+]?[0-9]+$")
_BARE_NUMBER = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")


def parse_duration(value: object) -> float:
    """Seconds from a Go duration string ("1m30s"), a numeric string or a number (seconds).

    Raises ValueError for anything else, including booleans and non-finite numbers.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif _BARE_NUMBER.match(value):
        seconds = float(value)
    else:
        text = value
        sign = -1.0 if text.startswith("-") else 1.0
        text = text[1:] if text[:1] in "+-" else text
        if text == "0":
            return 0.0
        seconds, position = 0.0, 0
        for match in _DURATION_PART.finditer(text):
            number = match.group(1)
            if match.start() != position or number in ("", "."):
                raise ValueError(value)
            seconds += float(number) * _UNIT_SECONDS[match.group(2)]
            position = match.end()
        if position == 0 or position != len(text):
            raise ValueError(value)
        seconds *= sign
    if not math.isfinite(seconds):
        raise ValueError(value)
    return seconds


def join(path: str, key: str) -> str:
    """The field path of ``key`` below ``path``."""
    return f"{path}.{key}" if path else key


class Fields:
    """A view over one mapping that reads typed fields and remembers which ones were read.

    ``notices`` collects (line, text) pairs for accepted-but-unsupported fields; ``done``
    rejects any field nobody read.
    """

    def __init__(
        self,
        data: YAMLMap,
        path: str,
        notices: list[tuple[int, str]],
        named_at: int | None = None,
    ) -> None:
        self.data = data
        self.path = path
        self.notices = notices
        self.named_at = data.line if named_at is None else named_at
        self._read: set[object] = set()

    @classmethod
    def of(cls, value: object, path: str, line: int, notices: list[tuple[int, str]]) -> Fields:
        """Fields over ``value``, which must be a mapping named at ``path`` on ``line``."""
        if isinstance(value, KVText) and value.lower() == "true":
            # A key-value store's "enabled with its defaults" (``.../tls`` = ``true``).
            value = CaselessMap.empty(line)
        if not isinstance(value, YAMLMap):
            raise FieldError(line, path, "must be a mapping")
        return cls(value, path, notices, line)

    @property
    def line(self) -> int:
        """The line of the mapping's first key."""
        return self.data.line

    def whole(self, message: str) -> FieldError:
        """An error about the mapping as a whole, at the line that names it."""
        return FieldError(self.named_at, self.path, message)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def line_of(self, key: str) -> int:
        """The line of ``key`` if present, else the line that names the mapping."""
        if isinstance(self.data, CaselessMap):
            return self.data.line_of(key, self.named_at)
        return self.data.key_lines.get(key, self.named_at)

    def path_of(self, key: str) -> str:
        return join(self.path, key)

    def fail(self, key: str, message: str) -> FieldError:
        return FieldError(self.line_of(key), self.path_of(key), message)

    def _get(self, key: str, required: bool) -> object:
        self._read.add(key)
        value = self.data.get(key)
        if value is None and required:
            raise self.fail(key, "is required")
        return value

    def string(
        self, key: str, default: str = "", required: bool = False, choices: Sequence[str] = ()
    ) -> str:
        value = self._get(key, required)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(key, "must be a string")
        if required and not value:
            raise self.fail(key, "must not be empty")
        if choices and value not in choices:
            raise self.fail(key, "must be one of: " + ", ".join(choices))
        return value

    def integer(
        self, key: str, default: int, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self._get(key, False)
        if value is None:
            return default
        if isinstance(value, KVText) and _KV_INT.match(value):
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and minimum is not None and value < minimum:  # type: ignore[operator]
            ok = False
        if ok and maximum is not None and value > maximum:  # type: ignore[operator]
            ok = False
        if not ok:
            if minimum is not None and maximum is not None:
                raise self.fail(key, f"must be an integer between {minimum} and {maximum}")
            if minimum is not None:
                raise self.fail(key, f"must be an integer >= {minimum}")
            if maximum is not None:
                raise self.fail(key, f"must be an integer <= {maximum}")
            raise self.fail(key, "must be an integer")
        return value  # type: ignore[return-value]

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        if value is None:
            return default
        if isinstance(value, KVText) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def duration(self, key: str, default: float, negative: bool = False) -> float:
        """Seconds; a negative duration is an error unless ``negative`` (where Traefik gives
        it a meaning, such as "forever" or "off")."""
        value = self._get(key, False)
        if value is None:
            return default
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise self.fail(
                key, "must be a duration (like 10s, 1m30s, 500ms) or a number of seconds"
            ) from None
        if seconds < 0 and not negative:
            raise self.fail(key, "must not be negative")
        return seconds

    def port(self, key: str) -> PortRef | None:
        """A Kubernetes int-or-string port: 1..65535 or a non-empty name; 0 and "" mean unset."""
        value = self._get(key, False)
        if isinstance(value, KVText) and _KV_INT.match(value):
            value = int(value)
        if value is None or value == 0 or value == "":
            return None
        if isinstance(value, str) or (
            isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536
        ):
            return value
        raise self.fail(key, "must be a port number (1-65535) or a port name")

    def mapping(self, key: str, required: bool = False) -> Fields | None:
        value = self._get(key, required)
        if value is None:
            return None
        return Fields.of(value, self.path_of(key), self.line_of(key), self.notices)

    def section(self, key: str) -> tuple[bool, Fields | None]:
        """A mapping that may be written empty (``ping:`` or ``ping: {}``): whether the key is
        there at all, and its fields when it holds any."""
        present = key in self.data
        value = self._get(key, False)
        if isinstance(value, KVText) and value.lower() == "false":
            return False, None  # a key-value store's "not enabled"
        if value is None:
            return present, None
        return True, Fields.of(value, self.path_of(key), self.line_of(key), self.notices)

    def items(self, key: str, required: bool = False) -> list[tuple[object, str, int]]:
        """The items of a list field as (value, path, line); absent means empty."""
        value = self._get(key, required)
        if value is None:
            return []
        if not isinstance(value, YAMLList):
            raise self.fail(key, "must be a list")
        base = self.path_of(key)
        return [
            (item, f"{base}[{index}]", line)
            for index, (item, line) in enumerate(zip(value, value.item_lines))
        ]

    def mappings(self, key: str, required: bool = False) -> list[Fields]:
        return [
            Fields.of(item, path, line, self.notices)
            for item, path, line in self.items(key, required)
        ]

    def strings(self, key: str) -> tuple[str, ...]:
        result = []
        for item, path, line in self.items(key):
            if not isinstance(item, str):
                raise FieldError(line, path, "must be a string")
            result.append(item)
        return tuple(result)

    def note(self, key: str, text: str) -> None:
        """Record a notice about ``key`` at its line."""
        self.notices.append((self.line_of(key), f"{self.path_of(key)}: {text}"))

    def done(self, ignored: Mapping[str, str] | Iterable[str] = ()) -> None:
        """Check every field was read: ``ignored`` ones get a notice, others are errors.

        ``ignored`` maps a field name to the notice text; a plain iterable of names is
        accepted silently (fields that exist in the source format but mean nothing here).
        """
        texts = ignored if isinstance(ignored, Mapping) else dict.fromkeys(ignored, "")
        if isinstance(self.data, CaselessMap):
            read = {str(k).lower() for k in self._read}
            texts = {k: texts[w] for w in texts for k in self.data if k.lower() == w.lower()}
        for key in self.data:
            if key in self._read or (isinstance(self.data, CaselessMap) and key.lower() in read):
                continue
            if not isinstance(key, str) or key not in texts:
                raise FieldError(
                    self.data.key_lines.get(key, self.data.line),
                    join(self.path, str(key)),
                    "unknown field",
                )
            if texts[key]:
                self.note(key, texts[key])
