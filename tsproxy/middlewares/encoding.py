"""The compress middleware's pure parts, as Traefik's: Accept-Encoding parsing and the choice
of an encoding, and media types read and compared as Go's mime.ParseMediaType. No I/O."""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = [
    "IDENTITY",
    "NOT_ACCEPTABLE",
    "MediaType",
    "media_type_equals",
    "parse_accept_encoding",
    "parse_media_type",
    "select_encoding",
]

IDENTITY = "identity"
NOT_ACCEPTABLE = "not_acceptable"
_WILDCARD = "*"

MediaType = Tuple[str, Dict[str, str]]


def parse_accept_encoding(
    values: Sequence[str], encodings: Sequence[str]
) -> Tuple[List[Tuple[str, float]], bool]:
    """The acceptable (encoding, weight) entries in the header's order, and whether any had
    a weight. Only configured encodings, identity and * are kept; q=0 entries are dropped."""
    entries: List[Tuple[str, float]] = []
    weighted = False
    for value in values:
        for item in value.replace(" ", "").split(","):
            name, _, params = item.partition(";")
            if name not in encodings and name not in (IDENTITY, _WILDCARD):
                continue
            weight = 1.0
            if params.startswith("q="):
                try:
                    weight = float(params[2:])
                except ValueError:
                    continue
                weighted = True
                if weight == 0:
                    continue
            entries.append((name, weight))
    return entries, weighted


def _best_first(
    entries: List[Tuple[str, float]], encodings: Sequence[str]
) -> List[Tuple[str, float]]:
    """Best weight first; equal weights keep Traefik's priority: * first, then the
    configured order, identity last."""

    def rank(entry: Tuple[str, float]) -> Tuple[float, int]:
        name = entry[0]
        if name == _WILDCARD:
            order = -1
        elif name == IDENTITY:
            order = len(encodings)
        else:
            order = list(encodings).index(name)
        return (-entry[1], order)

    return sorted(entries, key=rank)


def select_encoding(values: Optional[Sequence[str]], encodings: Sequence[str], default: str) -> str:
    """The encoding to answer with: one of `encodings`, IDENTITY or NOT_ACCEPTABLE (both
    mean uncompressed). `values` None: the request has no Accept-Encoding."""
    if values is None:
        return default or IDENTITY
    if all(value == "" for value in values):
        return IDENTITY
    entries = _best_first(parse_accept_encoding(values, encodings)[0], encodings)
    if not entries:
        return NOT_ACCEPTABLE
    best = entries[0][0]
    if best == _WILDCARD:
        return default or encodings[0]
    return best


_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def parse_media_type(text: str) -> Optional[MediaType]:
    """(lower-case media type, parameters) as Go's mime.ParseMediaType, None when malformed
    (a duplicate parameter, a bad token)."""
    kind, _, rest = text.partition(";")
    kind = kind.strip().lower()
    if not _TOKEN.match(kind.replace("/", "", 1)) or kind.count("/") > 1:
        return None
    params: Dict[str, str] = {}
    for item in rest.split(";") if rest else ():
        item = item.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        value = value.strip()
        if not eq or not _TOKEN.match(key):
            return None
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if key in params:
            return None
        params[key] = value
    return kind, params


def media_type_equals(configured: MediaType, response: MediaType) -> bool:
    """Traefik's parsedContentType.equals: same media type; when the configured entry has
    parameters, the response's must be exactly the same."""
    if configured[0].lower() != response[0].lower():
        return False
    if not configured[1]:
        return True
    return configured[1] == response[1]
