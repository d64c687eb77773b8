"""RepeatedError: the first of a run of errors at once, the rest as one counted line per
interval, on a fake clock."""

from __future__ import annotations

from typing import Any, List, Tuple

from twisted.internet.task import Clock
from twisted.logger import formatEvent
from twisted.trial.unittest import TestCase

from tsproxy.repeated import RepeatedError


class _Log:
    """Records warn() calls as formatted lines."""

    def __init__(self) -> None:
        self.lines: List[str] = []

    def warn(self, format: str, **fields: Any) -> None:
        self.lines.append(formatEvent(dict(fields, log_format=format)))

    def debug(self, format: str, **fields: Any) -> None:
        self.lines.append("debug: " + formatEvent(dict(fields, log_format=format)))


# (what happens: "e" an error, a number: seconds passing, "stop"), the lines logged.
TABLE: List[Tuple[str, Tuple[Any, ...], List[str]]] = [
    ("one error, one line", ("e",), ["port web: boom"]),
    (
        "a burst: the first, then a count when the interval ends",
        ("e", "e", "e", 10),
        ["port web: boom", "port web: boom (2 more times in 10 s)"],
    ),
    ("a quiet interval logs nothing more", ("e", 10, 10, 10), ["port web: boom"]),
    (
        "after a quiet interval, the next error is logged at once again",
        ("e", 10, "e"),
        ["port web: boom", "port web: boom"],
    ),
    (
        "an error that goes on: one line per interval",
        ("e", "e", 10, "e", "e", "e", 10),
        [
            "port web: boom",
            "port web: boom (1 more times in 10 s)",
            "port web: boom (3 more times in 10 s)",
        ],
    ),
    (
        "stop logs what is counted",
        ("e", "e", "stop"),
        ["port web: boom", "port web: boom (1 more times)"],
    ),
]


class RepeatedErrorTests(TestCase):
    def test_table(self) -> None:
        """Each sequence of errors and time logs exactly the lines in the table."""
        for name, steps, expected in TABLE:
            clock, log = Clock(), _Log()
            error = RepeatedError(clock, log, "port {name}: {error}", name="web")
            for step in steps:
                if step == "e":
                    error("boom")
                elif step == "stop":
                    error.stop()
                else:
                    clock.advance(step)
            self.assertEqual(log.lines, expected, name)
            error.stop()
            self.assertEqual(clock.getDelayedCalls(), [], name)

    def test_flood(self) -> None:
        """100,000 errors in a second make two lines, with the count."""
        clock, log = Clock(), _Log()
        error = RepeatedError(clock, log, "{error}")
        for _ in range(100000):
            error("EMFILE")
        clock.advance(10)
        self.assertEqual(log.lines, ["EMFILE", "EMFILE (99999 more times in 10 s)"])
        self.assertEqual(error.total, 100000)

    def test_level(self) -> None:
        """``level`` picks the logger's method (debug for drops a flood makes by design)."""
        clock, log = Clock(), _Log()
        error = RepeatedError(clock, log, "{error}", level="debug")
        error("dropped")
        error("dropped")
        error.stop()
        self.assertEqual(log.lines, ["debug: dropped", "debug: dropped (1 more times)"])
