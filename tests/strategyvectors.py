"""tests/data/strategies-traefik.json: Traefik 3.7's p2c and leasttime test tables as plain
values, shared by the balance tests."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Iterator

__all__ = ["VECTORS", "draws"]

with open(os.path.join(os.path.dirname(__file__), "data", "strategies-traefik.json")) as _file:
    VECTORS: Any = json.load(_file)


def draws(values: list[int]) -> Callable[[int], int]:
    """A randint that returns ``values`` in turn (Traefik's mockRand), checking each is in
    range; running out is a test failure."""
    given: Iterator[int] = iter(values)

    def randint(n: int) -> int:
        value = next(given)
        assert 0 <= value < n, (value, n)
        return value

    return randint
