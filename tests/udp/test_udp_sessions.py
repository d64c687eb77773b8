"""Tests for tsproxy.udp.sessions: sessions per client, idle expiry and the cap, on a Clock."""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.udpfixture import UDP_VECTORS
from tsproxy.runtime.udp import UDPServer
from tsproxy.udp.sessions import Address, SessionTable


class FakeBackend:
    """Records what a session writes to its server; ``on_write`` can act during a write."""

    def __init__(self, server: UDPServer) -> None:
        self.server = server
        self.written: List[bytes] = []
        self.closed = False
        self.on_write: Optional[Callable[[], None]] = None

    def write(self, data: bytes) -> None:
        self.written.append(data)
        if self.on_write is not None:
            self.on_write()

    def close(self) -> None:
        assert not self.closed, "closed twice"
        self.closed = True


class Harness:
    """A SessionTable over fake backends: servers picked in turn, replies recorded."""

    def __init__(self, timeout: float = 3.0, max_sessions: int = 100, servers: int = 2) -> None:
        self.clock = Clock()
        self.servers = [UDPServer("127.0.0.1", 9000 + n) for n in range(servers)]
        self.backends: List[FakeBackend] = []
        self.replies: List[Tuple[bytes, Address]] = []
        self.refuse = False
        self.table = SessionTable(
            self.clock, timeout, max_sessions, self.open, lambda d, c: self.replies.append((d, c))
        )

    def open(self, client: Address) -> Optional[Tuple[UDPServer, Any]]:
        if self.refuse:
            return None
        server = self.servers[len(self.backends) % len(self.servers)]
        backend = FakeBackend(server)
        self.backends.append(backend)
        return server, backend

    def send(self, port: int, data: bytes = b"q") -> None:
        self.table.from_client(("127.0.0.1", port), data)

    def backend_of(self, port: int) -> FakeBackend:
        session = self.table.get(("127.0.0.1", port))
        assert session is not None, port
        return session.backend  # type: ignore[return-value]

    def live(self) -> List[int]:
        """Client ports with a session, least recently active first."""
        return [client[1] for client in self.table._sessions]


class SessionTests(SynchronousTestCase):
    """One session per client address, its server picked once, replies to that address."""

    def test_sessionPerClient(self) -> None:
        """Each client address gets its own backend, kept for all its datagrams, in order."""
        h = Harness()
        h.send(1, b"a1")
        h.send(2, b"b1")
        h.send(1, b"a2")
        self.assertEqual(len(h.backends), 2)
        self.assertEqual(h.backend_of(1).written, [b"a1", b"a2"])
        self.assertEqual(h.backend_of(2).written, [b"b1"])
        self.assertEqual([b.server.port for b in h.backends], [9000, 9001])

    def test_repliesGoToTheirClient(self) -> None:
        """A backend's datagram goes back to its session's client, byte for byte."""
        h = Harness()
        h.send(1)
        h.send(2)
        big = bytes(range(256)) * 255
        h.table.from_backend(("127.0.0.1", 2), h.backend_of(2), big)
        self.assertEqual(h.replies, [(big, ("127.0.0.1", 2))])

    def test_staleBackendIgnored(self) -> None:
        """A closed session's backend can neither answer nor close the client's new session."""
        h = Harness(timeout=1.0)
        h.send(1)
        old = h.backend_of(1)
        h.clock.advance(1.0)
        h.send(1)
        new = h.backend_of(1)
        self.assertIsNot(new, old)
        h.table.from_backend(("127.0.0.1", 1), old, b"late")
        h.table.backend_failed(("127.0.0.1", 1), old)
        self.assertEqual((h.replies, h.live(), new.closed), ([], [1], False))

    def test_noServer(self) -> None:
        """When no server can be picked the datagram is dropped and no session is made."""
        h = Harness()
        h.refuse = True
        h.send(1)
        self.assertEqual((len(h.table), h.clock.getDelayedCalls()), (0, []))

    def test_settingsRefused(self) -> None:
        """A timeout of 0 (as Traefik's listener) or a cap below 1 is refused."""
        self.assertTrue(UDP_VECTORS["listener refuses timeout 0"]["expected"]["error"])
        for timeout, cap in ((0.0, 10), (-1.0, 10), (3.0, 0)):
            self.assertRaises(ValueError, Harness, timeout, cap)


