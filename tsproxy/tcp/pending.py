"""A connection accepted but not handed over yet (its PROXY header being read, its first bytes
peeked at): counted in its entrypoint's connections, so that a shutdown closes it, and timed
by a timer of its own that goes when it ends."""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from tsproxy.http.backend import cancel_call

__all__ = ["PendingConnection"]


class PendingConnection(Protocol):
    """What Dispatch and ProxyHeaderStage share: ``done`` once over, ``timer`` their deadline,
    ``factory.connections`` the entrypoint's count."""

    factory: Any
    timer: Any = None
    done = False

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.done = True
        cancel_call(self.timer)
        self.timer = None
        self.factory.connections.discard(self)

    def close(self) -> None:
        """At shutdown: nothing is in progress yet."""
        self.transport.loseConnection()  # type: ignore[union-attr]

    def abort(self) -> None:
        self.transport.abortConnection()  # type: ignore[union-attr]
