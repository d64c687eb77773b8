"""A UDP entrypoint: one socket for clients, one connected socket per session towards its server.

The sockets only; what a datagram means for a session is tsproxy.udp.sessions' business. The
reactor (sockets) and the clock (timeouts) are parameters.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Callable, Optional, Tuple

from twisted.internet import defer
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.protocol import DatagramProtocol
from zope.interface import implementer

from tsproxy.config.static import EntryPoint
from tsproxy.logs import get_logger
from tsproxy.repeated import RepeatedError
from tsproxy.runtime.udp import UDPServer
from tsproxy.udp.sessions import Address, SessionTable
from tsproxy.workers.sockets import listen_udp_shared

if TYPE_CHECKING:
    from tsproxy.observe.metrics import Metrics

__all__ = ["BackendSocket", "UDPEntryPoint"]

log = get_logger(__name__)

# The largest UDP payload is 65,507 bytes over IPv4; reading 65,535 never cuts a datagram.
MAX_DATAGRAM = 65535
# Datagrams read from one backend socket per reactor turn, so one busy server cannot starve
# the others.
_READS_PER_TURN = 64


@implementer(IReadDescriptor)
class BackendSocket:
    """The connected socket of one session: the client's datagrams go to the server, the
    server's come back through the entrypoint.

    Connected, it hears only that server, and hears of ICMP unreachable: as ECONNREFUSED on a
    read or a write, or as an error event the reactor reports through connectionLost. A plain
    reader rather than a Twisted UDP port, which logs two lines per socket and closes a tick
    later: a session's socket opens and closes with the session.
    """

    def __init__(self, entrypoint: UDPEntryPoint, client: Address, server: UDPServer) -> None:
        self.entrypoint = entrypoint
        self.client = client
        family = socket.AF_INET6 if ":" in server.host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_DGRAM)
        self.closed = False
        try:
            self.socket.setblocking(False)
            self.socket.connect((server.host, server.port))
        except OSError:
            self.socket.close()
            raise
        entrypoint.reactor.addReader(self)
        metrics = entrypoint.metrics
        if metrics is not None:
            metrics.connection_opened(entrypoint.entrypoint.name, "UDP")

    def fileno(self) -> int:
        return self.socket.fileno() if not self.closed else -1

    def logPrefix(self) -> str:
        return "UDP session %s:%d" % self.client

    def doRead(self) -> None:
        sessions = self.entrypoint.sessions
        for _ in range(_READS_PER_TURN):
            if self.closed:
                return
            try:
                data = self.socket.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._failed(exc)
                return
            sessions.from_backend(self.client, self, data)

    def connectionLost(self, reason: Any) -> None:
        """The reactor saw an error event (the ICMP unreachable of a connected socket)."""
        self._failed(reason.value)

    def _failed(self, exc: Any) -> None:
        if self.closed:
            return
        log.debug("UDP session {client}: {e}, session closed", client=self.client, e=exc)
        self.entrypoint.sessions.backend_failed(self.client, self)
        self.close()  # in case the session was already gone

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.socket.send(data)
        except ConnectionRefusedError as exc:
            self._failed(exc)
        except OSError as exc:
            # UDP may drop: a full send buffer loses this datagram, not the session.
            self.entrypoint.drops("datagram to a server: %s" % (exc.strerror or exc))

    def close(self) -> None:
        if self.closed:
            return
        self.entrypoint.reactor.removeReader(self)
        self.closed = True
        self.socket.close()
        metrics = self.entrypoint.metrics
        if metrics is not None:
            metrics.connection_closed(self.entrypoint.entrypoint.name, "UDP")


class UDPEntryPoint(DatagramProtocol):
    """The listening socket of a UDP entrypoint and its sessions.

    A new session asks the current table for the entrypoint's UDP service once and keeps the
    server it picked; a reload changes where new sessions go, not live ones. ``max_sessions``
    (default: the entrypoint's udp.maxSessions) bounds the sessions, hence the sockets.
    """

    def __init__(
        self,
        entrypoint: EntryPoint,
        current_table: Callable[[], Any],
        reactor: Any,
        clock: Any,
        metrics: Optional[Metrics] = None,
        max_sessions: Optional[int] = None,
    ) -> None:
        self.entrypoint = entrypoint
        #: Counts sessions as open UDP connections (traefik_open_connections).
        self.metrics = metrics
        self.current_table = current_table
        self.reactor = reactor
        self.clock = clock
        self.sessions = SessionTable(
            clock,
            entrypoint.udp_timeout,
            entrypoint.udp_max_sessions if max_sessions is None else max_sessions,
            self._open_backend,
            self._send_to_client,
        )
        self.port: Any = None
        self._unrouted_reported = False
        # Out of descriptors, a flood would otherwise log a line per datagram.
        self.socket_errors = RepeatedError(
            clock,
            log,
            "entrypoint {name}: cannot open a UDP socket to {server}: {error}; datagram dropped",
            name=entrypoint.name,
            server="",
        )
        #: Datagrams dropped one by one (full buffers, no server): debug lines, counted.
        self.drops = RepeatedError(
            clock,
            log,
            "entrypoint {name}: datagram dropped: {error}",
            level="debug",
            name=entrypoint.name,
        )
        self._stopped: Optional[defer.Deferred[None]] = None

    def listen(self, reuse_port: bool = False) -> None:
        """Open the entrypoint's socket; CannotListenError if the address is taken.
        ``reuse_port``: share the port with other workers' sockets (SO_REUSEPORT)."""
        ep = self.entrypoint
        if reuse_port:
            self.port = listen_udp_shared(self.reactor, ep.host, ep.port, self, MAX_DATAGRAM)
            return
        self.port = self.reactor.listenUDP(
            ep.port, self, interface=ep.host, maxPacketSize=MAX_DATAGRAM
        )

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.sessions.from_client(addr, data)

    def _open_backend(self, client: Address) -> Optional[Tuple[UDPServer, BackendSocket]]:
        name = self.entrypoint.name
        node = self.current_table().udp_service(name)
        if node is None:
            if not self._unrouted_reported:
                self._unrouted_reported = True
                log.warn("entrypoint {name}: no UDP router, datagrams are dropped", name=name)
            return None
        server, services = node.pick_path()
        if server is not None and self.metrics is not None:
            self.metrics.l4_session("udp", services)
        if server is None:
            self.drops("no server to pick")
            return None
        try:
            backend = BackendSocket(self, client, server)
        except OSError as exc:
            # Out of descriptors, most likely: this client waits, the others go on.
            self.socket_errors.fields["server"] = server.address
            self.socket_errors(exc.strerror or exc)
            return None
        return server, backend

    def _send_to_client(self, data: bytes, client: Address) -> None:
        if self.port is None:
            return
        try:
            # The port's own write() checks the address is an IP literal, on every datagram;
            # this one came from recvfrom.
            self.port.socket.sendto(data, client)
        except OSError as exc:
            self.drops("reply to a client: %s" % (exc.strerror or exc))

    def stop(self, grace: float, clock: Any = None) -> defer.Deferred[None]:
        """Take no new session; let live ones run until idle, at most ``grace`` seconds on
        ``clock`` (default: the listener's); then close them and the socket. Fires once every
        socket is closed."""
        if self._stopped is not None:
            return self._stopped
        self.sessions.accepting = False
        stopped: defer.Deferred[None] = defer.Deferred()
        self._stopped = stopped
        timer = (clock or self.clock).callLater(max(grace, 0.0), self._finish)
        idle = self.sessions.when_empty()
        idle.addCallback(lambda _: timer.cancel() if timer.active() else None)
        idle.addCallback(lambda _: self._finish())
        return stopped

    def cut(self) -> None:
        """Stopping, and the grace time is cut short (a second signal): close now."""
        if self._stopped is not None:
            self._finish()

    def _finish(self) -> None:
        stopped = self._stopped
        if stopped is None or self.port is None:
            return
        port, self.port = self.port, None
        self.socket_errors.stop()
        self.drops.stop()
        self.sessions.close_all()
        closing = defer.maybeDeferred(port.stopListening)
        closing.addCallback(lambda _: stopped.callback(None))
