"""The access log: Traefik's common and JSON lines, field modes, buffering and reopening."""

from __future__ import annotations

import json
import os
import time
from typing import Any, List

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.observefixture import exchange
from tsproxy.config.static import AccessLogConfig, AccessLogFields
from tsproxy.observe.accesslog import (
    AccessLog,
    FieldModes,
    canonical_header,
    common_line,
    json_line,
)

ROUTER = "default-app-wrr-846b2c19626676e0a8ba@kubernetescrd"
KEEP_HEADERS = AccessLogFields(headers_default_mode="keep")


def modes(**kwargs: Any) -> FieldModes:
    return FieldModes(AccessLogFields(**kwargs))


class CanonicalHeaderTests(SynchronousTestCase):
    """Header names as Go canonicalises them."""

    def test_table(self) -> None:
        """Words capitalised at dashes; names with non-token bytes unchanged."""
        cases = [
            ("user-agent", "User-Agent"),
            ("REFERER", "Referer"),
            ("x-forwarded-for", "X-Forwarded-For"),
            ("content-md5", "Content-Md5"),
            ("bad header", "bad header"),
            ("", ""),
        ]
        for name, canonical in cases:
            self.assertEqual(canonical_header(name), canonical)


class CommonFormatTests(SynchronousTestCase):
    """Traefik's CommonLogFormatter, field for field."""

    def test_table(self) -> None:
        """Quoting, '-' defaults and field modes give Traefik's exact lines."""
        stamp = '10.0.0.1 - - [10/Nov/2009:23:00:00 +0000] "GET /foo?x=1 HTTP/1.1"'
        tail = '"%s" "http://10.0.0.2:8080" 250ms\n' % ROUTER
        cases = [
            (exchange(), modes(), '%s 200 13 "-" "-" 7 %s' % (stamp, tail)),
            (
                exchange(),
                FieldModes(KEEP_HEADERS),
                '%s 200 13 "referer" "agent" 7 %s' % (stamp, tail),
            ),
            (
                exchange(),
                modes(headers_default_mode="keep", headers=(("user-agent", "redact"),)),
                '%s 200 13 "referer" "REDACTED" 7 %s' % (stamp, tail),
            ),
            (
                exchange(router="", services=(), server_url="", status=404, response_bytes=19),
                modes(),
                '%s 404 19 "-" "-" 7 "-" "-" 250ms\n' % stamp,
            ),
            (
                exchange(),
                modes(names=(("clienthost", "drop"), ("RouterName", "drop"))),
                '- - - [10/Nov/2009:23:00:00 +0000] "GET /foo?x=1 HTTP/1.1" 200 13 "-" "-" 7'
                ' "-" "http://10.0.0.2:8080" 250ms\n',
            ),
            (
                exchange(duration=123.0009),
                modes(default_mode="drop", names=(("Duration", "keep"),)),
                '- - - [-] "- - -" - - "-" "-" - "-" "-" 123000ms\n',
            ),
            (
                exchange(trusted=True, headers=[(b"X-Forwarded-For", b"192.0.2.7")]),
                modes(),
                '192.0.2.7 - - [10/Nov/2009:23:00:00 +0000] "GET /foo?x=1 HTTP/1.1" 200 13'
                ' "-" "-" 7 %s' % tail,
            ),
            (
                exchange(trusted=False, headers=[(b"X-Forwarded-For", b"192.0.2.7")]),
                modes(),
                '%s 200 13 "-" "-" 7 %s' % (stamp, tail),
            ),
        ]
        for rec, field_modes, expected in cases:
            self.assertEqual(common_line(rec, 7, field_modes), expected)
            # The default modes' shortcut writes what the general path writes.
            general = FieldModes(AccessLogFields(names=(("unused", "keep"),)))
            if field_modes.plain:
                self.assertFalse(general.plain)
                self.assertEqual(common_line(rec, 7, general), expected)

    def test_localTime(self) -> None:
        """With StartUTC dropped, StartLocal is written in the local zone."""
        old = os.environ.get("TZ")

        def restore() -> None:
            if old is None:
                os.environ.pop("TZ", None)
            else:
                os.environ["TZ"] = old
            time.tzset()

        self.addCleanup(restore)
        os.environ["TZ"] = "Etc/GMT+9"
        time.tzset()
        line = common_line(exchange(), 1, modes(names=(("StartUTC", "drop"),)))
        self.assertIn("[10/Nov/2009:14:00:00 -0900]", line)


