"""The private channel between the supervisor and one worker: a Unix socket pair carrying
length-prefixed JSON messages, requests with an ``id`` answered by a message with ``re``.

Either side asks (``call``) and answers (``handler``). A request without an answer within
``timeout`` seconds fails with ChannelError; so do pending ones when the channel closes.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Optional

from twisted.internet import defer
from twisted.protocols.basic import Int32StringReceiver

from tsproxy.logs import get_logger

__all__ = ["Channel", "ChannelError"]

log = get_logger(__name__)

#: A whole proxy's exposition can be megabytes (one series per router, service and code).
MAX_MESSAGE = 256 * 1024 * 1024

Message = Dict[str, Any]


class ChannelError(Exception):
    """No answer: the other side is gone, or too slow."""


class Channel(Int32StringReceiver):
    """One end. ``handler(message)`` answers the other side's requests (a dict, a Deferred
    of one, or None for a notice that needs no answer); ``on_close()`` runs once at EOF."""

    MAX_LENGTH = MAX_MESSAGE

    def __init__(
        self,
        clock: Any,
        handler: Callable[[Message], Any],
        on_close: Callable[[], None] = lambda: None,
        timeout: float = 5.0,
    ) -> None:
        self.clock = clock
        self.handler = handler
        self.on_close = on_close
        self.timeout = timeout
        self.connected_now = False
        self._next = 0
        self._pending: Dict[int, Any] = {}

    def connectionMade(self) -> None:
        self.connected_now = True

    def send(self, message: Message) -> None:
        if self.connected_now:
            self.sendString(json.dumps(message).encode("utf-8"))

    def call(self, op: str, timeout: Optional[float] = None, **args: Any) -> defer.Deferred[Any]:
        """Ask the other side; fires with its answer (a dict)."""
        if not self.connected_now:
            return defer.fail(ChannelError("channel closed"))
        self._next += 1
        ident = self._next
        d: defer.Deferred[Any] = defer.Deferred()
        timer = self.clock.callLater(
            self.timeout if timeout is None else timeout, self._expire, ident, op
        )
        self._pending[ident] = (d, timer)
        self.send(dict(args, op=op, id=ident))
        return d

    def _expire(self, ident: int, op: str) -> None:
        pending = self._pending.pop(ident, None)
        if pending is not None:
            pending[0].errback(ChannelError("no answer to %s in time" % (op,)))

    def stringReceived(self, data: bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            log.error("channel: unreadable message dropped")
            return
        if "re" in message:
            pending = self._pending.pop(message["re"], None)
            if pending is not None:
                d, timer = pending
                timer.cancel()
                d.callback(message)
            return
        ident = message.get("id")
        d = defer.maybeDeferred(self.handler, message)
        if ident is not None:
            d.addCallback(lambda answer: self.send(dict(answer or {}, re=ident)))
        d.addErrback(lambda failure: log.failure("channel: {op} failed", failure, op=message))

    def connectionLost(self, reason: Any = None) -> None:
        self.connected_now = False
        self.on_close()
        pending, self._pending = self._pending, {}
        for d, timer in pending.values():
            timer.cancel()
            d.errback(ChannelError("channel closed"))
