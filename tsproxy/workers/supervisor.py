"""The supervisor of ``--workers N``: starts N worker processes, restarts those that die,
tells them all to reload when the configuration changes, drains them on SIGTERM, and
answers their internal endpoints' questions about the whole proxy (/metrics, API counts).

It never listens on an entrypoint nor reads a request: the workers do (tsproxy.workers.worker).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

import attrs
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.protocol import Factory, ProcessProtocol

from tsproxy.api.internal import rfc3339_now
from tsproxy.logs import apply_log_level, get_logger
from tsproxy.watch import ConfigWatcher, watch_directory
from tsproxy.workers.channel import Channel, ChannelError, Message
from tsproxy.workers.merge import WorkerScrape, merge_workers, sum_stats

__all__ = ["Decision", "RestartPolicy", "Supervisor", "worker_argv"]

log = get_logger(__name__)

#: How long the supervisor waits for a worker's metrics, and for its reload verdict.
SCRAPE_TIMEOUT = 5.0
RELOAD_TIMEOUT = 60.0


@attrs.frozen
class Decision:
    """After a worker exited: the counts to keep, and the delay before restarting it (None:
    give up, the supervisor exits non-zero)."""

    failures: int
    start_failures: int
    delay: Optional[float]


@attrs.frozen
class RestartPolicy:
    """Backoff: ``first`` seconds after one failure, doubling up to ``longest``; a worker
    that served ``stable`` seconds starts afresh; ``start_failures`` exits in a row before
    it reported ready (a port taken, a broken install) and the supervisor gives up."""

    first: float = 0.1
    longest: float = 5.0
    stable: float = 10.0
    start_failures: int = 3

    def after_exit(self, failures: int, start_failures: int, ready: bool, lived: float) -> Decision:
        """What to do once a worker exited (``failures``, ``start_failures``: the counts
        before this exit; ``ready``: it had started serving; ``lived``: seconds it ran)."""
        if ready:
            start_failures = 0
            failures = 1 if lived >= self.stable else failures + 1
        else:
            start_failures += 1
            failures += 1
            if start_failures >= self.start_failures:
                return Decision(failures, start_failures, None)
        delay = min(self.first * 2 ** (failures - 1), self.longest)
        return Decision(failures, start_failures, delay)


def worker_argv(config_dir: str, index: int, start_date: str, fd: int) -> List[str]:
    """The command of one worker: this interpreter running ``twist tsproxy`` in worker mode."""
    return [
        sys.executable,
        "-m",
        "twisted",
        "--log-format=text",
        "tsproxy",
        "-c",
        config_dir,
        "--worker-channel=%d" % fd,
        "--worker-index=%d" % index,
        "--worker-start-date=" + start_date,
    ]


def describe_exit(reason: Any) -> str:
    """``exited with status 1`` / ``killed by signal 9`` from a processEnded reason."""
    value = reason.value
    if getattr(value, "signal", None):
        return "killed by signal %d" % value.signal
    return "exited with status %d" % (getattr(value, "exitCode", None) or 0)


@attrs.define
class Slot:
    """One worker position: the process in it now, and its history."""

    index: int
    process: Any = None
    channel: Optional[Channel] = None
    pid: int = 0
    ready: bool = False
    started: float = 0.0
    generation: int = 0
    failures: int = 0
    start_failures: int = 0
    restarts: int = 0
    timer: Any = None
    ended: Optional[defer.Deferred[None]] = None


class _WorkerProcess(ProcessProtocol):
    def __init__(self, supervisor: Supervisor, slot: Slot) -> None:
        self.supervisor = supervisor
        self.slot = slot

    def processEnded(self, reason: Any) -> None:
        self.supervisor._exited(self.slot, reason)


class Supervisor(Service):
    """Runs ``count`` workers on ``config_dir``; ``exit`` (twistd: os._exit) makes the
    process leave with status 1 after giving up on a worker."""

    def __init__(
        self,
        config_dir: str,
        count: int,
        reactor: Any,
        static: Any,
        policy: RestartPolicy = RestartPolicy(),
        handle_signals: bool = False,
        watch: bool = False,
        exit: Optional[Callable[[int], None]] = None,
        argv: Callable[[str, int, str, int], List[str]] = worker_argv,
    ) -> None:
        self.config_dir = config_dir
        self.reactor = reactor
        self.static = static
        self.policy = policy
        self.handle_signals = handle_signals
        self.watch = watch
        self.exit = exit
        self.argv = argv
        self.slots = [Slot(i) for i in range(count)]
        self.start_date = ""
        self.stopping = False
        self.exit_status = 0
        self.generation = 0
        self.watcher: Optional[ConfigWatcher] = None
        self._stop_requested = False
        self._reloading = False
        self._again: Optional[bool] = None

    # -- workers -----------------------------------------------------------------------------

    def startService(self) -> None:
        self.start_date = rfc3339_now()
        apply_log_level(self.static.log_level)
        log.info("supervisor: starting {count} workers", count=len(self.slots))
        for slot in self.slots:
            self._spawn(slot)
        if self.handle_signals:
            self.reactor.callWhenRunning(self._install_signal_handlers)
        if self.watch:
            self.watcher = watch_directory(
                self.reactor, self.reactor, self.config_dir, self.reload_soon
            )
            self.watcher.start()
        if self.exit is not None:
            self.reactor.addSystemEventTrigger("after", "shutdown", self._leave)
        Service.startService(self)

    def _spawn(self, slot: Slot) -> None:
        slot.timer = None
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fd = 3
        try:
            argv = self.argv(self.config_dir, slot.index, self.start_date, fd)
            slot.process = self.reactor.spawnProcess(
                _WorkerProcess(self, slot),
                argv[0],
                argv,
                env=dict(os.environ),
                childFDs={0: 0, 1: 1, 2: 2, fd: theirs.fileno()},
            )
            channel = Channel(self.reactor, lambda m: self._handle(slot, m))
            self.reactor.adoptStreamConnection(
                mine.fileno(), socket.AF_UNIX, Factory.forProtocol(lambda: channel)
            )
        finally:
            mine.close()
            theirs.close()
        slot.channel = channel
        slot.pid = slot.process.pid
        slot.ready = False
        slot.started = self.reactor.seconds()
        slot.generation = self.generation
        slot.ended = defer.Deferred()

    def _handle(self, slot: Slot, message: Message) -> Any:
        op = message.get("op")
        if op == "ready":
            slot.ready = True
            log.info("worker {index} (pid {pid}) serving", index=slot.index, pid=slot.pid)
            if slot.generation != self.generation and not self.stopping:
                # The configuration changed while it started: it may have read the old one.
                self._reload_slots([slot], False)
            if self.stopping:
                slot.channel.send({"op": "stop"})  # type: ignore[union-attr]
            return None
        if op == "metrics":
            return self.gather_metrics()
        if op == "stats":
            return self.gather_stats()
        return None

    def _exited(self, slot: Slot, reason: Any) -> None:
        how = describe_exit(reason)
        ended, slot.ended = slot.ended, None
        slot.process = None
        lived = self.reactor.seconds() - slot.started
        was_ready, slot.ready = slot.ready, False
        if self.stopping:
            log.info("worker {index} (pid {pid}) {how}", index=slot.index, pid=slot.pid, how=how)
        else:
            decision = self.policy.after_exit(slot.failures, slot.start_failures, was_ready, lived)
            slot.failures, slot.start_failures = decision.failures, decision.start_failures
            if decision.delay is None:
                log.critical(
                    "worker {index} (pid {pid}) {how}: it failed to start {n} times in a row,"
                    " giving up",
                    index=slot.index,
                    pid=slot.pid,
                    how=how,
                    n=decision.start_failures,
                )
                self.exit_status = 1
                self._stop_reactor()
            else:
                log.warn(
                    "worker {index} (pid {pid}) {how}; restarting it in {delay} s",
                    index=slot.index,
                    pid=slot.pid,
                    how=how,
                    delay=round(decision.delay, 3),
                )
                slot.restarts += 1
                slot.timer = self.reactor.callLater(decision.delay, self._spawn, slot)
        if ended is not None:
            ended.callback(None)

    # -- what workers ask ------------------------------------------------------------------

    def _live(self) -> List[Slot]:
        return [s for s in self.slots if s.ready and s.channel is not None]

    @defer.inlineCallbacks
    def gather_metrics(self) -> Any:
        """Every worker's exposition merged, with one series per worker of its state."""
        live = self._live()
        answers = yield defer.DeferredList(
            [s.channel.call("scrape", timeout=SCRAPE_TIMEOUT) for s in live],  # type: ignore[union-attr]
            consumeErrors=True,
        )
        got: Dict[int, Dict[str, Any]] = {}
        for slot, (ok, answer) in zip(live, answers):
            if ok:
                got[slot.index] = answer
            else:
                log.warn("worker {index}: no metrics ({why})", index=slot.index, why=answer.value)
        scrapes = [
            WorkerScrape(
                s.index,
                s.pid if s.process is not None else 0,
                s.restarts,
                got[s.index]["text"] if s.index in got else None,
                got[s.index]["requests"] if s.index in got else 0,
            )
            for s in self.slots
        ]
        return {"text": merge_workers(scrapes).decode("utf-8")}

    @defer.inlineCallbacks
    def gather_stats(self) -> Any:
        """Every worker's per-service counts, summed."""
        answers = yield defer.DeferredList(
            [s.channel.call("stats", timeout=SCRAPE_TIMEOUT) for s in self._live()],  # type: ignore[union-attr]
            consumeErrors=True,
        )
        return {"stats": sum_stats(answer["stats"] for ok, answer in answers if ok)}

    # -- reloads ---------------------------------------------------------------------------

    def reload_soon(self, force: bool = False) -> None:
        """Tell every worker to reload (one more round after the one running, if asked)."""
        self.generation += 1
        if self._reloading:
            self._again = bool(self._again) or force
            return
        self._reloading = True
        d = self._reload_slots(self._live(), force)
        d.addBoth(self._reload_done)

    def _reload_done(self, ignored: object) -> None:
        self._reloading = False
        if self._again is not None:
            force, self._again = self._again, None
            self.reload_soon(force)

    def _reload_slots(self, slots: Sequence[Slot], force: bool) -> defer.Deferred[Any]:
        generation = self.generation
        calls = []
        for slot in slots:
            slot.generation = generation
            d = slot.channel.call("reload", timeout=RELOAD_TIMEOUT, force=force)  # type: ignore[union-attr]
            d.addBoth(self._reported, slot)
            calls.append(d)
        return defer.gatherResults(calls)

    def _reported(self, answer: Any, slot: Slot) -> None:
        if isinstance(answer, dict):
            result = answer.get("result")
            if result == "unchanged":
                log.debug("worker {index}: configuration unchanged", index=slot.index)
            elif result == "applied":
                log.info(
                    "worker {index} (pid {pid}): configuration applied",
                    index=slot.index,
                    pid=slot.pid,
                )
            else:
                log.error(
                    "worker {index} (pid {pid}): configuration refused, still serving the last"
                    " good one",
                    index=slot.index,
                    pid=slot.pid,
                )
        else:
            why = answer.value if isinstance(answer.value, ChannelError) else answer
            log.error("worker {index}: no reload verdict ({why})", index=slot.index, why=why)

    # -- stopping --------------------------------------------------------------------------

    def _send_all(self, op: str) -> None:
        for slot in self.slots:
            if slot.channel is not None and slot.process is not None:
                slot.channel.send({"op": op})

    def stopService(self) -> defer.Deferred[Any]:
        """Drain every worker (each within its entrypoints' grace time) and wait for all of
        them to exit; a worker still there long after that is killed."""
        self.stopping = True
        Service.stopService(self)
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        waiting: List[defer.Deferred[None]] = []
        for slot in self.slots:
            if slot.timer is not None and slot.timer.active():
                slot.timer.cancel()
            slot.timer = None
            if slot.process is None:
                continue
            # A closed channel: the worker is exiting already (it stopped on a signal of its
            # own, Ctrl-C reaches the whole process group); a signal now would only cut its exit.
            if slot.channel is not None and slot.channel.connected_now:
                slot.channel.send({"op": "stop"})
            if slot.ended is not None:
                waiting.append(slot.ended)
        grace = max([ep.grace_timeout for ep in self.static.entrypoints] + [0.0])
        overdue = self.reactor.callLater(grace + 10.0, self._kill_all)
        done = defer.gatherResults(waiting)
        done.addBoth(lambda result: overdue.cancel() if overdue.active() else None)
        done.addCallback(lambda _: log.info("supervisor: every worker has stopped"))
        return done

    def _kill_all(self) -> None:
        for slot in self.slots:
            if slot.process is not None:
                log.warn(
                    "worker {index} (pid {pid}) still running: killed",
                    index=slot.index,
                    pid=slot.pid,
                )
                slot.process.signalProcess("KILL")

    def _stop_reactor(self) -> None:
        if not self._stop_requested:
            self._stop_requested = True
            self.reactor.callLater(0, self.reactor.stop)

    def _leave(self) -> None:
        """After the reactor stopped: leave with the status (twistd itself would exit 0)."""
        if self.exit_status and self.exit is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            self.exit(self.exit_status)

    def _install_signal_handlers(self) -> None:
        """As ProxyService's: SIGTERM/SIGINT drain the workers (again: cut them short),
        SIGHUP reloads them, SIGUSR1 has them reopen their access logs."""

        def on_stop(signum: int, frame: Any) -> None:
            if self._stop_requested:
                log.info("signal {signum} again: workers cut their connections", signum=signum)
                self.reactor.callFromThread(self._send_all, "cut")
                return
            log.info("signal {signum}: stopping the workers", signum=signum)
            self._stop_requested = True
            self.reactor.callFromThread(self.reactor.stop)

        def on_hangup(signum: int, frame: Any) -> None:
            log.info("SIGHUP: reloading every worker")
            self.reactor.callFromThread(self.reload_soon, True)

        def on_usr1(signum: int, frame: Any) -> None:
            self.reactor.callFromThread(self._send_all, "reopen")

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hangup)
        signal.signal(signal.SIGUSR1, on_usr1)
