"""A TCP listening port that, out of descriptors, stops accepting for a moment.

Twisted's port answers EMFILE by closing every waiting client (logging a line for each), or,
without its spare descriptor, by trying again on every reactor turn (a busy loop, a line each
time). This one leaves clients in the backlog, retries after a pause, and logs the error once
with a count, as nginx does.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from twisted.internet import tcp

from tsproxy.logs import get_logger
from tsproxy.repeated import RepeatedError

__all__ = ["ACCEPT_PAUSE", "GuardedPort", "listen_tcp"]

log = get_logger(__name__)

#: Seconds accepting stops for after the process (or system) ran out of descriptors.
ACCEPT_PAUSE = 0.1
#: accept() calls per reactor turn at most, so one busy port cannot starve the rest.
_ACCEPTS_PER_TURN = 100

_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_TRY_NEXT = (errno.EPERM, errno.ECONNABORTED, errno.EINTR, errno.EPROTO)
_NONE_LEFT = (errno.EAGAIN, errno.EWOULDBLOCK)


class GuardedPort(tcp.Port):
    """tcp.Port with an accept loop that pauses on EMFILE/ENFILE/ENOBUFS/ENOMEM; ``clock``
    times the pause and the repeated-error line."""

    def __init__(
        self, port: int, factory: Any, backlog: int, interface: str, reactor: Any, clock: Any
    ) -> None:
        super().__init__(port, factory, backlog, interface, reactor)
        self.clock = clock
        self.name = getattr(factory, "name", "")
        self.accept_errors = RepeatedError(
            clock,
            log,
            "entrypoint {name}: cannot accept connections: {error}; pausing accepts",
            name=self.name,
        )
        self._resume: Any = None

    def doRead(self) -> None:
        for _ in range(_ACCEPTS_PER_TURN):
            try:
                skt, addr = self.socket.accept()
            except OSError as e:
                if e.errno in _NONE_LEFT:
                    return
                if e.errno in _TRY_NEXT:
                    continue
                if e.errno in _OUT_OF_RESOURCES:
                    self._out_of_resources(e)
                    return
                log.failure("entrypoint {name}: accept() failed", name=self.name)
                return
            try:
                self._serve(skt, addr)
            except Exception:
                log.failure("entrypoint {name}: a new connection failed", name=self.name)

    def _serve(self, skt: socket.socket, addr: Any) -> None:
        # As tcp.Port.doRead does with an accepted socket.
        if len(addr) == 4:
            host = socket.getnameinfo(addr, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
            addr = tuple([host[0]] + list(addr[1:]))
        protocol = self.factory.buildProtocol(self._buildAddr(addr))  # type: ignore[union-attr]
        if protocol is None:
            skt.close()
            return
        session = self.sessionno
        self.sessionno = session + 1
        transport = self.transport(skt, protocol, addr, self, session, self.reactor)
        protocol.makeConnection(transport)

    def _out_of_resources(self, e: OSError) -> None:
        """Leave the waiting clients in the backlog and try again after a pause."""
        self.accept_errors(e.strerror or e)
        if self._resume is None:
            self.stopReading()
            self._resume = self.clock.callLater(ACCEPT_PAUSE, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._resume = None
        if self.connected and not self.disconnecting:
            self.startReading()

    def connectionLost(self, reason: Any) -> None:
        if self._resume is not None:
            if self._resume.active():
                self._resume.cancel()
            self._resume = None
        self.accept_errors.stop()
        super().connectionLost(reason)


def listen_tcp(
    reactor: Any, clock: Any, port: int, factory: Any, backlog: int = 50, interface: str = ""
) -> GuardedPort:
    """reactor.listenTCP with a :class:`GuardedPort`; CannotListenError as it raises."""
    listening = GuardedPort(port, factory, backlog, interface, reactor, clock)
    listening.startListening()
    return listening
