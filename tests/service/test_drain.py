"""Tests for tsproxy.drain: connections finish within the grace time, the rest are cut."""

from __future__ import annotations

from typing import List

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.drain import Connections, Drain


class FakeConnection:
    """Records what the drain asked; ``close()`` ends an idle one at once, like the real one."""

    def __init__(self, connections: Connections, busy: bool) -> None:
        self.connections = connections
        self.busy = busy
        self.calls: List[str] = []
        connections.add(self)

    def close(self) -> None:
        self.calls.append("close")
        if not self.busy:
            self.connections.discard(self)

    def abort(self) -> None:
        self.calls.append("abort")
        self.connections.discard(self)

    def finish(self) -> None:
        """The exchange in progress ended: a closing connection goes away."""
        self.connections.discard(self)


class ConnectionsTests(SynchronousTestCase):
    """The live set and its empty notification."""

    def test_whenEmpty(self) -> None:
        """when_empty fires at once on an empty set, else when the last connection leaves."""
        connections = Connections()
        self.successResultOf(connections.when_empty())
        a, b = object(), object()
        connections.add(a)
        connections.add(b)
        d = connections.when_empty()
        connections.discard(a)
        self.assertNoResult(d)
        self.assertEqual((len(connections), b in connections, list(connections)), (1, True, [b]))
        connections.discard(b)
        self.successResultOf(d)
        connections.discard(b)  # discarding twice is harmless


class DrainTests(SynchronousTestCase):
    """Close everything gracefully, wait up to the grace time, then cut."""

    def test_idleCloseAtOnce(self) -> None:
        """Idle connections close at once; with none busy the drain is done cutting none."""
        connections = Connections()
        idle = FakeConnection(connections, busy=False)
        clock = Clock()
        drain = Drain(connections, 10.0, clock)
        self.assertEqual(self.successResultOf(drain.done), 0)
        self.assertEqual((idle.calls, clock.getDelayedCalls()), (["close"], []))

    def test_busyFinishInTime(self) -> None:
        """A busy connection that finishes before the grace time is never cut."""
        connections = Connections()
        busy = FakeConnection(connections, busy=True)
        clock = Clock()
        drain = Drain(connections, 10.0, clock)
        clock.advance(9.9)
        self.assertNoResult(drain.done)
        busy.finish()
        self.assertEqual(self.successResultOf(drain.done), 0)
        self.assertEqual((busy.calls, clock.getDelayedCalls()), (["close"], []))

    def test_graceOver(self) -> None:
        """At the grace time the connections still busy are aborted and counted."""
        connections = Connections()
        busy = [FakeConnection(connections, busy=True) for _ in range(3)]
        clock = Clock()
        drain = Drain(connections, 2.0, clock)
        busy[0].finish()
        clock.advance(1.9)
        self.assertNoResult(drain.done)
        clock.advance(0.1)
        self.assertEqual(self.successResultOf(drain.done), 2)
        self.assertEqual(
            [c.calls for c in busy], [["close"], ["close", "abort"], ["close", "abort"]]
        )

    def test_cutEarly(self) -> None:
        """cut() (a second signal) aborts at once and stops the timer."""
        connections = Connections()
        busy = FakeConnection(connections, busy=True)
        clock = Clock()
        drain = Drain(connections, 10.0, clock)
        drain.cut()
        self.assertEqual(self.successResultOf(drain.done), 1)
        self.assertEqual((busy.calls, clock.getDelayedCalls()), (["close", "abort"], []))
