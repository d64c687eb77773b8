"""Least time (Traefik's ``strategy: leasttime``): each healthy server scores
average time to first byte x (1 + requests in flight) / weight; the lowest score wins, and
servers tied on it are served earliest deadline first.

Floats as Traefik's float64 (the same operations in the same order, so that ties are the
same ties). A server of weight 0 or less is never picked. Pure: samples come from the
`ServerLoad` the engine feeds.
"""

from __future__ import annotations

import sys
from typing import Callable, List, Optional, Sequence

import attrs

from tsproxy.balance.load import ServerLoad

__all__ = ["LeastTime"]

_MAX_FLOAT = sys.float_info.max


@attrs.define(eq=False, init=False)
class LeastTime:
    """The leasttime picker of one load balancer: weights, EDF deadlines for ties, load."""

    weights: tuple[int, ...]
    load: ServerLoad
    deadlines: List[float]
    current: float

    def __init__(self, weights: Sequence[int]) -> None:
        self.weights = tuple(weights)
        self.load = ServerLoad.of(len(self.weights), timed=True)
        self.deadlines = [0.0] * len(self.weights)
        self.current = 0.0
        for index, weight in enumerate(self.weights):
            if weight > 0:
                # Staggered: each server added starts 1/weight after the one before.
                self.current = self.deadlines[index] = self.current + 1 / weight

    def score(self, index: int) -> float:
        """Traefik's (avg x (1 + in flight)) / weight for server ``index``."""
        average = self.load.times[index].average()
        return (average * (1 + float(self.load.inflight[index]))) / float(self.weights[index])

    def next(self, source: str, available: Optional[Callable[[int], bool]] = None) -> Optional[int]:
        """The next server index (``source``, the client IP, plays no part); None when no
        server of weight above 0 is ``available``."""
        healthy = [
            index
            for index, weight in enumerate(self.weights)
            if weight > 0 and (available is None or available(index))
        ]
        if len(healthy) <= 1:
            return healthy[0] if healthy else None
        best = _MAX_FLOAT
        tied: List[int] = []
        for index in healthy:
            score = self.score(index)
            if score < best:
                best, tied = score, [index]
            elif score == best:
                tied.append(index)
        if len(tied) == 1:
            return tied[0]
        return self._earliest(tied) if tied else None

    def _earliest(self, tied: Sequence[int]) -> int:
        """The tied server with the earliest deadline (the first of equal ones); its deadline
        moves on by 1/weight from there."""
        chosen = tied[0]
        earliest = _MAX_FLOAT
        for index in tied:
            if self.deadlines[index] < earliest:
                earliest, chosen = self.deadlines[index], index
        moved = earliest + 1 / self.weights[chosen]
        self.deadlines[chosen] = moved
        if moved > self.current:
            self.current = moved
        return chosen