class JSONFormatTests(SynchronousTestCase):
    """Traefik's JSON lines: its field names, types and modes."""

    def test_fields(self) -> None:
        """Every core field with Traefik's name and Go's types."""
        line = json_line(exchange(), 7, modes())
        self.assertTrue(line.endswith("\n"))
        entry = json.loads(line)
        expected = {
            "StartUTC": "2009-11-10T23:00:00Z",
            "Duration": 250000000,
            "OriginDuration": 200000000,
            "Overhead": 50000000,
            "RouterName": ROUTER,
            "ServiceName": "default-app-v1-80@kubernetescrd",
            "ServiceURL": "http://10.0.0.2:8080",
            "ServiceAddr": "10.0.0.2:8080",
            "ClientAddr": "10.0.0.1:51234",
            "ClientHost": "10.0.0.1",
            "ClientPort": "51234",
            "ClientUsername": "-",
            "RequestAddr": "traefikservice-wrr.kubesre.lc",
            "RequestHost": "traefikservice-wrr.kubesre.lc",
            "RequestPort": "-",
            "RequestMethod": "GET",
            "RequestPath": "/foo?x=1",
            "RequestProtocol": "HTTP/1.1",
            "RequestScheme": "http",
            "RequestContentSize": 0,
            "OriginStatus": 200,
            "OriginContentSize": 13,
            "DownstreamStatus": 200,
            "DownstreamContentSize": 13,
            "RequestCount": 7,
            "RetryAttempts": 0,
            "entryPointName": "web",
            "level": "info",
            "msg": "",
        }
        for key, value in expected.items():
            self.assertEqual(entry[key], value, key)
        self.assertEqual(
            set(entry) - set(expected), {"StartLocal", "time"}, "no header field by default"
        )

    def test_table(self) -> None:
        """Field and header modes decide which keys appear, and how."""
        cases = [
            (
                exchange(router="", services=(), server_url="", status=404),
                modes(),
                {"DownstreamStatus": 404},
                {"RouterName", "ServiceName", "ServiceURL", "OriginStatus", "OriginDuration"},
            ),
            (
                exchange(status=502, origin_status=0, tls=True),
                modes(),
                {"OriginStatus": 502, "DownstreamStatus": 502, "RequestScheme": "https"},
                set(),
            ),
            (
                exchange(),
                FieldModes(KEEP_HEADERS),
                {
                    "request_User-Agent": "agent",
                    "request_Referer": "referer",
                    "origin_Content-Type": "text/plain",
                    "downstream_Content-Type": "text/plain",
                },
                {"request_Host"},
            ),
            (
                exchange(headers=[(b"Authorization", b"secret"), (b"x-a", b"1"), (b"X-A", b"2")]),
                modes(headers=(("authorization", "redact"), ("X-A", "keep"))),
                {"request_Authorization": "REDACTED", "request_X-A": "1,2"},
                {"origin_Content-Type"},
            ),
            (
                exchange(),
                modes(default_mode="drop", names=(("requestpath", "keep"),)),
                {"RequestPath": "/foo?x=1", "level": "info"},
                {"StartUTC", "Duration", "RouterName", "DownstreamStatus"},
            ),
            (
                exchange(headers=[(b"Host", b"[::1]:8443")], client_ip="::1"),
                modes(),
                {"RequestHost": "::1", "RequestPort": "8443", "ClientAddr": "[::1]:51234"},
                set(),
            ),
            (
                exchange(target=b"http://example.com/a?b"),
                modes(),
                {"RequestPath": "/a?b"},
                set(),
            ),
        ]
        for rec, field_modes, present, absent in cases:
            entry = json.loads(json_line(rec, 1, field_modes))
            for key, value in present.items():
                self.assertEqual(entry.get(key), value, key)
            self.assertEqual(absent & set(entry), set())

    def test_goEscapes(self) -> None:
        """<, > and & are escaped as Go's encoder does; other text stays UTF-8."""
        line = json_line(exchange(target="/<é>&".encode()), 1, modes())
        self.assertIn('"RequestPath":"/\\u003cé\\u003e\\u0026"', line)
        self.assertEqual(json.loads(line)["RequestPath"], "/<é>&")


