"""Tests for tsproxy.logs: the one line format, log.level over every event, readable addresses."""

from __future__ import annotations

import io
import json
import re
from typing import Any, Dict, List, Tuple

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.logger import LogLevel, eventAsJSON, eventFromJSON
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.logs import apply_log_level, format_address, format_line, log_observer

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ")


def event(text: str, level: Any = LogLevel.info, namespace: str = "tsproxy.x") -> Dict[str, Any]:
    return {
        "log_format": "{text}",
        "text": text,
        "log_level": level,
        "log_namespace": namespace,
        "log_time": 1796000000.25,
    }


def legacy(text: str) -> Dict[str, Any]:
    """An event as twisted.python.log.msg publishes it (no format, namespace log_legacy)."""
    return {
        "message": (text,),
        "log_format": "{log_text}",
        "log_text": text,
        "log_level": LogLevel.info,
        "log_namespace": "log_legacy",
        "log_system": "-",
        "log_time": 1796000000.0,
    }


class FormatAddressTests(SynchronousTestCase):
    """Addresses are written as Traefik writes them."""

    def test_table(self) -> None:
        """IPv4, IPv6 in brackets, /udp for UDP, a bare host."""
        cases: List[Tuple[Any, str]] = [
            (IPv4Address("TCP", "127.0.0.1", 8000), "127.0.0.1:8000"),
            (IPv4Address("UDP", "127.0.0.1", 5300), "127.0.0.1:5300/udp"),
            (IPv6Address("TCP", "::1", 8443), "[::1]:8443"),
            ("somewhere", "somewhere"),
        ]
        for address, expected in cases:
            self.assertEqual(format_address(address), expected)


class FormatLineTests(SynchronousTestCase):
    """Every event becomes one line with a time in milliseconds and a level."""

    def test_levels(self) -> None:
        """Each Twisted level is written with Traefik's name; chatter is DEBUG."""
        cases = [
            (event("a"), "INFO  a"),
            (event("b", LogLevel.debug), "DEBUG b"),
            (event("c", LogLevel.warn), "WARN  c"),
            (event("d", LogLevel.error), "ERROR d"),
            (event("e", LogLevel.critical), "FATAL e"),
            (legacy("Site starting on 9001"), "DEBUG Site starting on 9001"),
            (legacy("(TCP Port 8000 Closed)"), "DEBUG (TCP Port 8000 Closed)"),
            (legacy("(UDP Port 5300 Closed)"), "DEBUG (UDP Port 5300 Closed)"),
            (
                event("Starting factory _HTTP11ClientFactory(<f>)", namespace="twisted.web"),
                "DEBUG Starting factory _HTTP11ClientFactory(<f>)",
            ),
            (legacy("Main loop terminated."), "INFO  Main loop terminated."),
            # Our own INFO lines are never taken for chatter.
            (event("Starting factory x"), "INFO  Starting factory x"),
        ]
        for given, expected in cases:
            line = format_line(given)
            self.assertRegex(line, TIME)
            self.assertEqual(line[30:], expected + "\n", given)
            self.assertIn(".250" if given.get("text") else ".000", line[:30])

    def test_json(self) -> None:
        """log.format json: one object per event with level, time, logger and message."""
        record = json.loads(format_line(event("hello", LogLevel.warn), "json"))
        self.assertEqual(
            (record["level"], record["logger"], record["message"]), ("warn", "tsproxy.x", "hello")
        )
        self.assertRegex(record["time"] + " ", TIME)

    def test_failure(self) -> None:
        """A logged failure's traceback follows the text line, or is the JSON error field."""
        try:
            raise ValueError("boom")
        except ValueError:
            failed = dict(event("it failed", LogLevel.critical), log_failure=Failure())
        text = format_line(failed)
        self.assertIn("FATAL it failed\n", text)
        self.assertIn("ValueError: boom", text)
        self.assertIn("ValueError: boom", json.loads(format_line(failed, "json"))["error"])

    def test_roundTrippedEvent(self) -> None:
        """An event that went through Twisted's JSON form still formats."""
        line = format_line(eventFromJSON(eventAsJSON(event("kept"))))
        self.assertTrue(line.endswith("INFO  kept\n"), line)


class ObserverTests(SynchronousTestCase):
    """log.level and log.format apply to every event the observer sees."""

    def tearDown(self) -> None:
        apply_log_level("INFO", "common")

    def test_levelFiltersEveryone(self) -> None:
        """At ERROR, INFO and WARN lines of any namespace are dropped, errors kept; at DEBUG,
        Twisted's chatter shows."""
        out = io.StringIO()
        observe = log_observer(out)
        apply_log_level("ERROR")
        for given in (
            event("ours"),
            event("twisted's", namespace="twisted.internet.base"),
            legacy("legacy"),
            event("warned", LogLevel.warn),
            event("broken", LogLevel.error, namespace="twisted.web"),
        ):
            observe(given)
        self.assertEqual([line[30:] for line in out.getvalue().splitlines()], ["ERROR broken"])
        apply_log_level("DEBUG")
        observe(legacy("Site starting on 9001"))
        self.assertIn("DEBUG Site starting on 9001", out.getvalue())

    def test_formatSwitches(self) -> None:
        """apply_log_level with a format switches the lines to JSON and back."""
        out = io.StringIO()
        observe = log_observer(out)
        apply_log_level("INFO", "json")
        observe(event("one"))
        apply_log_level("INFO", "common")
        observe(event("two"))
        first, second = out.getvalue().splitlines()
        self.assertEqual(json.loads(first)["message"], "one")
        self.assertTrue(second.endswith("INFO  two"))
