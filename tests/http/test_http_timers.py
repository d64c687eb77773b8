"""tsproxy.http.timers: the TimerWheel's deadlines on a Clock."""

from __future__ import annotations

from typing import List, Optional

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.http.timers import TimerWheel


class _Owner:
    def __init__(self, clock: Clock, fired: List[float]) -> None:
        self.wheel_slot: Optional[int] = None
        self.clock = clock
        self.fired = fired

    def timed_out(self) -> None:
        self.fired.append(self.clock.seconds())


def _run(start: float, seconds: float, step: float, until: float) -> List[float]:
    clock = Clock()
    clock.advance(start)
    wheel = TimerWheel(clock)
    fired: List[float] = []
    wheel.arm(_Owner(clock, fired), seconds)
    while clock.seconds() < until:
        clock.advance(step)
    return fired


class TimerWheelTests(SynchronousTestCase):
    """Timeouts fire once, never early, at most one slot (1 s) late."""

    def test_table(self) -> None:
        """Armed at ``start`` for ``seconds``, advanced by ``step``: when it fired."""
        cases = [
            # (start, seconds, step, fired at)
            (0, 10, 1, [10]),
            (0, 10, 0.25, [10]),
            (0, 10, 10, [10]),
            (0, 10, 100, [100]),  # a clock jump fires it at once, late only by the jump
            (0.5, 10, 0.25, [11]),  # deadline 10.5 is in the slot ending at 11
            (0.5, 0.25, 0.125, [1]),
            (3.75, 1, 0.125, [5]),
            (0, 180, 7, [182]),  # ticks only at slot boundaries the clock passes
        ]
        for start, seconds, step, expected in cases:
            fired = _run(start, seconds, step, start + seconds + 20)
            self.assertEqual(len(fired), 1, (start, seconds, step, fired))
            self.assertAlmostEqual(fired[0], expected[0], msg=(start, seconds, step))
            self.assertGreaterEqual(fired[0], start + seconds)

    def test_rearmReplaces(self) -> None:
        """Arming again moves the deadline; only the last one fires."""
        clock = Clock()
        wheel = TimerWheel(clock)
        fired: List[float] = []
        owner = _Owner(clock, fired)
        wheel.arm(owner, 5)
        clock.advance(4)
        wheel.arm(owner, 5)
        for _ in range(20):
            clock.advance(1)
        self.assertEqual(fired, [9])

    def test_cancelLeavesNoCall(self) -> None:
        """Cancelled, or all fired, the wheel leaves no clock call behind."""
        clock = Clock()
        wheel = TimerWheel(clock)
        fired: List[float] = []
        owners = [_Owner(clock, fired) for _ in range(3)]
        for i, owner in enumerate(owners):
            wheel.arm(owner, 2 + i)
        wheel.cancel(owners[1])
        wheel.cancel(owners[1])  # twice: a no-op
        clock.advance(2)
        self.assertEqual(fired, [2])
        wheel.cancel(owners[2])
        self.assertEqual(clock.getDelayedCalls(), [])
        clock.advance(10)
        self.assertEqual(fired, [2])

    def test_manyOwnersOneCall(self) -> None:
        """A thousand armed owners share one clock call."""
        clock = Clock()
        wheel = TimerWheel(clock)
        fired: List[float] = []
        for i in range(1000):
            wheel.arm(_Owner(clock, fired), 1 + i % 60)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        for _ in range(61):
            clock.advance(1)
        self.assertEqual(len(fired), 1000)
        self.assertEqual(clock.getDelayedCalls(), [])
