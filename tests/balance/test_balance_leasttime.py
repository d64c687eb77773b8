"""Tests for tsproxy.balance.leasttime: score = average TTFB x (1 + in flight) / weight,
the lowest wins, ties earliest deadline first."""

from __future__ import annotations

from typing import Any, List, Optional

from twisted.trial.unittest import SynchronousTestCase

from tests.strategyvectors import VECTORS
from tsproxy.balance.leasttime import LeastTime


def run(case: Any) -> Optional[List[int]]:
    """Play one leasttime case: preset samples and counts, then ``picks`` picks."""
    picker = LeastTime(case["weights"])
    for index, samples in enumerate(case["samples"]):
        for sample in samples:
            picker.load.times[index].add(sample)
    picker.load.inflight[:] = case["inflight"]
    down = set(case["down"])
    counts = [0] * len(case["weights"])
    for _ in range(case["picks"]):
        index = picker.next("", lambda i: i not in down)
        if index is None:
            return None
        counts[index] += 1
        if case.get("hold"):
            picker.load.inflight[index] += 1
        elif case["delays"] is not None:
            picker.load.times[index].add(case["delays"][index])
    return counts


class LeastTimeTests(SynchronousTestCase):
    def test_vectors(self) -> None:
        """Every leasttime case of tests/data/strategies-traefik.json (Traefik's tests, with
        exact counts where it asserts a bound)."""
        for case in VECTORS["leasttime"]:
            self.assertEqual(run(case), case["expected_counts"], case["description"])

    def test_tie_sequences(self) -> None:
        """No samples: every pick is a tie, served in Traefik's EDF order (weights 1 and 2:
        deadlines 1 and 1.5 at add, 0 1 0 1 1 0 1 1 0)."""
        for case in VECTORS["leasttime-sequences"]:
            picker = LeastTime(case["weights"])
            got = [picker.next("") for _ in range(case["picks"])]
            self.assertEqual(got, case["expected"], case["description"])

    def test_deadlines(self) -> None:
        """Deadlines start staggered by 1/weight in server order, skipping weight 0, and the
        current deadline follows the latest one given."""
        picker = LeastTime([2, 0, 4])
        self.assertEqual((picker.deadlines, picker.current), ([0.5, 0.0, 0.75], 0.75))
        picker.next("")
        self.assertEqual((picker.deadlines, picker.current), ([1.0, 0.0, 0.75], 1.0))

    def test_score(self) -> None:
        """The score table: (average, in flight, weight) -> score."""
        table = [
            ([], 0, 1, 0.0),
            ([10], 0, 1, 10.0),
            ([10], 5, 1, 60.0),
            ([50], 0, 3, 50 / 3),
            ([15, 5], 1, 2, 10.0),
        ]
        for samples, inflight, weight, expected in table:
            picker = LeastTime([weight])
            for sample in samples:
                picker.load.times[0].add(sample)
            picker.load.inflight[0] = inflight
            self.assertEqual(picker.score(0), expected, (samples, inflight, weight))

    def test_single_server(self) -> None:
        """A single healthy server is returned without a tie-break (its deadline stays)."""
        picker = LeastTime([1, 1])
        self.assertEqual(picker.next("", lambda i: i == 1), 1)
        self.assertEqual(picker.deadlines, [1.0, 2.0])
