"""Tests for tsproxy.balance.mirror against Traefik's mirroring vectors."""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.balance.mirror import MirrorCounter, check_percent

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def vectors(group: str) -> list[dict[str, Any]]:
    with open(os.path.join(DATA, "services.json")) as stream:
        groups = json.load(stream)["groups"]
    return next(g for g in groups if g["id"] == group)["cases"]


class MirrorCounterTests(SynchronousTestCase):
    """Which requests go to which mirror."""

    def test_requestNumbers(self) -> None:
        """The derived vectors: 10% mirrors 1, 11, 21; 33% mirrors 1, 4, 7, 10; 0% never."""
        cases = [
            c for c in vectors("mirroring") if "mirrored_request_numbers_1_based" in c["expected"]
        ]
        self.assertEqual(len(cases), 7)
        for case in cases:
            counter = MirrorCounter([case["inputs"]["percent"]])
            numbers = [t for t in range(1, case["inputs"]["requests"] + 1) if counter.next()]
            self.assertEqual(
                numbers, case["expected"]["mirrored_request_numbers_1_based"], case["description"]
            )
            self.assertEqual(counter.counts, [case["expected"]["count"]])

    def test_sharedCounter(self) -> None:
        """TestMirroringOn10/On100: one request counter for all mirrors, one count each."""
        cases = [c for c in vectors("mirroring") if "mirrored_counts" in c["expected"]]
        self.assertEqual(len(cases), 2)
        for case in cases:
            counter = MirrorCounter(case["inputs"]["mirrors"])
            fired = [counter.next() for _ in range(case["inputs"]["requests"])]
            counts = [
                sum(index in f for f in fired) for index in range(len(case["inputs"]["mirrors"]))
            ]
            self.assertEqual(counts, case["expected"]["mirrored_counts"], case["description"])
            self.assertEqual(counter.total, case["inputs"]["requests"])

    def test_firedIndexesInOrder(self) -> None:
        """A request copied to several mirrors lists them in configuration order."""
        counter = MirrorCounter([100, 0, 50])
        self.assertEqual([counter.next() for _ in range(3)], [(0, 2), (0,), (0, 2)])

    def test_percentValidation(self) -> None:
        """TestInvalidPercent: -1 and 101 are refused, 0 and 100 accepted."""
        case = next(c for c in vectors("mirroring") if c["description"] == "percent validation")
        for percent, error in zip(case["inputs"]["percents"], case["expected"]["errors"]):
            if error:
                self.assertRaises(ValueError, check_percent, percent)
                self.assertRaises(ValueError, MirrorCounter, [percent])
            else:
                self.assertEqual(check_percent(percent), percent)
        self.assertRaises(ValueError, check_percent, True)

    @given(st.integers(0, 100), st.integers(1, 400))
    def test_ceilShare(self, percent: int, requests: int) -> None:
        """After t requests exactly ceil(t * percent / 100) were mirrored."""
        counter = MirrorCounter([percent])
        for _ in range(requests):
            counter.next()
        self.assertEqual(counter.counts[0], -(-requests * percent // 100))
