"""ProxyService: owns the entrypoint listeners, the current routing table and the pools.

Requests read `current_table()` once at their start; swapping the table never changes a
request in flight. Stopping the service stops accepting, lets in-flight exchanges finish
within the grace timeout, then closes what is left.
"""

from __future__ import annotations

import signal
import socket
from typing import Any, Dict, List, Optional

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from tsproxy.config.load import load_directory
from tsproxy.http.backend import BackendPool
from tsproxy.http.mirror import MirrorSender
from tsproxy.http.server import HTTPEntryPointFactory
from tsproxy.logs import apply_log_level
from tsproxy.runtime.build import build_table

log = Logger()


class StartupError(Exception):
    """The proxy cannot start (a port cannot be opened); the message says why."""


def _tls_client_options(hostname: str) -> Any:
    from twisted.internet.ssl import optionsForClientTLS

    return optionsForClientTLS(hostname)


class ProxyService(Service):
    """The running proxy."""

    def __init__(
        self,
        config_dir: str,
        reactor: Any,
        loaded: Optional[Any] = None,
        exit_on_startup_error: bool = False,
        clock: Any = None,
        handle_signals: bool = False,
    ) -> None:
        self.handle_signals = handle_signals
        self.clock = clock if clock is not None else reactor
        self.config_dir = config_dir
        self.exit_on_startup_error = exit_on_startup_error
        self.reactor = reactor
        self.loaded = loaded
        self.table: Any = None
        self.ports: Dict[str, Any] = {}
        self.factories: List[HTTPEntryPointFactory] = []
        self.pool: Optional[BackendPool] = None
        self.mirrors: Optional[MirrorSender] = None

    def current_table(self) -> Any:
        return self.table

    def load(self) -> None:
        """Load and build the configuration; log every problem with file and line."""
        loaded = self.loaded if self.loaded is not None else load_directory(self.config_dir)
        self.loaded = None
        if loaded.static is None:
            raise StartupError("\n".join(str(e) for e in loaded.errors))
        apply_log_level(loaded.static.log_level)
        for notice in loaded.notices:
            log.info("{notice}", notice=notice)
        result = build_table(loaded)
        for err in tuple(loaded.errors) + tuple(result.errors):
            log.error("{error}", error=str(err))
        for warning in result.warnings:
            log.warn("{warning}", warning=str(warning))
        self.table = result.table

    def startService(self) -> None:
        try:
            self._start()
        except StartupError as e:
            if not self.exit_on_startup_error:
                raise
            log.critical("cannot start: {error}", error=str(e))
            # Under twistd/twist: leave with status 1 and the message, not a traceback.
            raise SystemExit(1) from None

    def _start(self) -> None:
        if self.table is None:
            self.load()
        static = self.table.static
        self.pool = BackendPool(self.reactor, self.clock, tls_options=_tls_client_options)
        self.mirrors = MirrorSender(self.reactor)
        hostname = socket.gethostname().encode("idna")
        for ep in static.entrypoints:
            if ep.protocol != "tcp":
                log.info(
                    "entrypoint {name}: {protocol} entrypoints are not served yet",
                    name=ep.name,
                    protocol=ep.protocol,
                )
                continue
            factory = HTTPEntryPointFactory(
                ep, self.current_table, self.pool, self.clock, hostname, mirrors=self.mirrors
            )
            try:
                port = self.reactor.listenTCP(ep.port, factory, backlog=1024, interface=ep.host)
            except CannotListenError as e:
                self._stop_ports()
                where = "%s:%d" % (ep.host or "*", ep.port)
                raise StartupError(
                    "entrypoint %s: cannot listen on %s: %s" % (ep.name, where, e.socketError)
                ) from None
            self.ports[ep.name] = port
            self.factories.append(factory)
            log.info("entrypoint {name} listening on {addr}", name=ep.name, addr=port.getHost())
        if self.handle_signals:
            self.reactor.callWhenRunning(self._install_signal_handlers)
        Service.startService(self)

    def _install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop the proxy gracefully and the process exits 0.

        The reactor's own handlers make twistd re-raise the signal at exit, which reads
        as a crash to process supervisors; a requested shutdown that went well is not one.
        """

        def on_signal(signum: int, frame: Any) -> None:
            log.info("signal {signum}: shutting down", signum=signum)
            self.reactor.callFromThread(self.reactor.stop)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def port_of(self, name: str) -> int:
        """The port an entrypoint actually listens on (for entrypoints configured as :0)."""
        return int(self.ports[name].getHost().port)

    def _stop_ports(self) -> defer.Deferred[Any]:
        ports, self.ports = self.ports, {}
        return defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports.values()])

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        Service.stopService(self)
        yield self._stop_ports()
        connections = [c for f in self.factories for c in list(f.connections)]
        for conn in connections:
            conn.close()
        grace = max((f.entrypoint.grace_timeout for f in self.factories), default=0.0)
        deadline = self.reactor.seconds() + grace
        while any(f.connections for f in self.factories) and self.reactor.seconds() < deadline:
            yield _sleep(self.reactor, 0.05)
        for factory in self.factories:
            for conn in list(factory.connections):
                conn.transport.abortConnection()
        self.factories = []
        if self.pool is not None:
            self.pool.close()
        if self.mirrors is not None:
            yield self.mirrors.close()


def _sleep(clock: Any, seconds: float) -> defer.Deferred[None]:
    d: defer.Deferred = defer.Deferred()
    clock.callLater(seconds, d.callback, None)
    return d
