"""One worker under a supervisor: the whole proxy, listening with SO_REUSEPORT, that answers
the supervisor on its channel (reload, scrape, stop) and asks it for the whole proxy's
/metrics and API counts.

Everything else (routing, balancing, health checks, the drain) is ProxyService's, per worker.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Dict, Optional

from prometheus_client import CONTENT_TYPE_LATEST
from twisted.internet import defer, threads
from twisted.internet.error import ReactorNotRunning
from twisted.internet.protocol import Factory

from tsproxy.config.load import load_directory
from tsproxy.logs import get_logger
from tsproxy.service import ProxyService, StartupError
from tsproxy.workers.channel import Channel, Message

__all__ = ["Aggregate", "WorkerService"]

log = get_logger(__name__)


class Aggregate:
    """What a worker's internal endpoints ask the supervisor (InternalEndpoints.aggregate)."""

    def __init__(self, worker: WorkerService) -> None:
        self.worker = worker

    def metrics(self) -> defer.Deferred[Any]:
        """(content type, body) of every worker's metrics merged."""
        d = self.worker.ask("metrics")
        d.addCallback(lambda answer: (CONTENT_TYPE_LATEST, answer["text"].encode("utf-8")))
        return d

    def stats(self) -> defer.Deferred[Any]:
        """Per-service request and error counts of every worker, summed."""
        return self.worker.ask("stats").addCallback(lambda answer: answer["stats"])


class WorkerService(ProxyService):
    """The proxy as worker ``index`` of a supervisor talking on file descriptor ``channel_fd``."""

    reuse_port = True

    def __init__(
        self,
        config_dir: str,
        reactor: Any,
        channel_fd: int,
        index: int,
        start_date: str = "",
        loaded: Optional[Any] = None,
    ) -> None:
        self._start_date = ""
        # The API shows when the proxy started (the supervisor), not this worker.
        self._fixed_start_date = start_date
        super().__init__(
            config_dir,
            reactor,
            loaded=loaded,
            exit_on_startup_error=True,
            handle_signals=True,
            watch=False,
        )
        self.channel_fd = channel_fd
        self.index = index
        self.channel: Optional[Channel] = None
        self.aggregate = Aggregate(self)
        #: HTTP exchanges this worker answered (observed ones: metrics or access log on).
        self.requests = 0
        self._reload_lock = defer.DeferredLock()

    @property  # type: ignore[override]
    def start_date(self) -> str:
        return self._fixed_start_date or self._start_date

    @start_date.setter
    def start_date(self, value: str) -> None:
        self._start_date = value

    def ask(self, op: str) -> defer.Deferred[Any]:
        if self.channel is None:
            return defer.fail(RuntimeError("no supervisor"))
        return self.channel.call(op)

    def startService(self) -> None:
        channel = Channel(self.reactor, self._handle, self._supervisor_gone)
        self.channel = channel
        self.reactor.adoptStreamConnection(
            self.channel_fd, socket.AF_UNIX, Factory.forProtocol(lambda: channel)
        )
        os.close(self.channel_fd)
        super().startService()
        channel.send({"op": "ready", "pid": os.getpid()})

    def _open(self, ep: Any) -> bool:
        if ep.port == 0:
            # Each worker would listen on a port of its own (a reload adding one is refused).
            raise StartupError(
                "%s: entrypoint %s: with --workers, an entrypoint needs a fixed port, not :0"
                % (ep.location, ep.name)
            )
        return super()._open(ep)

    def _start_observing(self, static: Any) -> None:
        super()._start_observing(static)
        observer = self.observer
        if observer is not None:
            exchange = observer.exchange

            def counted(rec: Any) -> None:
                self.requests += 1
                exchange(rec)

            observer.exchange = counted

    # -- the supervisor's requests ---------------------------------------------------------

    def _handle(self, message: Message) -> Any:
        op = message.get("op")
        if op == "scrape":
            return self._scrape()
        if op == "stats":
            return {"stats": self.metrics.dashboard_stats() if self.metrics is not None else {}}
        if op == "reload":
            return self._reload_lock.run(self._reload, bool(message.get("force")))
        if op == "stop":
            self.request_stop()
        elif op == "cut":
            self._cut_drains()
        elif op == "reopen":
            self._reopen_logs()
        return None

    def _scrape(self) -> Dict[str, Any]:
        metrics = self.metrics
        text = metrics.exposition()[1].decode("utf-8") if metrics is not None else ""
        stats = metrics.dashboard_stats() if metrics is not None else {}
        return {"pid": os.getpid(), "text": text, "stats": stats, "requests": self.requests}

    def _reload(self, force: bool) -> defer.Deferred[Any]:
        """Reload as on SIGHUP, and say what came of it: applied, refused or unchanged."""
        pool = self.reactor.getThreadPool()
        d: defer.Deferred[Any] = threads.deferToThreadPool(
            self.reactor, pool, load_directory, self.config_dir
        )
        d.addCallback(self._apply, force)

        def verdict(applied: bool) -> Dict[str, Any]:
            result = "applied" if applied else "refused" if self._refused else "unchanged"
            return {"result": result}

        return d.addCallback(verdict)

    def request_stop(self) -> None:
        """Stop gracefully, as on SIGTERM (asked again: nothing more, unlike a signal)."""
        if self._stop_requested:
            return
        self._stop_requested = True
        try:
            self.reactor.stop()
        except ReactorNotRunning:
            pass

    def _supervisor_gone(self) -> None:
        if not self._stop_requested:
            log.warn("worker {index}: the supervisor is gone, stopping", index=self.index)
        self.request_stop()
