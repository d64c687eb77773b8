"""Tests for tsproxy.balance.load: whole milliseconds, the response-time ring, leases."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.strategyvectors import VECTORS
from tsproxy.balance.load import ResponseTimes, ServerLoad, whole_milliseconds


class WholeMillisecondsTests(SynchronousTestCase):
    def test_table(self) -> None:
        """Seconds -> whole milliseconds, truncated toward zero as Go's Milliseconds()."""
        table = [
            (0.0, 0),
            (0.0009999, 0),
            (0.001, 1),
            (0.2, 200),
            (0.2009, 200),
            (0.29, 290),
            (0.57, 570),
            (1.0, 1000),
            (-0.0015, -1),
        ]
        for seconds, expected in table:
            self.assertEqual(whole_milliseconds(seconds), expected, seconds)


class ResponseTimesTests(SynchronousTestCase):
    def test_vectors(self) -> None:
        """Every ring case of tests/data/strategies-traefik.json (Traefik's ring tests)."""
        for case in VECTORS["ring"]:
            ring = ResponseTimes()
            for sample in case["samples"]:
                ring.add(sample)
            self.assertEqual(ring.average(), case["expected_average"], case["description"])
            self.assertEqual(ring.count, min(len(case["samples"]), 100), case["description"])


class LeaseTests(SynchronousTestCase):
    def test_counts_and_sample(self) -> None:
        """A lease counts one in flight until it ends; its first byte is one sample, once;
        ending it again (another path) changes nothing."""
        load = ServerLoad.of(2, timed=True)
        lease = load.begin(1, 10.0)
        other = load.begin(1, 10.0)
        self.assertEqual(load.inflight, [0, 2])
        lease.first_byte(10.25)
        lease.first_byte(11.0)  # a second byte: no second sample
        self.assertEqual((load.times[1].count, load.times[1].average()), (1, 250.0))
        lease.end()
        lease.end()
        self.assertEqual(load.inflight, [0, 1])
        other.end()
        other.first_byte(12.0)  # after the end: not a sample
        self.assertEqual((load.inflight, load.times[1].count), ([0, 0], 1))

    def test_untimed(self) -> None:
        """A load without times (p2c) counts in flight and takes no samples."""
        load = ServerLoad.of(1, timed=False)
        lease = load.begin(0, 0.0)
        lease.first_byte(1.0)
        self.assertEqual((load.inflight, load.times), ([1], ()))
        lease.end()
        self.assertEqual(load.inflight, [0])
