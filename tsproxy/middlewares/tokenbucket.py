"""The rate limiter's arithmetic, as Traefik's (golang.org/x/time/rate): a token bucket per
source in a bounded table, the delay a request may wait (maxDelay), and Go's duration text.
Pure: time is a number of seconds handed in; no Twisted, no I/O."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Optional, Tuple

import attrs

__all__ = ["BucketTable", "TokenBucket", "go_duration", "max_delay", "retry_headers"]

#: A bucket table never holds more sources than this (a flood of spoofed sources must not
#: grow memory without end): past it, the least recently seen source is forgotten.
MAX_SOURCES = 65536


def max_delay(rate: float) -> float:
    """How long Traefik lets a request wait for its token instead of refusing it: half the
    interval between tokens (Go's integer Duration arithmetic), 500ms below 1 token/s."""
    if rate < 1:
        return 0.5
    return (1_000_000_000 // (int(rate) * 2)) / 1e9


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String() of `seconds` (nanosecond precision): 2.5ms, 1.5s, 1m0s."""
    nanos = int(round(seconds * 1e9))
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= size:
                return sign + _fraction(nanos, size) + unit
    hours, rest = divmod(nanos, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    text = _fraction(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _fraction(value: int, size: int) -> str:
    whole, frac = divmod(value, size)
    if not frac:
        return str(whole)
    digits = len(str(size)) - 1
    return f"{whole}.{str(frac).rjust(digits, '0').rstrip('0')}"


def retry_headers(delay: float) -> Tuple[Tuple[str, str], ...]:
    """Traefik's headers on a 429: whole seconds rounded up, and the exact Go duration."""
    return (
        ("Retry-After", "%.0f" % math.ceil(delay)),
        ("X-Retry-In", go_duration(delay)),
    )


@attrs.define
class TokenBucket:
    """x/time/rate's Limiter for one source: `tokens` as of `last` (seconds)."""

    tokens: float
    last: float

    def reserve(self, now: float, rate: float, burst: int, limit: float) -> Tuple[bool, float]:
        """Take a token: (True, wait) when it is there or due within `limit` seconds,
        (False, wait) otherwise, the bucket then left as it was (Traefik cancels the
        reservation)."""
        last = min(self.last, now)
        tokens = min(float(burst), self.tokens + (now - last) * rate)
        tokens -= 1
        wait = -tokens / rate if tokens < 0 else 0.0
        if wait > limit:
            self.tokens, self.last = tokens + 1, now
            return False, wait
        self.tokens, self.last = tokens, now
        return True, wait

    def full_at(self, rate: float, burst: int) -> float:
        """When this bucket is full again (then it is the same as a new one)."""
        return self.last + max(0.0, burst - self.tokens) / rate


@attrs.define
class BucketTable:
    """The buckets of one rateLimit middleware, by source, bounded in size.

    A bucket that has refilled is dropped (a fresh one is the same), so the table holds only
    sources seen within about burst/rate seconds; past `capacity` the least recently used
    goes first (that source then gets a full bucket again: more lenient, never stricter)."""

    rate: float
    burst: int
    limit: float
    capacity: int = MAX_SOURCES
    buckets: OrderedDict[str, TokenBucket] = attrs.Factory(OrderedDict)

    def take(self, source: str, now: float) -> Tuple[bool, float]:
        """Reserve a token for `source` at `now`: (allowed, wait seconds)."""
        bucket: Optional[TokenBucket] = self.buckets.pop(source, None)
        if bucket is None:
            bucket = TokenBucket(float(self.burst), now)
        result = bucket.reserve(now, self.rate, self.burst, self.limit)
        self.buckets[source] = bucket
        self._expire(now)
        return result

    def _expire(self, now: float) -> None:
        while self.buckets:
            source, oldest = next(iter(self.buckets.items()))
            if len(self.buckets) <= self.capacity and oldest.full_at(self.rate, self.burst) > now:
                return
            del self.buckets[source]
