"""Tests for tsproxy.balance.strategies: the picker each strategy value gives."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.strategyvectors import draws
from tsproxy.balance.hrw import hrw_choose
from tsproxy.balance.strategies import STRATEGIES, make_picker

URLS = ["http://10.0.0.1:80", "http://10.0.0.2:80", "http://10.0.0.3:80"]


class MakePickerTests(SynchronousTestCase):
    def test_table(self) -> None:
        """strategy -> (first picks for client 10.0.0.7, whether the engine feeds a load)."""
        expected_hrw = hrw_choose("10.0.0.7", URLS, [1, 1, 1])
        table = [
            ("wrr", [0, 1, 2, 0], False),
            ("p2c", [1, 0, 2, 1], True),
            ("hrw", [expected_hrw] * 4, False),
            ("leasttime", [0, 0, 1, 0], True),
        ]
        self.assertEqual([row[0] for row in table], list(STRATEGIES))
        for strategy, picks, loaded in table:
            picker = make_picker(strategy, URLS, [1, 1, 1], draws([1, 0, 0, 0, 2, 1, 1, 0]))
            self.assertEqual([picker.next("10.0.0.7") for _ in picks], picks, strategy)
            self.assertEqual(picker.load is not None, loaded, strategy)

    def test_wrr_weights(self) -> None:
        """wrr server weights -> picks: equal weights keep plain round robin, others Traefik's
        EDF (a tie to the server declared first), weight 0 never picked."""
        table = [
            ([1, 2], [1, 0, 1, 1, 0, 1, 1, 0, 1]),
            ([3, 1, 0], [0, 0, 0, 1, 0, 0, 0, 1]),
            ([1, 1, 1], [0, 1, 2, 0, 1, 2, 0, 1, 2]),
            ([1, 0, 1], [0, 2, 0, 2, 0, 2]),
            ([0, 0], [None, None]),
        ]
        for weights, picks in table:
            urls = URLS[: len(weights)]
            picker = make_picker("wrr", urls, weights, draws([]))
            self.assertEqual([picker.next("10.0.0.7") for _ in picks], picks, weights)

    def test_weights_reach_every_strategy(self) -> None:
        """hrw and leasttime never pick a server of weight 0 and hrw scores with the weights;
        p2c ignores weights (Traefik's p2c adds every server)."""
        hrw = make_picker("hrw", URLS, [0, 5, 1], draws([]))
        self.assertEqual(hrw.next("10.0.0.7"), hrw_choose("10.0.0.7", URLS, [0, 5, 1]))
        self.assertNotEqual(hrw.next("10.0.0.7"), 0)
        least = make_picker("leasttime", URLS, [0, 1, 1], draws([]))
        self.assertEqual([least.next("") for _ in range(4)], [1, 1, 2, 1])
        p2c = make_picker("p2c", URLS, [0, 0, 1], draws([0, 0, 1, 0]))
        self.assertEqual([p2c.next(""), p2c.next("")], [0, 1])

    def test_unknown(self) -> None:
        """Any other value is a ValueError (the config readers refuse it first)."""
        self.assertRaises(ValueError, make_picker, "RoundRobin", URLS, [1, 1, 1], draws([]))

    def test_hrw_available(self) -> None:
        """hrw passes over servers that are down: the client moves to its next best."""
        picker = make_picker("hrw", URLS, [1, 1, 1], draws([]))
        best = picker.next("10.0.0.7")
        assert best is not None
        moved = picker.next("10.0.0.7", lambda i: i != best)
        self.assertNotIn(moved, (best, None))
        self.assertEqual(moved, hrw_choose("10.0.0.7", URLS, [1, 1, 1], lambda i: i != best))
