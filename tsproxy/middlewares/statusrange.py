"""HTTP status lists as Traefik reads them (types.NewHTTPCodeRanges): each entry a code or an
inclusive ``a-b`` range. Pure: used by retry and errors."""

from __future__ import annotations

from typing import Sequence, Tuple

__all__ = ["StatusRanges", "parse_status_ranges", "status_in"]

StatusRanges = Tuple[Tuple[int, int], ...]


def _atoi(text: str) -> int:
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isdigit() or not body.isascii():
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def parse_status_ranges(entries: Sequence[str]) -> StatusRanges:
    """The (low, high) ranges of `entries`; ValueError with Go's text for a bad one."""
    ranges = []
    for entry in entries:
        low, dash, high = entry.partition("-")
        first = _atoi(low)
        last = _atoi(high) if dash else first
        ranges.append((first, last))
    return tuple(ranges)


def status_in(status: int, ranges: StatusRanges) -> bool:
    return any(low <= status <= high for low, high in ranges)
