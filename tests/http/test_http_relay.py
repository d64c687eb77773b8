"""tsproxy.http.relay's write-through `send`, and the writes it holds during a batch of reactor
events (`hold_sends`/`release_sends`, opened by tsproxy/fastpoll.py), on real TCP connections
on 127.0.0.1."""

from __future__ import annotations

import socket
from typing import Any, List

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from tsproxy.http.relay import RELAY_BUFFER, Relaying, hold_sends, release_sends, send


class _Accepted(Relaying):
    """The server side: hands its connection to the test once made."""

    def connectionMade(self) -> None:
        self.start_relaying()
        self.factory.made.callback(self)


class SendTests(TestCase):
    """`send` writes through a plain TCP transport and falls back to its queue."""

    @defer.inlineCallbacks
    def _connect(self, rcvbuf: int = 0) -> Any:
        factory = Factory.forProtocol(_Accepted)
        factory.made = defer.Deferred()
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = socket.socket()
        self.addCleanup(client.close)
        if rcvbuf:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", port.getHost().port))
        conn = yield factory.made
        self.addCleanup(conn.transport.abortConnection)
        # Out of the batch of events that accepted it (sends made in one are held).
        yield deferLater(reactor, 0, lambda: None)
        return conn, client

    @defer.inlineCallbacks
    def test_sendsAtOnce(self) -> None:
        """The bytes are in the peer's socket before the reactor turns again (no queue)."""
        conn, client = yield self._connect()
        send(conn.transport, b"hello")
        self.assertEqual(conn.transport._tempDataLen, 0)
        client.settimeout(2.0)
        self.assertEqual(client.recv(16), b"hello")

    @defer.inlineCallbacks
    def test_fullSocketQueuesInOrder(self) -> None:
        """What the socket does not take is queued, and later sends queue behind it: the
        peer reads every byte in order."""
        conn, client = yield self._connect(rcvbuf=4096)
        sent: List[bytes] = []
        for i in range(400):  # bounded: loopback buffers take a few MB at most
            piece = bytes([65 + i % 26]) * 65536
            send(conn.transport, piece)
            sent.append(piece)
            if conn.transport._tempDataLen:
                break
        self.assertTrue(conn.transport._tempDataLen, "the socket never filled up")
        send(conn.transport, b"tail")
        sent.append(b"tail")
        expected = b"".join(sent)
        received: List[bytes] = []
        got = 0
        for _ in range(4000):  # bounded: read while the reactor flushes the queue
            try:
                data = client.recv(1 << 20)
            except BlockingIOError:
                yield deferLater(reactor, 0.001, lambda: None)
                continue
            received.append(data)
            got += len(data)
            if got >= len(expected):
                break
        self.assertEqual(b"".join(received), expected)

    def test_otherTransportsWrite(self) -> None:
        """A transport that is not plain TCP (TLS, a test double) gets an ordinary write."""
        transport = StringTransport()
        send(transport, b"abc")
        send(transport, b"def")
        self.assertEqual(transport.value(), b"abcdef")

    def _pending(self, client: Any) -> bytes:
        """What the peer's socket has for it now (nothing: b"")."""
        try:
            return client.recv(1 << 20)  # type: ignore[no-any-return]
        except BlockingIOError:
            return b""

    @defer.inlineCallbacks
    def _read(self, client: Any, size: int) -> Any:
        got = b""
        for _ in range(2000):  # bounded
            got += self._pending(client)
            if len(got) >= size:
                break
            yield deferLater(reactor, 0.001, lambda: None)
        return got

    @defer.inlineCallbacks
    def test_heldUntilReleased(self) -> None:
        """During a batch the sends wait; released, one transport's chunks go out together,
        in order."""
        conn, client = yield self._connect()
        held = hold_sends()
        try:
            send(conn.transport, b"head ")
            send(conn.transport, b"body")
            self.assertEqual(self._pending(client), b"")
        finally:
            release_sends(held)
        self.assertEqual((yield self._read(client, 9)), b"head body")

    @defer.inlineCallbacks
    def test_heldAheadOfQueued(self) -> None:
        """A write queued by Twisted after a held send goes after it; a send after that queue
        too: the peer reads them in the order written."""
        conn, client = yield self._connect()
        held = hold_sends()
        try:
            send(conn.transport, b"1-")
            conn.transport.write(b"2-")
            send(conn.transport, b"3")
        finally:
            release_sends(held)
        self.assertEqual((yield self._read(client, 5)), b"1-2-3")

    @defer.inlineCallbacks
    def test_heldBounded(self) -> None:
        """Past a relay buffer's worth, a transport's held bytes go at once (the producer
        pausing that bounds a connection sees Twisted's queue only)."""
        conn, client = yield self._connect()
        held = hold_sends()
        try:
            piece = b"x" * (RELAY_BUFFER // 2)
            send(conn.transport, piece)
            self.assertEqual(self._pending(client), b"")
            send(conn.transport, piece)
            send(conn.transport, b"tail")
            first = yield self._read(client, RELAY_BUFFER)
        finally:
            release_sends(held)
        self.assertEqual(first[:RELAY_BUFFER], piece * 2)
        rest = yield self._read(client, RELAY_BUFFER + 4 - len(first))
        self.assertEqual(first + rest, piece * 2 + b"tail")

    @defer.inlineCallbacks
    def test_heldDroppedWhenAborted(self) -> None:
        """An aborted connection's held bytes are dropped, not sent on a closed socket."""
        conn, client = yield self._connect()
        held = hold_sends()
        send(conn.transport, b"never")
        conn.transport.abortConnection()
        release_sends(held)
        got = b""
        for _ in range(2000):  # bounded: until the reset (or the end) reaches the peer
            try:
                data = client.recv(1 << 20)
            except BlockingIOError:
                yield deferLater(reactor, 0.001, lambda: None)
                continue
            except ConnectionResetError:
                break
            got += data
            if not data:
                break
        self.assertEqual(got, b"")
