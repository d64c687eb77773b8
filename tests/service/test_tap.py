"""The installed `twistd -n tsproxy -c DIR`, run as a subprocess and used over HTTP.

It also streams 64 MiB each way through that process and reads its peak memory, which
shows bodies are streamed rather than held.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from io import BytesIO
from typing import Any, List, Sequence

import treq
from twisted.internet import defer, reactor
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import FileBodyProducer

from tests.proxyfixture import ProxyTestCase, free_port
from tsproxy.tap import Options, worker_count

BIG = 64 * 1024 * 1024
#: One text log line: local time with milliseconds and offset, level, message.
LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (DEBUG|INFO |WARN |ERROR|FATAL) \S"
)
#: How much the proxy's peak RSS may grow while streaming BIG both ways. Holding a body would
#: add 64 MiB; PyPy's collector lets garbage grow further between collections than CPython.
STREAM_GROWTH_KIB = (48 if sys.implementation.name == "pypy" else 24) * 1024


class _Collect(ProcessProtocol):
    def __init__(self) -> None:
        self.output: List[bytes] = []
        self.ended: defer.Deferred = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output.append(data)

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(reason.value)


def peak_rss_kib(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for %d" % pid)


@defer.inlineCallbacks
def spawn_proxy(test: ProxyTestCase, argv: Sequence[str], url: str, host: str) -> Any:
    """Run the installed `argv -c <test's config dir>` (twistd or twist) and wait, bounded
    (~15 s), until `url` answers a request for `host`; returns (transport, protocol,
    response, body)."""
    program = os.path.join(os.path.dirname(sys.executable), argv[0])
    if not os.path.exists(program):
        test.skipTest(argv[0] + " is not installed next to " + sys.executable)
    proc = _Collect()
    workdir = test.mktemp()
    os.makedirs(workdir)
    transport = reactor.spawnProcess(
        proc,
        program,
        [program] + list(argv[1:]) + ["-c", os.path.abspath(test.config_dir)],
        env=dict(os.environ),
        path=workdir,
    )
    test.addCleanup(lambda: transport.pid and transport.signalProcess("KILL"))
    for _ in range(300):  # up to ~15 s for the interpreter to start
        try:
            response = yield treq.get(url, headers={"Host": [host]}, agent=test.agent)
            body = yield treq.content(response)
            break
        except Exception:
            if proc.ended.called:
                test.fail(b"".join(proc.output).decode(errors="replace"))
            yield deferLater(reactor, 0.05, lambda: None)
    else:
        test.fail("no answer:\n" + b"".join(proc.output).decode(errors="replace"))
    return transport, proc, response, body


class TwistdTests(ProxyTestCase):
    """`twistd -n --pidfile= tsproxy -c DIR` from the installed package."""

    timeout = 120

    @defer.inlineCallbacks
    def start(self, *argv: str, log: str = "") -> Any:
        """Run `argv` on a seed configuration (`log` adds a log section); returns (url,
        transport, protocol, first body)."""
        self.use_seed_config()
        port = free_port()
        self.port = port
        with open(os.path.join(self.config_dir, "tsproxy.yaml"), "w") as f:
            f.write('entryPoints:\n  web:\n    address: "127.0.0.1:%d"\n' % port + log)
        url = "http://127.0.0.1:%d" % port
        transport, proc, _, body = yield spawn_proxy(
            self, argv, url, "traefikservice-wrr.kubesre.lc"
        )
        return url, transport, proc, body

    @defer.inlineCallbacks
    def stop(self, transport: Any, proc: _Collect) -> Any:
        transport.signalProcess(signal.SIGTERM)
        reason = yield proc.ended
        self.assertIsInstance(reason, ProcessDone, b"".join(proc.output))

    @defer.inlineCallbacks
    def test_twistdServesAndStreams(self) -> None:
        """The plugin starts under twistd, routes the seed's WRR host, streams 64 MiB both
        ways in bounded memory, and exits 0 on SIGTERM."""
        url, transport, proc, body = yield self.start("twistd", "-n", "--pidfile=", "tsproxy")
        self.assertEqual(body, b"Hello app-v2\n")
        baseline = peak_rss_kib(transport.pid)

        # 64 MiB up to the echo backend and the same 64 MiB back down.
        response = yield treq.post(
            url + "/echo",
            headers={"Host": ["traefikservice-wrr.kubesre.lc"]},
            data=FileBodyProducer(BytesIO(b"x" * BIG)),
            agent=self.agent,
            unbuffered=True,
        )
        received = [0]
        yield treq.collect(
            response, lambda chunk: received.__setitem__(0, received[0] + len(chunk))
        )
        self.assertEqual(received[0], BIG)
        peak = peak_rss_kib(transport.pid)
        # Holding either body would add 64 MiB; streaming adds little more than buffers.
        self.assertLess(
            peak - baseline, STREAM_GROWTH_KIB, "peak %d KiB, baseline %d KiB" % (peak, baseline)
        )
        yield self.stop(transport, proc)
        self.assert_text_lines(proc)

    def assert_text_lines(self, proc: _Collect) -> None:
        """Every line the runner wrote to its pipe is one of ours: time with milliseconds,
        level, message; the listener is named by a readable address; the summary is there."""
        text = b"".join(proc.output).decode()
        lines = text.splitlines()
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, LINE, text)
        self.assertIn("INFO  entrypoint web listening on 127.0.0.1:%d\n" % (self.port,), text)
        self.assertIn(
            "started: 3 routers (3 HTTP), 5 services (5 HTTP), 1 entrypoint (1 TCP)\n", text
        )
        self.assertNotIn("Starting factory", text)

    @defer.inlineCallbacks
    def test_twistServes(self) -> None:
        """`twist tsproxy -c DIR` runs the same proxy and exits 0 on SIGTERM."""
        url, transport, proc, body = yield self.start("twist", "tsproxy")
        self.assertEqual(body, b"Hello app-v2\n")
        yield self.stop(transport, proc)
        self.assert_text_lines(proc)

    @defer.inlineCallbacks
    def test_twistdLogFile(self) -> None:
        """`twistd -n --logfile FILE` writes the same lines to the file, nothing to stdout."""
        path = os.path.abspath(self.mktemp())
        _, transport, proc, _ = yield self.start(
            "twistd", "-n", "--pidfile=", "--logfile", path, "tsproxy"
        )
        yield self.stop(transport, proc)
        self.assertEqual(b"".join(proc.output), b"")
        with open(path, "rb") as f:
            proc.output = [f.read()]
        self.assert_text_lines(proc)

    @defer.inlineCallbacks
    def test_twistdLogLevelError(self) -> None:
        """With log.level ERROR, twistd writes only the errors (the seed's TCP, UDP and HTTPS
        routes name entrypoints this configuration lacks), none of Twisted's INFO lines."""
        _, transport, proc, _ = yield self.start(
            "twistd", "-n", "--pidfile=", "tsproxy", log="log:\n  level: ERROR\n"
        )
        yield self.stop(transport, proc)
        lines = b"".join(proc.output).decode().splitlines()
        self.assertEqual(len(lines), 6, lines)
        for line in lines:
            self.assertRegex(line, LINE)
            self.assertIn(" ERROR ", line)

    @defer.inlineCallbacks
    def test_twistLogFormatJson(self) -> None:
        """With log.format json every line is one JSON object (level, time, logger,
        message), Twisted's included, under twist writing to a pipe."""
        _, transport, proc, _ = yield self.start(
            "twist", "tsproxy", log="log:\n  level: DEBUG\n  format: json\n"
        )
        yield self.stop(transport, proc)
        records = [json.loads(line) for line in b"".join(proc.output).decode().splitlines()]
        self.assertTrue(records)
        for record in records:
            self.assertEqual(sorted(record), ["level", "logger", "message", "time"], record)
            self.assertIn(record["level"], ("debug", "info", "warn", "error", "fatal"))
        messages = [r["message"] for r in records]
        self.assertIn("entrypoint web listening on 127.0.0.1:%d" % (self.port,), messages)
        # At DEBUG, Twisted's per-connection chatter is there, as debug.
        self.assertTrue(
            any(r["level"] == "debug" and "starting on" in r["message"] for r in records),
            messages,
        )


