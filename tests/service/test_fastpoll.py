"""tsproxy.fastpoll: the lean epoll dispatch delivers what Twisted's own does."""

from __future__ import annotations

import socket
from typing import Any, List

from twisted.internet import epollreactor, protocol, selectreactor, tcp
from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.main import CONNECTION_DONE
from twisted.trial import unittest
from zope.interface import implementer

from tsproxy.fastpoll import speed_up


class _Reader(FileDescriptor):
    """A socket end that records what the reactor asks of it."""

    def __init__(self, reactor: Any, sock: socket.socket, fail: bool = False) -> None:
        super().__init__(reactor)
        self.sock = sock
        self.fail = fail
        self.got: List[bytes] = []
        self.lost: List[Any] = []
        self.writable = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def doRead(self) -> Any:
        data = self.sock.recv(65536)
        if self.fail:
            raise ValueError("boom")
        if not data:
            return CONNECTION_DONE
        self.got.append(data)
        return None

    def doWrite(self) -> Any:
        self.writable += 1
        self.stopWriting()
        return None

    def connectionLost(self, reason: Any) -> None:
        self.lost.append(reason)
        self.stopReading()
        self.stopWriting()


class _Collect(protocol.Protocol):
    def __init__(self) -> None:
        self.data: List[bytes] = []
        self.reasons: List[Any] = []

    def dataReceived(self, data: bytes) -> None:
        self.data.append(data)

    def connectionLost(self, reason: Any) -> None:
        self.reasons.append(reason)


