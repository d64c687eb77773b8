"""What the load-aware strategies (p2c, leasttime) know of a load balancer's servers: the
requests in flight to each, and the last 100 times to first byte (whole milliseconds).

A `Lease` is one request's claim on a server, from the moment it is sent until the exchange
ends by whatever path; ending it twice is harmless, so every path may end it. Pure: the
caller gives the times.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import attrs

__all__ = ["SAMPLE_SIZE", "Lease", "ResponseTimes", "ServerLoad", "whole_milliseconds"]

#: How many times to first byte a server's average is taken over (Traefik's sampleSize).
SAMPLE_SIZE = 100


def whole_milliseconds(elapsed: float) -> int:
    """``elapsed`` seconds in whole milliseconds, truncated toward zero as Go's
    Duration.Milliseconds does on the nanoseconds it measured."""
    nanoseconds = round(elapsed * 1e9)
    if nanoseconds < 0:
        return -(-nanoseconds // 1_000_000)
    return nanoseconds // 1_000_000


@attrs.define
class ResponseTimes:
    """A ring of the last `SAMPLE_SIZE` times to first byte of one server, in ms."""

    _samples: List[float] = attrs.field(factory=list)
    _next: int = 0
    _sum: float = 0.0

    @property
    def count(self) -> int:
        return len(self._samples)

    def add(self, milliseconds: int) -> None:
        """Record one sample, replacing the oldest once the ring is full."""
        value = float(milliseconds)
        samples = self._samples
        if len(samples) < SAMPLE_SIZE:
            samples.append(value)
            self._sum += value
        else:
            self._sum = self._sum - samples[self._next] + value
            samples[self._next] = value
        self._next = (self._next + 1) % SAMPLE_SIZE

    def average(self) -> float:
        """The mean of the samples (0 before the first one: a new server is tried first)."""
        samples = self._samples
        return self._sum / len(samples) if samples else 0.0


@attrs.define(eq=False)
class ServerLoad:
    """Per server index: requests in flight and, when ``timed``, the response times."""

    inflight: List[int]
    times: Tuple[ResponseTimes, ...] = ()

    @classmethod
    def of(cls, size: int, timed: bool) -> ServerLoad:
        times = tuple(ResponseTimes() for _ in range(size)) if timed else ()
        return cls([0] * size, times)

    def begin(self, index: int, now: float) -> Lease:
        """Count one request sent to server ``index`` at ``now`` until its lease ends."""
        self.inflight[index] += 1
        return Lease(self, index, now, self.times[index] if self.times else None)


@attrs.define(eq=False)
class Lease:
    """One request in flight to one server: `first_byte` times it (once), `end` uncounts it
    (once, whichever path ends the exchange first)."""

    load: ServerLoad
    index: int
    started: float
    times: Optional[ResponseTimes]
    open: bool = True

    def first_byte(self, now: float) -> None:
        """The server's first response byte arrived at ``now``: a sample, the first time."""
        times, self.times = self.times, None
        if times is not None:
            times.add(whole_milliseconds(now - self.started))

    def end(self) -> None:
        """The exchange is over: the server has one request fewer in flight."""
        if self.open:
            self.open = False
            self.times = None
            self.load.inflight[self.index] -= 1
