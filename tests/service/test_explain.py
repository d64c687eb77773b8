"""Tests for `tsproxy route` (tsproxy.explain and the CLI around it) on the shipped conf/."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stdout
from typing import List, Tuple

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.cli import main

CONF = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "conf"
)


def run(*argv: str) -> Tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        status = main(["route", "-c", CONF] + list(argv))
    return status, out.getvalue()


# (arguments, exit status, lines the output must contain)
CASES: List[Tuple[Tuple[str, ...], int, Tuple[str, ...]]] = [
    (
        ("GET", "http://traefikservice-wrr.kubesre.lc/"),
        0,
        (
            "rule      Host(`traefikservice-wrr.kubesre.lc`)",
            "priority  37",
            "service   default-app-wrr (weighted)",
            "├─ weight 1: default-app-v1-80 (load balancer)",
            "└─ weight 2: default-app-v2-80 (load balancer)",
            "└─ http://127.0.0.1:9001",
        ),
    ),
    (
        ("GET", "http://traefikservice-copy.kubesre.lc/a?b=c"),
        0,
        (
            "service   default-app-mirror (mirroring)",
            "└─ mirror 10%: default-app-v2-80 (load balancer)",
        ),
    ),
    (
        ("GET", "http://traefikservice-cokie.kubesre.lc/"),
        0,
        ("service   default-app-cookie (weighted sticky cookie 'cookie')",),
    ),
    (
        ("GET", "http://unknown.example/"),
        1,
        ("no router of entrypoint web matches: 404 page not found",),
    ),
    (("GET", "http://traefikservice-wrr.kubesre.lc/", "--entrypoint", "nope"), 1, ()),
]


class RouteCommandTests(SynchronousTestCase):
    """`tsproxy route` explains routing decisions without touching balancer state."""

    def test_table(self) -> None:
        """Each request names its router, rule, priority and service tree, or 404."""
        for argv, status, expected in CASES:
            got_status, text = run(*argv)
            self.assertEqual(got_status, status, (argv, text))
            for line in expected:
                self.assertIn(line, text, argv)

    def test_all(self) -> None:
        """--all lists every router in evaluation order with its verdict, the winner starred."""
        status, text = run("--all", "GET", "http://traefikservice-copy.kubesre.lc/")
        self.assertEqual(status, 0)
        lines = [line for line in text.splitlines() if "Host(" in line and "match" in line]
        self.assertEqual(len(lines), 3)
        starred = [line for line in lines if line.startswith("*")]
        self.assertEqual(len(starred), 1)
        self.assertIn("traefikservice-copy", starred[0])
        self.assertEqual(sum("no match" in line for line in lines), 2)

    def test_hostHeaderOverridesUrl(self) -> None:
        """A -H Host header routes instead of the URL's host, as curl -H does."""
        status, text = run(
            "GET", "http://127.0.0.1:8000/", "-H", "Host: traefikservice-wrr.kubesre.lc"
        )
        self.assertEqual(status, 0, text)
        self.assertIn("default-app-wrr", text)

    def test_badHeader(self) -> None:
        """A header without a colon is a usage error (status 2)."""
        status, _ = run("GET", "http://a/", "-H", "nocolon")
        self.assertEqual(status, 2)
