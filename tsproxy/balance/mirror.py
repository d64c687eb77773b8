"""Which requests a mirroring service copies to each mirror: deterministic counting, not dice.

Request t (1-based) goes to a mirror iff mirrored_so_far * 100 < t * percent, as in Traefik.
"""

from __future__ import annotations

from typing import Sequence

import attrs

__all__ = ["MirrorCounter", "check_percent"]


def check_percent(percent: int) -> int:
    """``percent`` itself if it is a valid mirror percentage (0..100), else ValueError."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ValueError(f"percent must be between 0 and 100: {percent!r}")
    return percent


@attrs.define(init=False)
class MirrorCounter:
    """One request counter shared by all mirrors of a mirroring service, one count per mirror.

    10% fires on requests 1, 11, 21, ...; 50% on 1, 3, 5, ...; 0% never.
    """

    percents: tuple[int, ...]
    total: int
    counts: list[int]

    def __init__(self, percents: Sequence[int]) -> None:
        self.percents = tuple(check_percent(percent) for percent in percents)
        self.total = 0
        self.counts = [0] * len(self.percents)

    def next(self) -> tuple[int, ...]:
        """Count one request; the indexes of the mirrors that get a copy of it."""
        self.total += 1
        fired = []
        for index, percent in enumerate(self.percents):
            if self.counts[index] * 100 < self.total * percent:
                self.counts[index] += 1
                fired.append(index)
        return tuple(fired)
