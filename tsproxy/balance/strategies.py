"""The server picker of a load balancer for each of Traefik's ``strategy`` values: wrr (round
robin in server order when every server weighs 1, else Traefik's EDF over the server weights),
p2c (weights play no part), hrw (the client IP) and leasttime.

A picker gives the next server index among those ``available`` says are up; ``load`` is the
in-flight and response-time state the engine must feed (None: the picker needs none). Pure.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol, Sequence, Union

import attrs

from tsproxy.balance.hrw import hrw_choose
from tsproxy.balance.leasttime import LeastTime
from tsproxy.balance.load import ServerLoad
from tsproxy.balance.p2c import PowerOfTwoChoices
from tsproxy.balance.wrr import EarliestDeadlineFirst, RoundRobin

__all__ = ["STRATEGIES", "Picker", "make_picker"]

#: Traefik 3.7's values, in its documentation's order (RoundRobin is read as wrr).
STRATEGIES = ("wrr", "p2c", "hrw", "leasttime")

Available = Optional[Callable[[int], bool]]


class Picker(Protocol):
    @property
    def load(self) -> Optional[ServerLoad]: ...

    def next(self, source: str, available: Available = None) -> Optional[int]: ...


@attrs.define(eq=False)
class WeightedRoundRobinPicker:
    """wrr: ``order`` is plain round robin when every server weighs 1, else Traefik's
    earliest deadline first (weight 0: never picked; down servers keep using up their turn,
    as in Traefik)."""

    order: Union[RoundRobin, EarliestDeadlineFirst]
    load: Optional[ServerLoad] = None

    def next(self, source: str, available: Available = None) -> Optional[int]:
        return self.order.next(available)


@attrs.define(eq=False)
class HighestRandomWeightPicker:
    """hrw: the server with the highest rendezvous score for the client IP (``source``)."""

    names: tuple[str, ...]
    weights: tuple[int, ...]
    load: Optional[ServerLoad] = None

    def next(self, source: str, available: Available = None) -> Optional[int]:
        return hrw_choose(source, self.names, self.weights, available)


def make_picker(
    strategy: str,
    names: Sequence[str],
    weights: Sequence[int],
    randint: Callable[[int], int],
) -> Picker:
    """The picker for ``strategy`` over servers named ``names`` (their URLs: hrw hashes them)
    of ``weights``; ``randint(n)`` draws in [0, n) for p2c. ValueError for another value."""
    if strategy == "wrr":
        if all(weight == 1 for weight in weights):
            return WeightedRoundRobinPicker(RoundRobin(len(names)))
        return WeightedRoundRobinPicker(EarliestDeadlineFirst(weights))
    if strategy == "p2c":
        return PowerOfTwoChoices.of(len(names), randint)
    if strategy == "hrw":
        return HighestRandomWeightPicker(tuple(names), tuple(weights))
    if strategy == "leasttime":
        return LeastTime(weights)
    raise ValueError(f"unsupported load-balancer strategy {strategy!r}")
