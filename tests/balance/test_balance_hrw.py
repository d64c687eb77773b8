"""Tests for tsproxy.balance.hrw: FNV-1a 64, and rendezvous choice on the client IP."""

from __future__ import annotations

import json
import math
import os
from collections import Counter

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.balance.hrw import fnv1a64, hrw_choose, hrw_score

NAMES = ["default-app-v1-80", "default-app-v2-80", "default-app-v3-80"]
IPS = ["10.0.%d.%d" % (i // 250, i % 250) for i in range(2000)]


class FNVTests(SynchronousTestCase):
    def test_reference_values(self) -> None:
        """The FNV-1a 64 sums of the FNV reference strings, as Go's hash/fnv gives them."""
        table = [
            (b"", 0xCBF29CE484222325),
            (b"a", 0xAF63DC4C8601EC8C),
            (b"foobar", 0x85944171F73967E8),
        ]
        for data, expected in table:
            self.assertEqual(fnv1a64(data), expected, data)


class ChooseTests(SynchronousTestCase):
    def test_table(self) -> None:
        """(client IP, weights, children down) -> the child chosen; None when none can be."""
        table = [
            ("10.0.0.1", [1, 1, 1], set(), 0),
            ("10.0.0.2", [1, 1, 1], set(), 2),
            ("::1", [1, 1, 1], set(), 0),
            ("10.0.0.1", [1, 2, 3], set(), 2),
            (
                "10.0.0.1",
                [1, 1, 1],
                {0},
                1 if hrw_score("10.0.0.1", NAMES[1], 1) > hrw_score("10.0.0.1", NAMES[2], 1) else 2,
            ),
            ("10.0.0.1", [0, 1, 1], set(), hrw_choose("10.0.0.1", NAMES[1:], [1, 1]) + 1),  # type: ignore[operator]
            ("10.0.0.1", [1, 1, 1], {0, 1, 2}, None),
            ("10.0.0.1", [0, 0, 0], set(), None),
        ]
        for ip, weights, down, expected in table:
            got = hrw_choose(ip, NAMES, weights, lambda index, down=down: index not in down)  # type: ignore[misc]
            self.assertEqual(got, expected, (ip, weights, down))

    def test_score_formula(self) -> None:
        """The score is weight / -ln(fnv1a64(ip + name) / 2**64), as Traefik computes it."""
        share = fnv1a64(b"10.0.0.1default-app-v1-80") / 2.0**64
        self.assertAlmostEqual(hrw_score("10.0.0.1", NAMES[0], 3), 3 / -math.log(share))

    def test_stable_and_minimal_movement(self) -> None:
        """One IP always gets the same child; a child going down moves only its own IPs."""
        before = {ip: hrw_choose(ip, NAMES, [1, 1, 1]) for ip in IPS}
        self.assertEqual(before, {ip: hrw_choose(ip, NAMES, [1, 1, 1]) for ip in IPS})
        after = {ip: hrw_choose(ip, NAMES, [1, 1, 1], lambda index: index != 1) for ip in IPS}
        moved = {ip for ip in IPS if before[ip] != after[ip]}
        self.assertEqual(moved, {ip for ip in IPS if before[ip] == 1})

    def test_weights_share(self) -> None:
        """A child's share of the IPs grows with its weight. (FNV-1a over IP + name is not a
        uniform hash, so the shares are not exactly proportional, in Traefik either.)"""
        shares = []
        for weight in (1, 2, 4, 8):
            counts = Counter(hrw_choose(ip, NAMES, [1, 1, weight]) for ip in IPS)
            shares.append(counts[2] / len(IPS))
        self.assertEqual(shares, sorted(shares))
        self.assertGreater(shares[-1], 0.7, shares)
        self.assertLess(shares[0], 0.5, shares)


class TraefikRunTests(SynchronousTestCase):
    def test_same_choices_as_traefik(self) -> None:
        """For 20 client IPs, the child real Traefik 3.7 chose (tests/data/hrw-traefik.json)."""
        with open(
            os.path.join(
                os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                "data",
                "hrw-traefik.json",
            )
        ) as f:
            recorded = json.load(f)
        names = [name for name, _ in recorded["children"]]
        weights = [weight for _, weight in recorded["children"]]
        for case in recorded["cases"]:
            chosen = hrw_choose(case["client_ip"], names, weights)
            self.assertEqual(names[chosen], case["chosen"], case["client_ip"])  # type: ignore[index]
