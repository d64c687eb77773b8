"""The supervisor-worker channel over a real Unix socket pair: requests and answers both
ways, notices, a late answer, and pending requests failing when the channel closes."""

from __future__ import annotations

import socket
from typing import Any, List

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory
from twisted.trial.unittest import TestCase

from tsproxy.workers.channel import Channel, ChannelError


class ChannelTests(TestCase):
    timeout = 10

    def pair(self, left: Any, right: Any, timeout: float = 5.0) -> List[Channel]:
        """Two channels on a socket pair, answering with ``left`` and ``right``."""
        ends = []
        for handler, sock in zip((left, right), socket.socketpair()):
            channel = Channel(reactor, handler, timeout=timeout)
            reactor.adoptStreamConnection(
                sock.fileno(), socket.AF_UNIX, Factory.forProtocol(lambda c=channel: c)
            )
            sock.close()
            self.addCleanup(channel.transport.loseConnection)
            ends.append(channel)
        return ends

    @defer.inlineCallbacks
    def test_askBothWays(self) -> None:
        """Each side asks, the other answers (at once or with a Deferred); notices get no
        answer."""
        noticed: List[Any] = []

        def right(message: Any) -> Any:
            if message["op"] == "notice":
                noticed.append(message)
                return None
            return defer.succeed({"twice": message["n"] * 2})

        a, b = self.pair(lambda m: {"pong": m["op"]}, right)
        a.send({"op": "notice"})
        self.assertEqual((yield a.call("double", n=21))["twice"], 42)
        self.assertEqual((yield b.call("ping"))["pong"], "ping")
        self.assertEqual([m["op"] for m in noticed], ["notice"])

    @defer.inlineCallbacks
    def test_noAnswerInTime(self) -> None:
        """A request the other side never answers fails after the timeout."""
        a, _ = self.pair(lambda m: None, lambda m: defer.Deferred(), timeout=0.05)
        yield self.assertFailure(a.call("slow"), ChannelError)

    @defer.inlineCallbacks
    def test_closeFailsPending(self) -> None:
        """Pending requests fail, and on_close runs, when the other end goes away."""
        closed: List[bool] = []
        a, b = self.pair(lambda m: None, lambda m: defer.Deferred())
        a.on_close = lambda: closed.append(True)
        asked = a.call("never")
        b.transport.loseConnection()
        yield self.assertFailure(asked, ChannelError)
        self.assertEqual(closed, [True])
        yield self.assertFailure(a.call("after"), ChannelError)
