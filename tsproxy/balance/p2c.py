"""Power of two random choices (Traefik's ``strategy: p2c``): two distinct healthy servers
drawn at random, the one with fewer requests in flight wins (the first drawn on a tie).

Server weights play no part. Pure: the random draws are injected (``randint(n)`` gives an
integer in [0, n), as Go's rand.Intn).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import attrs

from tsproxy.balance.load import ServerLoad

__all__ = ["PowerOfTwoChoices", "p2c_pick"]


def p2c_pick(
    healthy: Sequence[int], inflight: Sequence[int], randint: Callable[[int], int]
) -> Optional[int]:
    """The server index chosen among ``healthy`` (server indexes, in server order), given the
    requests in flight per server index; None when none is healthy."""
    if not healthy:
        return None
    if len(healthy) == 1:
        return healthy[0]
    first = randint(len(healthy))
    second = randint(len(healthy) - 1)
    if second >= first:
        second += 1  # never the same server twice
    one, other = healthy[first], healthy[second]
    return other if inflight[other] < inflight[one] else one


@attrs.define(eq=False)
class PowerOfTwoChoices:
    """The p2c picker of one load balancer: its in-flight counts and its random source."""

    load: ServerLoad
    randint: Callable[[int], int]

    @classmethod
    def of(cls, size: int, randint: Callable[[int], int]) -> PowerOfTwoChoices:
        return cls(ServerLoad.of(size, timed=False), randint)

    def next(self, source: str, available: Optional[Callable[[int], bool]] = None) -> Optional[int]:
        """The next server index (``source``, the client IP, plays no part)."""
        size = len(self.load.inflight)
        healthy = [i for i in range(size) if available is None or available(i)]
        return p2c_pick(healthy, self.load.inflight, self.randint)