class ExpiryTests(SynchronousTestCase):
    """A session closes after ``timeout`` seconds without a datagram either way."""

    def test_vectors(self) -> None:
        """Traefik's 10-client cases: all live after 10 ms, none after timeout + 1 s."""
        for name in (
            "10 client sessions, no reads: sessions expire after the idle timeout",
            "10 client sessions, one read each: sessions expire after the idle timeout",
        ):
            case = UDP_VECTORS[name]
            h = Harness(timeout=case["inputs"]["timeout_seconds"])
            for port in range(case["inputs"]["clients"]):
                h.send(port)
                if case["inputs"]["server_reads"]:
                    h.table.from_backend(("127.0.0.1", port), h.backend_of(port), b"r")
            h.clock.advance(0.01)
            self.assertEqual(len(h.table), case["expected"]["sessions_after_10ms"], name)
            h.clock.advance(case["inputs"]["timeout_seconds"] + 1)
            self.assertEqual(len(h.table), case["expected"]["sessions_after_timeout_plus_1s"])
            self.assertTrue(all(b.closed for b in h.backends))
            self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_exactDeadline(self) -> None:
        """Idle for just under the timeout: alive; for the timeout: closed, backend closed."""
        h = Harness(timeout=3.0)
        h.send(1)
        h.clock.advance(2.9)
        self.assertEqual(h.live(), [1])
        h.clock.advance(0.1)
        self.assertEqual(h.live(), [])
        self.assertTrue(h.backends[0].closed)

    def test_trafficRefreshesBothWays(self) -> None:
        """A client datagram and a backend reply each move the deadline ``timeout`` on."""
        h = Harness(timeout=3.0)
        h.send(1)
        h.send(2)
        h.clock.advance(2.0)
        h.send(1)  # client 1: deadline 5
        h.clock.advance(1.5)
        self.assertEqual(h.live(), [1])  # client 2 went at 3
        h.table.from_backend(("127.0.0.1", 1), h.backend_of(1), b"r")  # deadline 6.5
        h.clock.advance(2.9)
        self.assertEqual(h.live(), [1])
        h.clock.advance(0.1)
        self.assertEqual(h.live(), [])

    def test_manySessionsOneTimer(self) -> None:
        """However many sessions, one timer is pending, set for the oldest deadline."""
        h = Harness(timeout=3.0)
        for port in range(50):
            h.send(port)
            h.clock.advance(0.01)
        calls = h.clock.getDelayedCalls()
        self.assertEqual(len(calls), 1)
        self.assertAlmostEqual(calls[0].getTime(), 3.0)


class CapTests(SynchronousTestCase):
    """Past ``max_sessions`` the least recently active session is closed."""

    def test_leastRecentlyUsedGoes(self) -> None:
        """A fourth client on a cap of 3 closes the session idle the longest, not the oldest."""
        h = Harness(max_sessions=3)
        for port in (1, 2, 3):
            h.send(port)
            h.clock.advance(0.1)
        h.send(1)
        h.table.from_backend(("127.0.0.1", 2), h.backend_of(2), b"r")
        h.send(4)
        self.assertEqual(h.live(), [1, 2, 4])
        self.assertEqual([b.closed for b in h.backends], [False, False, True, False])

    def test_floodStaysBounded(self) -> None:
        """A flood of source ports never holds more than the cap of open backends."""
        h = Harness(max_sessions=10)
        for port in range(1000):
            h.send(port)
            self.assertLessEqual(len(h.table), 10)
        self.assertEqual(sum(not b.closed for b in h.backends), 10)
        self.assertEqual(h.live(), list(range(990, 1000)))


class FailureTests(SynchronousTestCase):
    """A server that answers ICMP unreachable closes its session only."""

    def test_unreachableClosesOneSession(self) -> None:
        """backend_failed closes that session; others live; the client's next datagram reopens."""
        h = Harness()
        h.send(1)
        h.send(2)
        h.table.backend_failed(("127.0.0.1", 1), h.backend_of(1))
        self.assertEqual(h.live(), [2])
        self.assertTrue(h.backends[0].closed)
        h.send(1, b"again")
        self.assertEqual(h.backend_of(1).written, [b"again"])

    def test_failureDuringWrite(self) -> None:
        """A backend that reports unreachable while being written to leaves a clean table."""
        h = Harness()
        h.send(1)
        backend = h.backend_of(1)
        backend.on_write = lambda: h.table.backend_failed(("127.0.0.1", 1), backend)
        h.send(1)
        self.assertEqual((h.live(), backend.closed, h.clock.getDelayedCalls()), ([], True, []))


class DrainTests(SynchronousTestCase):
    """While stopping, live sessions go on and new clients are not taken."""

    def test_drain(self) -> None:
        """No new sessions; existing ones still relay; when_empty fires as the last one idles."""
        h = Harness(timeout=3.0)
        h.send(1)
        h.table.accepting = False
        empty = h.table.when_empty()
        h.send(2)
        h.clock.advance(2.0)
        h.send(1, b"still")
        self.assertEqual((h.live(), h.backend_of(1).written), ([1], [b"q", b"still"]))
        h.clock.advance(2.9)
        self.assertNoResult(empty)
        h.clock.advance(0.1)
        self.assertIsNone(self.successResultOf(empty))

    def test_closeAll(self) -> None:
        """close_all closes every backend, cancels the timer and fires when_empty."""
        h = Harness()
        for port in (1, 2, 3):
            h.send(port)
        empty = h.table.when_empty()
        h.table.close_all()
        self.successResultOf(empty)
        self.assertEqual([b.closed for b in h.backends], [True, True, True])
        self.assertEqual(h.clock.getDelayedCalls(), [])
        self.successResultOf(h.table.when_empty())
