"""ProxyService: owns the entrypoint listeners, the current routing table, the pools and the
configuration watcher.

Requests read `current_table()` once at their start; a reload swaps that one attribute, so it
never changes a request in flight, and a configuration with any error is never swapped in.
Stopping the service stops accepting, lets in-flight exchanges finish within each entrypoint's
grace timeout, then cuts what is left.
"""

from __future__ import annotations

import signal
import socket
from typing import Any, Dict, Iterable, List, Optional, Set

import attrs
from twisted.application.service import Service
from twisted.internet import defer, threads
from twisted.logger import ILogObserver
from twisted.python.components import Componentized

from tsproxy.api.internal import rfc3339_now
from tsproxy.config.load import LoadedConfig, load_directory
from tsproxy.config.static import EntryPoint
from tsproxy.drain import Drain
from tsproxy.fdlimit import open_files, raise_open_files_limit, udp_session_budget
from tsproxy.http.backend import BackendPool
from tsproxy.http.backend_tls import client_options
from tsproxy.http.entrypoint import HTTPEntryPointFactory
from tsproxy.http.healthcheck import HealthMonitor
from tsproxy.http.mirror import MirrorSender
from tsproxy.logs import apply_log_level, get_logger
from tsproxy.observe import Observer
from tsproxy.observe.accesslog import AccessLog
from tsproxy.observe.metrics import Metrics
from tsproxy.runtime.audit import Review, review
from tsproxy.runtime.reload import static_change
from tsproxy.service_listen import ServiceListeners, StartupError, _plural, table_summary
from tsproxy.service_providers import ServiceProviders
from tsproxy.udp.listener import UDPEntryPoint
from tsproxy.watch import ConfigWatcher, watch_directory

try:
    import resource as _resource
except ImportError:  # not a POSIX system: no descriptor limit to raise
    _resource = None  # type: ignore[assignment]

log = get_logger(__name__)


def _within(reactor: Any, d: defer.Deferred[Any], seconds: float) -> defer.Deferred[Any]:
    """``d``, or None after ``seconds`` if it has not fired by then (``d`` left running)."""
    done: defer.Deferred[Any] = defer.Deferred()

    def expired() -> None:
        if not done.called:
            done.callback(None)

    timer = reactor.callLater(seconds, expired)

    def fired(result: Any) -> None:
        if timer.active():
            timer.cancel()
        if not done.called:
            done.callback(result)

    d.addBoth(fired)
    return done


def stop_dropped_steps(old: Any, new: Any) -> None:
    """Call ``stop()`` on the middleware steps of table ``old`` that table ``new`` (None:
    none) does not keep: a shared rateLimit's Redis connections are closed with its step."""
    if old is None:
        return
    kept = set()
    if new is not None:
        kept = {id(entry[0]) for part in new.middleware_reuse.values() for entry in part.values()}
    for part in old.middleware_reuse.values():
        for step, _ in part.values():
            stop = getattr(step, "stop", None)
            if id(step) in kept or stop is None:
                continue
            try:
                stop()
            except Exception:
                log.failure("stopping middleware {name} failed", name=getattr(step, "name", "?"))


