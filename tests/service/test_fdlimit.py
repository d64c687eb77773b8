"""The open-files budget: raising the soft limit (with a fake resource module) and how many
UDP sessions fit below it, table-driven."""

from __future__ import annotations

from typing import List, Optional, Tuple

from twisted.trial.unittest import TestCase

from tsproxy.fdlimit import UNLIMITED_TARGET, open_files, raise_open_files_limit, udp_session_budget

INFINITY = -1


class _Resource:
    """getrlimit/setrlimit over plain values; ``cap`` makes larger soft limits fail."""

    RLIMIT_NOFILE = 7
    RLIM_INFINITY = INFINITY

    def __init__(self, soft: int, hard: int, cap: Optional[int] = None) -> None:
        self.limits = (soft, hard)
        self.cap = cap
        self.calls: List[Tuple[int, int]] = []

    def getrlimit(self, which: int) -> Tuple[int, int]:
        assert which == self.RLIMIT_NOFILE
        return self.limits

    def setrlimit(self, which: int, limits: Tuple[int, int]) -> None:
        self.calls.append(limits)
        if self.cap is not None and limits[0] > self.cap:
            raise ValueError("not allowed")
        self.limits = limits


class RaiseLimitTests(TestCase):
    def test_table(self) -> None:
        """The soft limit goes up to the hard one (or 2**20 when unlimited), and is left
        as it is when the system refuses."""
        table = [
            # soft, hard, cap, expected soft
            (1024, 4096, None, 4096),
            (4096, 4096, None, 4096),
            (1024, INFINITY, None, UNLIMITED_TARGET),
            (1024, 1 << 30, 10240, 1024),
            (INFINITY, INFINITY, None, None),
        ]
        for soft, hard, cap, expected in table:
            resource = _Resource(soft, hard, cap)
            self.assertEqual(raise_open_files_limit(resource), expected, (soft, hard, cap))

    def test_noResourceModule(self) -> None:
        """Without a resource module (not POSIX) there is no limit to work with."""
        self.assertIsNone(raise_open_files_limit(None))

    def test_openFiles(self) -> None:
        """open_files counts this process's descriptors (one more once a file is open)."""
        before = open_files()
        with open(__file__):
            self.assertEqual(open_files(), before + 1 if before else 0)


class BudgetTests(TestCase):
    def test_table(self) -> None:
        """UDP sessions get what is free less a headroom for TCP: at least 256 (or half of
        what is free, if less is), a quarter of the limit if that is more; shared between
        the UDP entrypoints; never below one."""
        table = [
            # limit, in use, UDP entrypoints, sessions each
            (1024, 24, 1, 744),
            (1024, 24, 2, 372),
            (1 << 20, 30, 1, (1 << 20) - 30 - (1 << 18)),
            (300, 100, 1, 100),
            (100, 100, 1, 1),
            (100, 150, 1, 1),
            (20000, 50, 3, (20000 - 50 - 5000) // 3),
        ]
        for limit, in_use, udp, expected in table:
            self.assertEqual(udp_session_budget(limit, in_use, udp), expected, (limit, in_use, udp))
