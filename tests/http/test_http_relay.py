"""tsproxy.http.relay's write-through `send`, on real TCP connections on 127.0.0.1."""

from __future__ import annotations

import socket
from typing import Any, List

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from tsproxy.http.relay import Relaying, send


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