class ProxyService(ServiceListeners, ServiceProviders, Service):
    """The running proxy."""

    def __init__(
        self,
        config_dir: str,
        reactor: Any,
        loaded: Optional[Any] = None,
        exit_on_startup_error: bool = False,
        clock: Any = None,
        handle_signals: bool = False,
        watch: bool = False,
    ) -> None:
        self.handle_signals = handle_signals
        self.watch = watch
        self.watcher: Optional[ConfigWatcher] = None
        #: The file provider's watcher (providers.file.watch), outside the directory.
        self.file_watcher: Optional[ConfigWatcher] = None
        #: The key-value providers' watchers, and the last tree each one read (absent until
        #: its first read: its routes are then not there yet).
        self.kv_watchers: List[Any] = []
        self.kv_pairs: Dict[str, Dict[str, str]] = {}
        #: The Kubernetes providers reading an API server, and the objects they last saw.
        self.kube_watchers: Dict[str, Any] = {}
        self.kube_objects: Dict[str, List[Dict[str, Any]]] = {}
        self.clock = clock if clock is not None else reactor
        self.config_dir = config_dir
        self.exit_on_startup_error = exit_on_startup_error
        self.reactor = reactor
        self.loaded = loaded
        self.table: Any = None
        self.ports: Dict[str, Any] = {}
        self.factories: List[HTTPEntryPointFactory] = []
        self.udp: Dict[str, UDPEntryPoint] = {}
        #: Sessions each UDP entrypoint may keep, from the open-files limit (None: no limit).
        self.udp_budget: Optional[int] = None
        self.pool: Optional[BackendPool] = None
        self.mirrors: Optional[MirrorSender] = None
        #: The health checkers of the table in force (while running).
        self.health: Optional[HealthMonitor] = None
        self.hostname = b""
        #: Metrics when metrics.prometheus or api is configured (the dashboard reads its
        #: per-service counts), the access log when accessLog is; None otherwise.
        self.metrics: Optional[Metrics] = None
        self.access_log: Optional[AccessLog] = None
        self.observer: Optional[Observer] = None
        # What the table in force was built from, and what was logged about it.
        self.applied: Optional[LoadedConfig] = None
        self._reported: Set[str] = set()
        self._static_seen: Any = None
        self._refused = False
        self._drains: List[Drain] = []
        self._stop_requested = False
        self._cut = False
        self._reloading = False
        self._again = False
        self._again_forced = False
        # providersThrottleDuration: when the last reload started, and a delayed one.
        self._last_reload = 0.0
        self._throttled: Any = None
        # For the internal endpoints: /ping answers 503 once a shutdown has begun.
        self.terminating = False
        self.start_date = ""
        #: Set by tsproxy.tap under twistd: handed to twistd as the application's log observer.
        self.log_observer: Optional[ILogObserver] = None

    def setServiceParent(self, parent: Any) -> None:
        # twistd reads the application's ILogObserver once the service has joined it.
        if self.log_observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.log_observer)
        Service.setServiceParent(self, parent)

    def current_table(self) -> Any:
        return self.table

    def load(self) -> None:
        """Load and build the configuration at startup; log every problem with file and line.

        Unlike a reload, startup takes a configuration with errors: the routes they touch are
        left out (as Traefik does) and the rest is served.
        """
        loaded = self.loaded if self.loaded is not None else load_directory(self.config_dir)
        self.loaded = None
        loaded = self._with_kv(loaded)
        if loaded.static is None:
            raise StartupError("\n".join(str(e) for e in loaded.errors))
        apply_log_level(loaded.static.log_level, loaded.static.log_format)
        result = review(loaded, reactor=self.reactor)
        for error in result.errors:
            log.error("{error}", error=str(error))
        self._report_new(result)
        self.table = result.table
        self.applied = loaded
        self._static_seen = loaded.static
        self._last_reload = self.clock.seconds()

    def reload(self, force: bool = False) -> bool:
        """Read the configuration directory again and swap in its table if it has no error.

        Returns whether a new table is in force. A configuration equal to the one in force is
        not rebuilt unless ``force`` (SIGHUP). Balancer state of unchanged services carries
        over; of the static configuration only new entrypoints and the log level apply live.
        """
        return self._apply(load_directory(self.config_dir), force)

    def reload_soon(self, force: bool = False) -> None:
        """Reload with the files read and parsed in a worker thread, as the watcher and SIGHUP
        do: parsing thousands of documents takes a second that requests should not wait for.
        The table is built and swapped in the reactor thread, which owns the balancer state.
        A reload asked for while one runs makes one more run after it.

        With a ``providers`` section, reloads that are not forced (the watchers') start at
        most once per providersThrottleDuration (or the CRD provider's throttleDuration, the
        longer): one asked for sooner waits, and the ones after it join it."""
        if not force and self.table is not None:
            wait = self._last_reload + self.table.static.providers.reload_throttle
            wait -= self.clock.seconds()
            if wait > 0:
                if self._throttled is None:
                    self._throttled = self.clock.callLater(wait, self._throttle_done)
                return
        if self._reloading:
            self._again = True
            self._again_forced = self._again_forced or force
            return
        self._reloading = True
        self._last_reload = self.clock.seconds()
        pool = self.reactor.getThreadPool()
        d = threads.deferToThreadPool(self.reactor, pool, load_directory, self.config_dir)
        d.addCallback(self._apply, force)
        d.addErrback(lambda failure: log.failure("reload failed", failure))
        d.addBoth(self._reload_done)

    def _throttle_done(self) -> None:
        self._throttled = None
        self.reload_soon()

    def _reload_done(self, ignored: object) -> None:
        self._reloading = False
        if self._again:
            force, self._again, self._again_forced = self._again_forced, False, False
            self.reload_soon(force)

    def _apply(self, loaded: LoadedConfig, force: bool) -> bool:
        """Judge ``loaded`` and swap its table in if it is clean (in the reactor thread)."""
        if self.table is None or not self.running:
            return False
        loaded = self._with_kv(loaded)
        if loaded == self.applied and not force:
            if self._refused:
                log.info("configuration files are back to the configuration in force")
                self._refused = False
            return False
        if loaded.static is None:
            return self._refuse(loaded.errors)
        change = static_change(self.table.static, loaded.static)
        if force or loaded.static != self._static_seen:
            self._static_seen = loaded.static
            for problem in change.restart:
                log.warn("{problem}", problem=str(problem))
        result = review(attrs.evolve(loaded, static=change.effective), self.table, self.reactor)
        if result.errors:
            return self._refuse(result.errors)
        try:
            self._open_all(change.added)
        except StartupError as e:
            return self._refuse([e])
        stop_dropped_steps(self.table, result.table)
        self.table = result.table
        self.applied = loaded
        self._refused = False
        if self.health is not None:
            self.health.update(result.table)
        if self.metrics is not None:
            self.metrics.config_reload(True)
            self.metrics.set_servers(result.table)
        apply_log_level(change.effective.log_level, change.effective.log_format)
        self._report_new(result)
        log.info("configuration applied: {summary}", summary=table_summary(result.table))
        return True

    def _refuse(self, errors: Iterable[object]) -> bool:
        problems = [str(e) for e in errors]
        for problem in problems:
            log.error("{error}", error=problem)
        log.error(
            "configuration not applied ({count}): still serving the last good one",
            count=_plural(len(problems), "error"),
        )
        self._refused = True
        if self.metrics is not None:
            self.metrics.config_reload(False)
        return False

    def _report_new(self, result: Review) -> None:
        """Log warnings and notices not logged before, so a reload repeats none of them."""
        reported = set()
        for warning in result.warnings:
            text = str(warning)
            reported.add(text)
            if text not in self._reported:
                log.warn("{warning}", warning=text)
        for notice in result.notices:
            reported.add(notice)
            if notice not in self._reported:
                log.info("{notice}", notice=notice)
        self._reported = reported

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
        self.start_date = rfc3339_now()
        self.pool = BackendPool(self.reactor, self.clock, tls_options=client_options)
        self.mirrors = MirrorSender(self.reactor)
        self.hostname = socket.gethostname().encode("idna")
        self._start_observing(static)
        self._budget_files(static.entrypoints)
        try:
            self._open_all(static.entrypoints)
        except StartupError:
            self._stop_observing()
            raise
        self.health = HealthMonitor(self.reactor, self.clock, self._server_changed)
        self.health.update(self.table)
        if self.metrics is not None:
            # The first configuration counts as a reload, as in Traefik.
            self.metrics.config_reload(True)
            self.metrics.set_servers(self.table)
        if self.handle_signals:
            self.reactor.callWhenRunning(self._install_signal_handlers)
        if self.watch:
            self.watcher = watch_directory(
                self.reactor, self.clock, self.config_dir, self.reload_soon
            )
            self.watcher.start()
        self._watch_file_provider(static)
        Service.startService(self)
        self._watch_kv(static)
        self._watch_kube(static)
        self._log_summary()

    def _start_observing(self, static: Any) -> None:
        """Create the metrics and the access log the static configuration asks for."""
        if static.prometheus is not None or static.api is not None:
            self.metrics = Metrics(static.prometheus, self.clock)
            if static.prometheus is not None:
                self.mirrors.observer = self.metrics.mirror_copy  # type: ignore[union-attr]
        if static.access_log is not None:
            try:
                self.access_log = AccessLog(static.access_log, self.clock)
            except OSError as e:
                raise StartupError(
                    "%s: accessLog: cannot open %s: %s"
                    % (static.path, static.access_log.file_path, e.strerror or e)
                ) from None
        if self.metrics is not None or self.access_log is not None:
            self.observer = Observer(self.metrics, self.access_log)

    def _server_changed(self, service: str, url: str, up: bool) -> None:
        if self.metrics is not None:
            self.metrics.server_status(service, url, up)

    def _budget_files(self, entrypoints: Iterable[EntryPoint]) -> None:
        """Raise the soft open-files limit to the hard one, and keep UDP sessions (a socket
        each) below it with room left for TCP connections."""
        limit = raise_open_files_limit(_resource)
        udp = sum(1 for ep in entrypoints if ep.protocol == "udp")
        if limit is None or not udp:
            return
        self.udp_budget = udp_session_budget(limit, open_files(), udp)
        log.debug(
            "open files limit {limit}: at most {budget} UDP sessions per entrypoint",
            limit=limit,
            budget=self.udp_budget,
        )

    def _stop_observing(self) -> None:
        access_log, self.access_log = self.access_log, None
        if access_log is not None:
            access_log.close()

    def _install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop the proxy gracefully and the process exits 0; a second one
        cuts the drain short. SIGHUP reloads the configuration; SIGUSR1 reopens the access
        log file (after a rotation moved it), as Traefik does.

        The reactor's own handlers make twistd re-raise the signal at exit, which reads
        as a crash to process supervisors; a requested shutdown that went well is not one.
        Neither twistd nor twist handles SIGHUP.
        """

        def on_stop(signum: int, frame: Any) -> None:
            if self._stop_requested:
                log.info("signal {signum} again: cutting open connections now", signum=signum)
                self.reactor.callFromThread(self._cut_drains)
                return
            self._stop_requested = True
            log.info("signal {signum}: shutting down", signum=signum)
            self.reactor.callFromThread(self.reactor.stop)

        def on_hangup(signum: int, frame: Any) -> None:
            self.reactor.callFromThread(self._reload_on_signal)

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)

        def on_usr1(signum: int, frame: Any) -> None:
            self.reactor.callFromThread(self._reopen_logs)

        signal.signal(signal.SIGHUP, on_hangup)
        signal.signal(signal.SIGUSR1, on_usr1)

    def _reopen_logs(self) -> None:
        if self.access_log is not None:
            log.info("SIGUSR1: reopening the access log")
            self.access_log.reopen()

    def _reload_on_signal(self) -> None:
        log.info("SIGHUP: reloading the configuration")
        self.reload_soon(force=True)

    def _cut_drains(self) -> None:
        self._cut = True
        for drain in self._drains:
            drain.cut()
        for listener in self.udp.values():
            listener.cut()

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        """Stop accepting (new connections are refused), let each entrypoint's connections
        finish their exchange within its graceTimeOut, cut the rest, close the pools."""
        self.terminating = True
        Service.stopService(self)
        stop_dropped_steps(self.table, None)
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        if self.health is not None:
            self.health.stop()
            self.health = None
        if self.file_watcher is not None:
            self.file_watcher.stop()
            self.file_watcher = None
        watchers, self.kv_watchers = self.kv_watchers, []
        watchers += list(self.kube_watchers.values())
        self.kube_watchers = {}
        kv_stopped = defer.gatherResults([w.stop() for w in watchers])
        if self._throttled is not None and self._throttled.active():
            self._throttled.cancel()
        self._throttled = None
        # UDP sessions drain alongside the TCP connections, within their entrypoint's grace.
        udp_stopped = self._stop_udp(0.0 if self._cut else None)
        yield self._stop_ports()
        factories, self.factories = self.factories, []
        busy = sum(len(f.connections) for f in factories)
        if busy:
            log.info("draining {connections}", connections=_plural(busy, "connection"))
        # Real time even when a test drives the HTTP timeouts with a fake clock.
        self._drains = [
            Drain(f.connections, 0.0 if self._cut else f.entrypoint.grace_timeout, self.reactor)
            for f in factories
        ]
        cut = yield defer.gatherResults([d.done for d in self._drains])
        if sum(cut):
            log.warn(
                "grace time over: cut {connections}", connections=_plural(sum(cut), "connection")
            )
            # Aborted connections are lost on a later reactor turn: wait for that (briefly),
            # so their exchanges reach the access log and metrics before those close.
            gone = defer.gatherResults([f.connections.when_empty() for f in factories])
            yield _within(self.reactor, gone, 1.0)
        self._drains = []
        if self.pool is not None:
            self.pool.close()
        if self.mirrors is not None:
            yield self.mirrors.close()
        yield _close_steps(self.table)
        yield udp_stopped
        yield kv_stopped
        self.udp = {}
        self._stop_observing()


def _close_steps(table: Any) -> Any:
    """Close what the table's middleware steps hold open (forwardAuth's connection pools)."""
    closing = []
    reuse = table.middleware_reuse if table is not None else {}
    for kept in reuse.values():
        for step, _ in kept.values():
            close = getattr(step, "close", None)
            if close is not None:
                closing.append(defer.maybeDeferred(close))
    return defer.gatherResults(closing, consumeErrors=True)
