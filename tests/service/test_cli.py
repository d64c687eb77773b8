"""Tests for the `tsproxy` command line (tsproxy.cli): --version and what --help claims."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

from twisted.trial.unittest import SynchronousTestCase

from tsproxy import __version__
from tsproxy.cli import main


def run(*argv: str) -> tuple:
    """(exit status, stdout) of `tsproxy argv`; argparse's exits are caught."""
    out = io.StringIO()
    with redirect_stdout(out):
        try:
            status = main(list(argv))
        except SystemExit as e:
            status = e.code
    return status, out.getvalue()


class CommandLineTests(SynchronousTestCase):
    """The command answers --version and describes itself truthfully."""

    def test_version(self) -> None:
        """`tsproxy --version` and `tsproxy version` print the package version, status 0."""
        for argv in (("--version",), ("version",)):
            self.assertEqual(run(*argv), (0, "tsproxy %s\n" % (__version__,)))

    def test_help(self) -> None:
        """--help names every command and the demo's six backends."""
        status, text = run("--help")
        self.assertEqual(status, 0)
        for word in ("check", "route", "demo", "version", "six demo backends", "--version"):
            self.assertIn(word, " ".join(text.split()))

    def test_routeHelp(self) -> None:
        """`route --help` says how to ask about HTTPS, TCP and UDP entrypoints."""
        status, text = run("route", "--help")
        self.assertEqual(status, 0)
        flat = " ".join(text.split())
        for part in ("https://", "--sni", "TCP", "UDP"):
            self.assertIn(part, flat)
