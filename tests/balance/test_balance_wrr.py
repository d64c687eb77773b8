"""Tests for tsproxy.balance.wrr against Traefik's weighted round robin vectors."""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any, Optional

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.balance.wrr import EarliestDeadlineFirst, RoundRobin

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def vectors(group: str) -> list[dict[str, Any]]:
    with open(os.path.join(DATA, "services.json")) as stream:
        groups = json.load(stream)["groups"]
    return next(g for g in groups if g["id"] == group)["cases"]


with open(os.path.join(DATA, "wrr-tie-deviations.json")) as _stream:
    DEVIATIONS = {case["description"]: case for case in json.load(_stream)["cases"]}


def run(
    children: list[list[Any]], requests: int, down: Optional[dict[int, set[str]]] = None
) -> list[Optional[str]]:
    """Pick ``requests`` times; ``down`` maps a 1-based pick number to the children down from then."""
    names = [child[0] for child in children]
    balancer = EarliestDeadlineFirst([child[1] for child in children])
    picks: list[Optional[str]] = []
    unavailable: set[str] = set()

    def available(index: int) -> bool:
        return names[index] not in unavailable

    for number in range(1, requests + 1):
        unavailable.update((down or {}).get(number, ()))
        index = balancer.next(available)
        picks.append(None if index is None else names[index])
    return picks


def windows_match_weights(sequence: list[str], weights: dict[str, int]) -> bool:
    """Every full window of sum(weights) picks holds each child exactly weight times."""
    size = sum(weights.values())
    full = len(sequence) - len(sequence) % size
    return all(
        Counter(sequence[start : start + size]) == Counter(weights)
        for start in range(0, full, size)
    )


class SequenceVectorTests(SynchronousTestCase):
    """Exact pick orders from services.json, with the recorded tie-break deviations."""

    def cases(self) -> list[dict[str, Any]]:
        return [
            case
            for group in ("http-weighted-round-robin", "http-wrr-edf-derived-sequences")
            for case in vectors(group)
            if "sequence" in case["expected"]
        ]

    def test_sequences(self) -> None:
        """Each vector's sequence is reproduced, or differs exactly as recorded in tests/data."""
        self.assertEqual(len(self.cases()), 9)
        for case in self.cases():
            inputs = case["inputs"]
            children = inputs.get("children_in_insertion_order") or inputs["children"]
            expected = case["expected"]["sequence"]
            down = {
                int(number): {name}
                for number, (name, up) in inputs.get("setStatus_before_pick", {}).items()
                if not up
            }
            got = run(children, len(expected), down)
            deviation = DEVIATIONS.get(case["description"])
            if deviation is None:
                self.assertEqual(got, expected, case["description"])
            else:
                self.assertEqual(deviation["traefik"], expected, case["description"])
                self.assertEqual(got, deviation["tsproxy"], case["description"])
                self.assertNotEqual(got, expected)

    def test_deviationsKeepShares(self) -> None:
        """Where the tie-break differs, both orders give every child its weight in each cycle."""
        self.assertEqual(len(DEVIATIONS), 7)
        children = {
            case["description"]: case["inputs"].get("children_in_insertion_order")
            or case["inputs"]["children"]
            for case in self.cases()
        }
        for description, deviation in DEVIATIONS.items():
            weights = {name: weight for name, weight in children[description]}
            self.assertTrue(windows_match_weights(deviation["traefik"], weights), description)
            self.assertTrue(windows_match_weights(deviation["tsproxy"], weights), description)

    def test_seedSplit(self) -> None:
        """The seed's app-v1:app-v2 = 1:2 gives v2, v1, v2, v2, v1, v2, ..."""
        self.assertEqual(
            run([["v1", 1], ["v2", 2]], 9), ["v2", "v1", "v2", "v2", "v1", "v2", "v2", "v1", "v2"]
        )


class CountVectorTests(SynchronousTestCase):
    """Count and status vectors from Traefik's wrr_test.go."""

    def test_counts(self) -> None:
        """Requests split by weight; weight 0 is never picked; no children means no pick."""
        for case in vectors("http-weighted-round-robin"):
            inputs, expected = case["inputs"], case["expected"]
            if "counts" not in expected or "sticky_cookie" in inputs or "tree" in inputs:
                continue
            down = {1: {name for name, up in inputs.get("setStatus", []) if not up}}
            got = Counter(run(inputs["children"], inputs["requests"], down))
            self.assertEqual(got, Counter(expected["counts"]), case["description"])

    def test_nothingToPick(self) -> None:
        """No children, all weights 0, or all children down: no pick (the caller answers 503)."""
        descriptions = {"no children at all", "all children weight 0", "all children down"}
        cases = [
            c for c in vectors("http-weighted-round-robin") if c["description"] in descriptions
        ]
        self.assertEqual(len(cases), 3)
        for case in cases:
            inputs = case["inputs"]
            down = {1: {name for name, up in inputs.get("setStatus", []) if not up}}
            self.assertEqual(run(inputs["children"], inputs["requests"], down), [None])

    def test_downThenUp(self) -> None:
        """A child skipped while down gets its turns again once it is back up."""
        case = next(
            c for c in vectors("http-weighted-round-robin") if c["description"] == "down then up"
        )
        names = [child[0] for child in case["inputs"]["children"]]
        balancer = EarliestDeadlineFirst([child[1] for child in case["inputs"]["children"]])
        down: set[str] = set()
        for phase, expected in zip(case["inputs"]["phases"], case["expected"]["phase_counts"]):
            for name, up in phase["setStatus"]:
                (down.discard if up else down.add)(name)
            picks = [
                balancer.next(lambda i: names[i] not in down) for _ in range(phase["requests"])
            ]
            self.assertEqual(Counter(names[i] for i in picks if i is not None), Counter(expected))


class PropertyTests(SynchronousTestCase):
    """Shares hold exactly for any weights."""

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.integers(0, 12), min_size=1, max_size=6), st.integers(1, 3))
    def test_cycleShares(self, weights: list[int], cycles: int) -> None:
        """Every cycle of sum(weights) picks gives each child exactly its weight."""
        balancer = EarliestDeadlineFirst(weights)
        total = sum(weights)
        picks = [balancer.next() for _ in range(total * cycles)]
        if total == 0:
            self.assertIsNone(balancer.next())
            return
        names = [str(index) for index in range(len(weights))]
        sequence = [names[index] for index in picks if index is not None]
        shares = {names[index]: weight for index, weight in enumerate(weights) if weight}
        self.assertTrue(windows_match_weights(sequence, shares))

    def test_negativeWeight(self) -> None:
        """A negative weight is a programming error, refused at construction."""
        self.assertRaises(ValueError, EarliestDeadlineFirst, [1, -1])


class RoundRobinTests(SynchronousTestCase):
    """Server-level balancing: plain round robin in declaration order."""

    def test_order(self) -> None:
        """Servers come in declaration order, wrapping around."""
        balancer = RoundRobin(3)
        self.assertEqual([balancer.next() for _ in range(7)], [0, 1, 2, 0, 1, 2, 0])

    def test_empty(self) -> None:
        """No servers: no pick."""
        self.assertIsNone(RoundRobin(0).next())