class WritingTests(SynchronousTestCase):
    """Buffering on the clock, the writer thread, reopening."""

    def open(self, **kwargs: Any) -> AccessLog:
        self.path = os.path.join(self.mktemp(), "logs", "access.log")
        self.clock = Clock()
        access_log = AccessLog(AccessLogConfig(file_path=self.path, **kwargs), self.clock)
        self.addCleanup(access_log.close)
        return access_log

    def written(self, access_log: AccessLog, path: str = "") -> List[str]:
        """Lines in the file once the writer has done what it was handed (no flush)."""
        assert access_log.writer is not None
        access_log.writer.queue.join()
        with open(path or self.path) as f:
            return f.read().splitlines()

    def test_unbuffered(self) -> None:
        """bufferingSize 0: lines are written within UNBUFFERED_DELAY, a burst together."""
        from tsproxy.observe.accesslog import UNBUFFERED_DELAY

        access_log = self.open()
        for _ in range(3):
            access_log.log(exchange())
        self.clock.advance(UNBUFFERED_DELAY / 2)
        self.assertEqual(self.written(access_log), [])
        self.clock.advance(UNBUFFERED_DELAY / 2)
        lines = self.written(access_log)
        self.assertEqual([line.split()[12] for line in lines], ["1", "2", "3"])

    def test_buffered(self) -> None:
        """bufferingSize N: written at N lines, or when a line has waited a second."""
        access_log = self.open(buffering_size=3)
        access_log.log(exchange())
        access_log.log(exchange())
        self.assertEqual(self.written(access_log), [])
        access_log.log(exchange())
        self.assertEqual(len(self.written(access_log)), 3)
        access_log.log(exchange())
        self.clock.advance(0.9)
        self.assertEqual(len(self.written(access_log)), 3)
        self.clock.advance(0.1)
        self.assertEqual(len(self.written(access_log)), 4)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_json(self) -> None:
        """format json writes one JSON document per line."""
        access_log = self.open(format="json")
        access_log.log(exchange(status=503, server_url=""))
        access_log.sync()
        (line,) = self.written(access_log)
        self.assertEqual(json.loads(line)["DownstreamStatus"], 503)

    def test_reopen(self) -> None:
        """After a rename and reopen, new lines go to a new file at the path."""
        access_log = self.open()
        access_log.log(exchange(status=200))
        access_log.sync()
        rotated = self.path + ".1"
        os.rename(self.path, rotated)
        access_log.reopen()
        access_log.log(exchange(status=404))
        access_log.sync()
        self.assertEqual([line.split()[8] for line in self.written(access_log, rotated)], ["200"])
        self.assertEqual([line.split()[8] for line in self.written(access_log)], ["404"])

    def test_closeWritesTheRest(self) -> None:
        """close writes the lines still buffered and stops the thread."""
        access_log = self.open(buffering_size=100)
        access_log.log(exchange())
        writer = access_log.writer
        assert writer is not None
        access_log.close()
        self.assertFalse(writer.thread.is_alive())
        with open(self.path) as f:
            self.assertEqual(len(f.read().splitlines()), 1)

    def test_closeWithStuckWriter(self) -> None:
        """A destination that stops taking writes (a pipe nobody reads): requests are not held
        up (full batches are dropped) and close gives up instead of hanging the shutdown."""
        import threading

        from tsproxy.observe import accesslog

        access_log = self.open()
        writer = access_log.writer
        assert writer is not None
        release = threading.Event()
        entered = threading.Event()

        def stuck(data: bytes) -> None:
            entered.set()
            release.wait(30)

        writer._write = stuck  # type: ignore[method-assign]
        self.addCleanup(release.set)
        access_log.log(exchange())
        self.clock.advance(accesslog.UNBUFFERED_DELAY)
        self.assertTrue(entered.wait(10))
        for _ in range(accesslog.MAX_PENDING_BATCHES + 5):
            access_log.log(exchange())
            # One batch per flush; past the queue's size they are dropped.
            self.clock.advance(accesslog.UNBUFFERED_DELAY)
        self.assertFalse(access_log.sync(timeout=0.05))
        access_log.close(timeout=0.05)  # returns: the stuck thread is left behind
        self.assertTrue(writer.thread.is_alive())
        release.set()
        writer.queue.put(accesslog._STOP)
        writer.thread.join(10)
        self.assertFalse(writer.thread.is_alive())

    def test_unwritablePath(self) -> None:
        """A path that cannot be opened fails at once."""
        blocker = self.mktemp()
        with open(blocker, "w"):
            pass
        config = AccessLogConfig(file_path=os.path.join(blocker, "access.log"))
        self.assertRaises(OSError, AccessLog, config, Clock())
