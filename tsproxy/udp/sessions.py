"""The UDP sessions of one entrypoint: keyed by client address, closed when idle, bounded.

A state machine over the clock it is given: it opens, writes and closes backends only through
the callables and objects handed to it, and never touches a socket itself.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, List, Optional, Protocol, Tuple

import attrs
from twisted.internet import defer

from tsproxy.logs import get_logger
from tsproxy.runtime.udp import UDPServer

__all__ = ["Address", "Backend", "Session", "SessionTable"]

log = get_logger(__name__)

Address = Tuple[str, int]


class Backend(Protocol):
    """The backend side of one session (a connected socket, in the proxy)."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


@attrs.define(eq=False)
class Session:
    """One client address, the server picked for it once, and when it closes if left idle."""

    client: Address
    server: UDPServer
    backend: Backend
    deadline: float


OpenBackend = Callable[[Address], Optional[Tuple[UDPServer, Backend]]]
SendToClient = Callable[[bytes, Address], None]


class SessionTable:
    """Live sessions in least-recently-active order, with one timer for the oldest.

    A datagram from an unknown client opens a session (``open_backend`` picks the server and
    opens the backend; None drops the datagram). Traffic either way moves the session's idle
    deadline ``timeout`` seconds on. Past ``max_sessions`` the least recently active session
    is closed. A backend that reports its server unreachable closes its session only.
    """

    def __init__(
        self,
        clock: Any,
        timeout: float,
        max_sessions: int,
        open_backend: OpenBackend,
        send_to_client: SendToClient,
    ) -> None:
        if timeout <= 0 or max_sessions < 1:
            raise ValueError(f"timeout {timeout} and max_sessions {max_sessions} must be > 0")
        self.clock = clock
        self.timeout = timeout
        self.max_sessions = max_sessions
        self.accepting = True
        self._open_backend = open_backend
        self._send_to_client = send_to_client
        self._sessions: OrderedDict[Address, Session] = OrderedDict()
        self._timer: Any = None
        self._waiting: List[defer.Deferred[None]] = []
        self._cap_reported = False

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, client: Address) -> Optional[Session]:
        return self._sessions.get(client)

    def from_client(self, client: Address, data: bytes) -> None:
        """A datagram from ``client``: to its session's backend, opening one if needed."""
        session = self._sessions.get(client)
        if session is None:
            if not self.accepting:
                return
            session = self._open(client)
            if session is None:
                return
        else:
            self._touch(session)
        # Last: a backend may report its server unreachable while writing, closing the session.
        session.backend.write(data)

    def from_backend(self, client: Address, backend: Backend, data: bytes) -> None:
        """A datagram from ``backend``: back to its client, unless that session is gone."""
        session = self._sessions.get(client)
        if session is None or session.backend is not backend:
            return
        self._touch(session)
        self._send_to_client(data, client)

    def backend_failed(self, client: Address, backend: Backend) -> None:
        """``backend`` cannot reach its server (ICMP unreachable): close that session."""
        session = self._sessions.get(client)
        if session is not None and session.backend is backend:
            self._close(session, "server unreachable")

    def close_all(self) -> None:
        """Close every session now (shutdown)."""
        for session in list(self._sessions.values()):
            self._close(session, "shutdown")

    def when_empty(self) -> defer.Deferred[None]:
        """A Deferred that fires once no session is left (at once if none is)."""
        if not self._sessions:
            return defer.succeed(None)
        waiting: defer.Deferred[None] = defer.Deferred()
        self._waiting.append(waiting)
        return waiting

    def _open(self, client: Address) -> Optional[Session]:
        opened = self._open_backend(client)
        if opened is None:
            return None
        server, backend = opened
        session = Session(client, server, backend, self.clock.seconds() + self.timeout)
        self._sessions[client] = session
        log.debug(
            "UDP session {client} -> {server}", client="%s:%d" % client, server=server.address
        )
        while len(self._sessions) > self.max_sessions:
            if not self._cap_reported:
                self._cap_reported = True
                log.warn(
                    "{max} UDP sessions: closing the least recently used for each new one",
                    max=self.max_sessions,
                )
            self._close(next(iter(self._sessions.values())), "session limit")
        self._arm()
        return session

    def _touch(self, session: Session) -> None:
        session.deadline = self.clock.seconds() + self.timeout
        self._sessions.move_to_end(session.client)

    def _arm(self) -> None:
        """Time the oldest session's deadline; a session touched since just moves back."""
        if self._timer is not None or not self._sessions:
            return
        deadline = next(iter(self._sessions.values())).deadline
        delay = max(0.0, deadline - self.clock.seconds())
        self._timer = self.clock.callLater(delay, self._expire, deadline)

    def _expire(self, deadline: float) -> None:
        self._timer = None
        # The deadline the timer was set for, so float rounding in the delay cannot spare it.
        limit = max(deadline, self.clock.seconds())
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.deadline > limit:
                break
            self._close(oldest, "idle")
        self._arm()

    def _close(self, session: Session, reason: str) -> None:
        del self._sessions[session.client]
        session.backend.close()
        log.debug(
            "UDP session {client} closed: {reason}", client="%s:%d" % session.client, reason=reason
        )
        if self._sessions:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)
