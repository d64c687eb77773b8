"""A timer wheel: the read and idle timeouts of an entrypoint's connections on one clock call.

A connection re-arms its timeout at every request; a DelayedCall per arm (and its cancel)
costs a heap push per request. The wheel keeps each armed owner in the slot of its deadline
rounded up to ``width`` seconds, and one clock call at each slot boundary, while anything is
armed, fires the slots that are due. A timeout fires no sooner than asked and at most
``width`` later. Pure logic: the clock (``seconds``, ``callLater``) is injected.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Set


class TimerWheel:
    """Coarse timeouts for many owners, each with a ``wheel_slot`` attribute (None: not
    armed) and a ``timed_out()`` method the wheel calls when its deadline has passed."""

    def __init__(self, clock: Any, width: float = 1.0) -> None:
        self.clock = clock
        self.width = width
        self.slots: Dict[int, Set[Any]] = {}
        self.call: Any = None

    def arm(self, owner: Any, seconds: float) -> None:
        """Fire ``owner.timed_out()`` once ``seconds`` (> 0) have passed, replacing the
        timeout it had."""
        slot = math.ceil((self.clock.seconds() + seconds) / self.width)
        old = owner.wheel_slot
        if old == slot:
            return
        if old is not None:
            self._remove(owner, old)
        bucket = self.slots.get(slot)
        if bucket is None:
            bucket = self.slots[slot] = set()
        bucket.add(owner)
        owner.wheel_slot = slot
        if self.call is None:
            self._schedule()

    def cancel(self, owner: Any) -> None:
        """Drop ``owner``'s timeout, if it has one."""
        old = owner.wheel_slot
        if old is None:
            return
        owner.wheel_slot = None
        self._remove(owner, old)
        if not self.slots and self.call is not None:
            # Nothing left to time: no clock call stays behind (a stopped entrypoint, tests).
            self.call.cancel()
            self.call = None

    def _remove(self, owner: Any, slot: int) -> None:
        bucket = self.slots.get(slot)
        if bucket is not None:
            bucket.discard(owner)
            if not bucket:
                del self.slots[slot]

    def _schedule(self) -> None:
        now = self.clock.seconds()
        boundary = (math.floor(now / self.width) + 1) * self.width
        self.call = self.clock.callLater(boundary - now, self._tick)

    def _tick(self) -> None:
        self.call = None
        # The epsilon: a tick at a slot boundary must not read as just before it.
        current = math.floor(self.clock.seconds() / self.width + 1e-9)
        for slot in sorted(s for s in self.slots if s <= current):
            bucket = self.slots.pop(slot, None) or ()
            for owner in list(bucket):
                if owner.wheel_slot == slot:
                    owner.wheel_slot = None
                    owner.timed_out()
        if self.slots and self.call is None:
            self._schedule()
