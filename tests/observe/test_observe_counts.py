"""The dashboard's counts, from plain values."""

from __future__ import annotations

from typing import Any, List, Tuple

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.observe.counts import DashboardCounts

#: (exchanges as (entrypoint, routed, services, status), expected edges)
EDGE_CASES: List[Tuple[str, List[Tuple[str, bool, Tuple[str, ...], int]], Any]] = [
    ("one level has no edge", [("web", True, ("svc",), 200)], {}),
    (
        "a shared child counted under each parent",
        [
            ("web", True, ("wrr", "v1"), 200),
            ("web", True, ("wrr", "v2"), 200),
            ("web", True, ("cookie", "v1"), 200),
        ],
        {("wrr", "v1"): [1, 0], ("wrr", "v2"): [1, 0], ("cookie", "v1"): [1, 0]},
    ),
    (
        "nested services make one edge per level; 5xx counts as an error",
        [("web", True, ("outer", "wrr", "v2"), 502)],
        {("outer", "wrr"): [1, 1], ("wrr", "v2"): [1, 1]},
    ),
    ("a 4xx is not an error", [("web", True, ("a", "b"), 404)], {("a", "b"): [1, 0]}),
]


class DashboardCountsTests(SynchronousTestCase):
    """Per parent, per service, per entrypoint; reloads forget what is gone."""

    def test_edges(self) -> None:
        """Each (parent, child) pair on an exchange's path counts it once."""
        for name, exchanges, edges in EDGE_CASES:
            counts = DashboardCounts()
            for exchange in exchanges:
                counts.exchange(*exchange)
            self.assertEqual(counts.edges, edges, name)

    def test_entrypoints(self) -> None:
        """Requests per entrypoint, and those no router took."""
        counts = DashboardCounts()
        counts.exchange("web", True, ("a",), 200)
        counts.exchange("web", False, (), 404)
        counts.exchange("websecure", False, (), 404)
        self.assertEqual(counts.entrypoints, {"web": [2, 1], "websecure": [1, 1]})

    def test_mirrorAndSessions(self) -> None:
        """Mirrored copies per mirroring service (failed ones as errors); TCP and UDP
        sessions per service and per parent's child."""
        counts = DashboardCounts()
        counts.mirror_copy("mirror", 200)
        counts.mirror_copy("mirror", 0)
        counts.session("tcp", ("route", "g2"))
        counts.session("tcp", ("route", "g2"))
        counts.session("udp", ("echo",))
        self.assertEqual(counts.mirrored, {"mirror": [2, 1]})
        self.assertEqual(counts.sessions, {"tcp": {"route": 2, "g2": 2}, "udp": {"echo": 1}})
        self.assertEqual(counts.session_edges["tcp"], {("route", "g2"): 2})

    def test_keepOnly(self) -> None:
        """A reload's table decides: services, edges and sessions of what is gone go."""
        counts = DashboardCounts()
        counts.exchange("web", True, ("wrr", "v1"), 200)
        counts.exchange("web", True, ("wrr", "v2"), 200)
        counts.mirror_copy("gone", 200)
        counts.session("tcp", ("route", "g1"))
        counts.keep_only(http=("wrr", "v1"), tcp=("route",), udp=())
        self.assertEqual(counts.services, {"wrr": [2, 0], "v1": [1, 0]})
        self.assertEqual(counts.edges, {("wrr", "v1"): [1, 0]})
        self.assertEqual(counts.mirrored, {})
        self.assertEqual(counts.sessions["tcp"], {"route": 1})
        self.assertEqual(counts.session_edges["tcp"], {})
