"""GuardedPort out of descriptors, for real: accept() fails with EMFILE under a lowered
open-files limit; the port pauses instead of spinning, logs once with a count, keeps the
waiting clients in the backlog and serves them once descriptors are free again."""

from __future__ import annotations

import os
import socket
from typing import Any, Dict, List

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SkipTest, TestCase

from tsproxy.logs import apply_log_level
from tsproxy.tcp.listen import ACCEPT_PAUSE, GuardedPort, listen_tcp

try:
    import resource
except ImportError:  # not POSIX
    resource = None  # type: ignore[assignment]


class _Hello(Protocol):
    def connectionMade(self) -> None:
        self.factory.accepted += 1
        self.transport.write(b"hi")
        self.transport.loseConnection()


class GuardedPortTests(TestCase):
    def setUp(self) -> None:
        if resource is None or not os.path.isdir("/proc/self/fd"):
            raise SkipTest("needs RLIMIT_NOFILE and /proc/self/fd")
        apply_log_level("INFO")
        self.addCleanup(apply_log_level, "INFO")
        self.lines: List[str] = []

        def observe(event: Dict[str, Any]) -> None:
            text = formatEvent(event)
            if "accept" in text.lower() or "EMFILE" in text:
                self.lines.append(text)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def exhaust(self) -> List[Any]:
        """Lower the soft limit just above what is open and open files until none is left
        (the limit comes back when the test ends); close what is returned to free them."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 8, hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        fillers = []
        try:
            while True:
                fillers.append(open(os.devnull))
        except OSError:
            pass
        return fillers

    @defer.inlineCallbacks
    def test_outOfDescriptors(self) -> Any:
        """Three clients wait while accept() fails: one line, a pause (no busy loop), a
        counted line later; all three are served once files are free."""
        # The reactor opens its own pipes as it starts: let it, before files run out.
        yield deferLater(reactor, 0, lambda: None)
        factory = Factory.forProtocol(_Hello)
        factory.accepted = 0  # type: ignore[attr-defined]
        factory.name = "web"  # type: ignore[attr-defined]
        clock = Clock()
        port = listen_tcp(reactor, clock, 0, factory, interface="127.0.0.1")
        self.assertIsInstance(port, GuardedPort)
        self.addCleanup(port.stopListening)
        reads = []
        do_read = port.doRead

        def counted() -> None:
            reads.append(1)
            do_read()

        port.doRead = counted  # type: ignore[method-assign]
        address = ("127.0.0.1", port.getHost().port)
        clients = [socket.create_connection(address, timeout=5) for _ in range(3)]
        for client in clients:
            self.addCleanup(client.close)
        fillers = self.exhaust()
        try:
            # Real time passes: without the pause the reactor would call doRead each turn.
            yield deferLater(reactor, 0.3, lambda: None)
            self.assertEqual(len(reads), 1)
            self.assertEqual(factory.accepted, 0)  # type: ignore[attr-defined]
            clock.advance(ACCEPT_PAUSE)  # tries again: still out of files
            yield deferLater(reactor, 0.2, lambda: None)
        finally:
            for filler in fillers:
                filler.close()
        self.assertEqual(len(reads), 2)
        self.assertEqual(len(self.lines), 1, self.lines)
        self.assertIn("Too many open files", self.lines[0])
        clock.advance(10)
        self.assertEqual(len(self.lines), 2, self.lines)
        self.assertIn("(1 more times in 10 s)", self.lines[1])
        clock.advance(ACCEPT_PAUSE)
        yield deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(factory.accepted, 3)  # type: ignore[attr-defined]
        for client in clients:
            self.assertEqual(client.recv(10), b"hi")
