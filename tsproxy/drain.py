"""Graceful shutdown of an entrypoint's connections: each finishes what it is doing, and what is
left when the grace timeout is over is cut.

Knows no protocol: a connection is anything with ``close()`` (finish the exchange in progress,
then close) and ``abort()`` (close now). The clock is a parameter.
"""

from __future__ import annotations

from typing import Any, Iterator, List, Set

from twisted.internet import defer

__all__ = ["Connections", "Drain"]


class Connections:
    """The live connections of one entrypoint; ``when_empty()`` says when none is left."""

    def __init__(self) -> None:
        self._live: Set[Any] = set()
        self._waiting: List[defer.Deferred[None]] = []

    def add(self, conn: Any) -> None:
        self._live.add(conn)

    def discard(self, conn: Any) -> None:
        self._live.discard(conn)
        if not self._live:
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)

    def when_empty(self) -> defer.Deferred[None]:
        """A Deferred that fires once no connection is left (at once if none is)."""
        if not self._live:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._waiting.append(d)
        return d

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._live))

    def __contains__(self, conn: object) -> bool:
        return conn in self._live


class Drain:
    """Asks every connection to close after its current exchange, then waits up to ``grace``
    seconds; ``done`` fires with how many connections had to be cut."""

    def __init__(self, connections: Connections, grace: float, clock: Any) -> None:
        self.connections = connections
        self.done: defer.Deferred[int] = defer.Deferred()
        for conn in connections:
            conn.close()
        self._timer = clock.callLater(max(grace, 0.0), self.cut)
        connections.when_empty().addCallback(self._finished, 0)

    def cut(self) -> None:
        """The grace time is over (or a second signal came): close the rest now."""
        if self._timer.active():
            self._timer.cancel()
        left = list(self.connections)
        self._finished(None, len(left))
        for conn in left:
            conn.abort()

    def _finished(self, ignored: object, cut: int) -> None:
        if self.done.called:
            return
        if self._timer.active():
            self._timer.cancel()
        self.done.callback(cut)
