"""Scheduling among children: earliest-deadline-first weighted round robin, and plain round robin.

Pure state machines over child indexes; they know nothing of services, servers or requests.
"""

from __future__ import annotations

import heapq
import math
from typing import Callable, Optional, Sequence

import attrs

__all__ = ["EarliestDeadlineFirst", "RoundRobin"]


@attrs.define(init=False)
class EarliestDeadlineFirst:
    """Traefik's weighted round robin: each child's deadline starts at 1/weight; the smallest
    deadline is picked and then moves on by 1/weight. Weights 1:2 give 1, 0, 1, 1, 0, 1, ...

    Unlike Traefik (floats in a Go heap, children shuffled), deadlines are exact integers
    (scaled by the lcm of the weights) and a tie goes to the child declared first, so the
    order is reproducible. A weight of 0 removes the child.
    """

    weights: tuple[int, ...]
    _steps: tuple[int, ...]
    _heap: list[tuple[int, int]]

    def __init__(self, weights: Sequence[int]) -> None:
        if any(weight < 0 for weight in weights):
            raise ValueError(f"weights must be >= 0: {list(weights)}")
        self.weights = tuple(weights)
        positive = [weight for weight in self.weights if weight > 0]
        scale = math.lcm(*positive) if positive else 1
        self._steps = tuple(scale // weight if weight else 0 for weight in self.weights)
        # (deadline, index): equal deadlines pop the lowest index, i.e. the first declared.
        self._heap = [(step, index) for index, step in enumerate(self._steps) if step]
        heapq.heapify(self._heap)

    def next(self, available: Optional[Callable[[int], bool]] = None) -> Optional[int]:
        """The index of the next child, or None when there is none to give.

        ``available`` (index -> bool) skips children that are down; a skipped child still
        uses up its turn, as in Traefik, so its share goes back when it comes up again.
        """
        heap = self._heap
        if not heap:
            return None
        if available is not None and not any(available(index) for _, index in heap):
            return None
        while True:
            deadline, index = heap[0]
            heapq.heapreplace(heap, (deadline + self._steps[index], index))
            if available is None or available(index):
                return index


@attrs.define
class RoundRobin:
    """Children in declaration order, one after the other (a server list with equal weights)."""

    size: int
    _position: int = 0

    def next(self, available: Optional[Callable[[int], bool]] = None) -> Optional[int]:
        """The index of the next child, or None when there are none (or none ``available``
        says is up: those are passed over)."""
        for _ in range(max(self.size, 0)):
            index = self._position % self.size
            self._position = index + 1
            if available is None or available(index):
                return index
        return None
