"""Tests for tsproxy.balance.p2c: two random draws, fewer in flight wins."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.strategyvectors import VECTORS, draws
from tsproxy.balance.p2c import PowerOfTwoChoices, p2c_pick


class PickTests(SynchronousTestCase):
    def test_vectors(self) -> None:
        """Every p2c case of tests/data/strategies-traefik.json (Traefik's TestP2C table and
        derived rows): in-flight counts, servers down and the draws give the server."""
        for case in VECTORS["p2c"]:
            down = set(case["down"])
            healthy = [i for i in range(len(case["inflight"])) if i not in down]
            got = p2c_pick(healthy, case["inflight"], draws(case["rand"]))
            self.assertEqual(got, case["expected"], case["description"])

    def test_draws(self) -> None:
        """The first draw is over every healthy server, the second over one fewer."""
        seen = []

        def randint(n: int) -> int:
            seen.append(n)
            return 0

        p2c_pick([0, 1, 2, 3], [0, 0, 0, 0], randint)
        self.assertEqual(seen, [4, 3])

    def test_weights_unused(self) -> None:
        """The picker reads in-flight counts only: the lower count wins whatever the order."""
        picker = PowerOfTwoChoices.of(2, draws([0, 0, 1, 0]))
        picker.load.inflight[:] = [4, 1]
        self.assertEqual([picker.next("10.0.0.1"), picker.next("10.0.0.1")], [1, 1])

    def test_available(self) -> None:
        """Servers ``available`` says are down are never drawn; none up gives None."""
        picker = PowerOfTwoChoices.of(3, draws([1, 0]))
        self.assertEqual(picker.next("", lambda i: i != 0), 2)
        self.assertIsNone(picker.next("", lambda i: False))
