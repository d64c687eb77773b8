"""Highest random weight (rendezvous hashing) on the client IP, as Traefik's hrw balancer does.

Each child scores ``weight / -ln(fnv1a64(ip + name) / 2**64)``; the highest score among the
available children wins, so a client stays on one child while the set of children holds.
Pure: no I/O.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

__all__ = ["fnv1a64", "hrw_choose", "hrw_score"]

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = (1 << 64) - 1


def fnv1a64(data: bytes) -> int:
    """Go's hash/fnv New64a sum of ``data``."""
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & _MASK
    return value


def hrw_score(source: str, name: str, weight: float) -> float:
    """Traefik's getNodeScore: the child's score for ``source`` (the client IP)."""
    share = fnv1a64((source + name).encode("utf-8")) / 2.0**64
    if share <= 0.0:
        return 0.0
    if share >= 1.0:  # float rounding of sums near 2**64; ln(1) would divide by zero
        return math.inf
    return (1.0 / -math.log(share)) * weight


def hrw_choose(
    source: str,
    names: Sequence[str],
    weights: Sequence[int],
    available: Optional[Callable[[int], bool]] = None,
) -> Optional[int]:
    """The index of the child with the highest score for ``source`` (the first on a tie),
    among those ``available`` says are up and whose weight is above 0; None when none is."""
    best: Optional[int] = None
    best_score = 0.0
    for index, name in enumerate(names):
        if weights[index] <= 0 or (available is not None and not available(index)):
            continue
        score = hrw_score(source, name, weights[index])
        if best is None or score > best_score:
            best, best_score = index, score
    return best
