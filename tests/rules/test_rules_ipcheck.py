"""Tests for tsproxy.rules.ipcheck: Go's IP and CIDR parsing and Traefik's ip.Checker."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.rules.ipcheck import build_checker, parse_cidr, parse_ip


class ParseTests(SynchronousTestCase):
    """Which strings are IPs and networks, as Go's net.ParseIP / ParseCIDR decide."""

    def test_ipv4(self) -> None:
        """Dotted quads without leading zeros."""
        self.assertEqual(parse_ip("10.0.0.1"), (4, 0x0A000001))
        for bad in ("010.0.0.1", "1.2.3", "256.0.0.1", "1.2.3.4.", " 1.2.3.4", "1"):
            self.assertIsNone(parse_ip(bad), bad)

    def test_ipv6(self) -> None:
        """IPv6 forms, no zones; IPv4-mapped addresses read as IPv4."""
        self.assertEqual(parse_ip("::1"), (6, 1))
        self.assertEqual(parse_ip("::ffff:10.0.0.1"), (4, 0x0A000001))
        for bad in ("fe80::1%eth0", "[::1]", ":::", "１::1"):
            self.assertIsNone(parse_ip(bad), bad)

    def test_cidr(self) -> None:
        """Host bits may be set; the prefix must fit the family."""
        network = parse_cidr("20.20.20.20/24")
        self.assertTrue(network.contains((4, 0x14141428)))  # type: ignore[union-attr]
        for bad in ("10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/a", "x/8", "10/8"):
            self.assertIsNone(parse_cidr(bad), bad)


class CheckerTests(SynchronousTestCase):
    """IPChecker membership."""

    def test_mixed(self) -> None:
        """Exact IPs and networks of both families."""
        checker, bad = build_checker(["10.0.0.1", "11::/16", "192.168.0.0/16"])
        self.assertEqual(bad, "")
        assert checker is not None
        self.assertTrue(checker.contains(parse_ip("10.0.0.1")))
        self.assertTrue(checker.contains(parse_ip("::ffff:10.0.0.1")))
        self.assertTrue(checker.contains(parse_ip("11:ff::1")))
        self.assertTrue(checker.contains(parse_ip("192.168.3.4")))
        self.assertFalse(checker.contains(parse_ip("10.0.0.2")))
        self.assertFalse(checker.contains(None))

    def test_familiesDoNotMix(self) -> None:
        """0.0.0.0/0 holds every IPv4 address and no IPv6 one, and ::/0 the reverse."""
        v4, _ = build_checker(["0.0.0.0/0"])
        v6, _ = build_checker(["::/0"])
        assert v4 is not None and v6 is not None
        self.assertFalse(v4.contains(parse_ip("::1")))
        self.assertFalse(v6.contains(parse_ip("1.2.3.4")))
        self.assertTrue(v6.contains(parse_ip("::1")))

    def test_firstBadValueReported(self) -> None:
        """The first value that is neither IP nor CIDR is returned."""
        self.assertEqual(build_checker(["1.2.3.4", "nope", "x"]), (None, "nope"))

    @given(st.integers(0, 2**32 - 1), st.integers(0, 32))
    def test_networkContainsItsAddresses(self, value: int, prefix: int) -> None:
        """A /n network built from an address contains that address."""
        text = ".".join(str((value >> shift) & 255) for shift in (24, 16, 8, 0))
        checker, _ = build_checker(["%s/%d" % (text, prefix)])
        assert checker is not None
        self.assertTrue(checker.contains(parse_ip(text)))