class FastPollTests(unittest.TestCase):
    """Events through a private EPollReactor given the lean dispatch, one turn at a time."""

    def setUp(self) -> None:
        self.reactor = epollreactor.EPollReactor()
        self.assertTrue(speed_up(self.reactor))
        self.addCleanup(self._close_reactor)

    def _close_reactor(self) -> None:
        self.reactor.removeAll()
        self.reactor.waker.connectionLost(None)
        self.reactor._poller.close()

    def _pair(self, fail: bool = False) -> tuple[_Reader, socket.socket]:
        mine, theirs = socket.socketpair()
        mine.setblocking(False)
        self.addCleanup(mine.close)
        self.addCleanup(theirs.close)
        reader = _Reader(self.reactor, mine, fail)
        self.addCleanup(reader.stopWriting)
        self.addCleanup(reader.stopReading)
        return reader, theirs

    def _turn(self) -> None:
        self.reactor.doIteration(0.5)

    def test_only_epoll_changed(self) -> None:
        """A select reactor is left as it is; the epoll one gets a new doIteration."""
        other = selectreactor.SelectReactor()
        self.addCleanup(other.waker.connectionLost, None)
        self.assertFalse(speed_up(other))
        self.assertNotIn("doIteration", vars(other))
        self.assertIn("doIteration", vars(self.reactor))

    def test_readable_delivered(self) -> None:
        """A readable socket's doRead is called and its bytes arrive."""
        reader, peer = self._pair()
        reader.startReading()
        peer.sendall(b"hello")
        self._turn()
        self.assertEqual(reader.got, [b"hello"])
        self.assertEqual(reader.lost, [])

    def test_closed_peer_ends_the_connection(self) -> None:
        """A read of nothing (peer closed) disconnects the selectable with ConnectionDone."""
        reader, peer = self._pair()
        reader.startReading()
        peer.close()
        for _ in range(3):
            if reader.lost:
                break
            self._turn()
        self.assertEqual(len(reader.lost), 1)
        self.assertIn("ConnectionDone", repr(reader.lost[0]))

    def test_exception_logged_and_disconnects(self) -> None:
        """An exception from doRead is logged and disconnects, as Twisted's dispatch does."""
        reader, peer = self._pair(fail=True)
        reader.startReading()
        peer.sendall(b"x")
        self._turn()
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(len(reader.lost), 1)

    def test_writable_takes_twisteds_path(self) -> None:
        """A writable event (not a plain read) still reaches doWrite."""
        reader, _peer = self._pair()
        reader.startWriting()
        self._turn()
        self.assertEqual(reader.writable, 1)

    def test_tcp_connection_read_inline(self) -> None:
        """A real TCP connection's bytes reach its protocol, then its close is seen."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        self.addCleanup(listener.close)
        client = socket.create_connection(listener.getsockname())
        self.addCleanup(client.close)
        accepted, addr = listener.accept()
        accepted.setblocking(False)
        proto = _Collect()
        conn = tcp.Server(accepted, proto, addr, _FakePort(), 1, self.reactor)
        proto.makeConnection(conn)
        conn.startReading()
        self.addCleanup(conn.stopReading)
        client.sendall(b"GET / HTTP/1.1\r\n\r\n")
        self._turn()
        self.assertEqual(b"".join(proto.data), b"GET / HTTP/1.1\r\n\r\n")
        client.close()
        for _ in range(3):
            if proto.reasons:
                break
            self._turn()
        self.assertEqual(len(proto.reasons), 1)


class _FakePort:
    """What tcp.Server asks of the port that accepted it."""

    _realPortNumber = 0


@implementer(IHalfCloseableProtocol)
class _HalfClose(_Collect):
    def __init__(self) -> None:
        super().__init__()
        self.read_closed = 0

    def readConnectionLost(self) -> None:
        self.read_closed += 1
        self.transport.write(b"bye")
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


class _Boom(_Collect):
    def dataReceived(self, data: bytes) -> None:
        raise ValueError("boom")


class InlineReadTests(unittest.TestCase):
    """Review: the inlined tcp.Server read keeps half-close and error handling."""

    setUp = FastPollTests.setUp
    _close_reactor = FastPollTests._close_reactor
    _turn = FastPollTests._turn

    def _server(self, proto: Any) -> Any:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        self.addCleanup(listener.close)
        client = socket.create_connection(listener.getsockname())
        self.addCleanup(client.close)
        accepted, addr = listener.accept()
        accepted.setblocking(False)
        conn = tcp.Server(accepted, proto, addr, _FakePort(), 1, self.reactor)
        proto.makeConnection(conn)
        conn.startReading()
        self.addCleanup(conn.stopReading)
        self.addCleanup(conn.stopWriting)
        return conn, client

    def _turns(self, done: Any) -> None:
        for _ in range(5):
            if done():
                return
            self._turn()

    def test_half_close(self) -> None:
        """A FIN reaches an IHalfCloseableProtocol as readConnectionLost; it may answer."""
        proto = _HalfClose()
        conn, client = self._server(proto)
        client.shutdown(socket.SHUT_WR)
        self._turns(lambda: proto.reasons)
        self.assertEqual((proto.read_closed, len(proto.reasons)), (1, 1))
        client.settimeout(2)
        self.assertEqual(client.recv(10), b"bye")

    def test_protocol_error(self) -> None:
        """An exception from dataReceived is logged and the connection is lost, once."""
        proto = _Boom()
        conn, client = self._server(proto)
        client.sendall(b"x")
        self._turns(lambda: proto.reasons)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(len(proto.reasons), 1)


class _LostBoom(_Collect):
    def connectionLost(self, reason: Any) -> None:
        super().connectionLost(reason)
        raise ValueError("connectionLost failed")


class DisconnectErrorTests(unittest.TestCase):
    """Review: an exception while the selectable is disconnected, as Twisted's dispatch."""

    setUp = FastPollTests.setUp
    _close_reactor = FastPollTests._close_reactor
    _turn = FastPollTests._turn
    _server = InlineReadTests._server

    def test_connection_lost_raises(self) -> None:
        """A protocol whose connectionLost raises after the peer closed: Twisted's
        callWithLogger logs it and goes on with the batch; nothing leaves doIteration."""
        proto = _LostBoom()
        conn, client = self._server(proto)
        client.close()
        for _ in range(3):
            if proto.reasons:
                break
            self._turn()
        self.assertEqual(len(proto.reasons), 1)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