class WorkersOptionTests(SynchronousTestCase):
    """`--workers`: a number, `auto`, and the fixed ports it needs."""

    def test_count(self) -> None:
        """Each row: the option's text and the count, or a usage error (None)."""
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # PyPy 3.9 has no sched_getaffinity: the CPU count
            cores = os.cpu_count() or 1
        rows = [
            ("1", 1),
            ("2", 2),
            ("16", 16),
            ("auto", cores),
            ("0", None),
            ("-1", None),
            ("two", None),
            ("", None),
        ]
        for text, expected in rows:
            with self.subTest(text=text):
                if expected is None:
                    self.assertRaises(usage.UsageError, worker_count, text)
                else:
                    self.assertEqual(worker_count(text), expected)

    def test_portZero(self) -> None:
        """An entrypoint on :0 is refused with --workers 2 (each worker would pick its own
        port), accepted with one process."""
        config = self.mktemp()
        os.makedirs(config)
        with open(os.path.join(config, "tsproxy.yaml"), "w") as f:
            f.write('entryPoints:\n  web:\n    address: "127.0.0.1:0"\n')
        Options().parseOptions(["-c", config])
        with self.assertRaises(usage.UsageError) as caught:
            Options().parseOptions(["-c", config, "--workers", "2"])
        self.assertIn(
            "tsproxy.yaml:2: entrypoint web: --workers 2 needs a fixed port", str(caught.exception)
        )
