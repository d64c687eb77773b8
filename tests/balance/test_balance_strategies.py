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
