"""Watching the configuration directory: say when its files may have changed, once a burst of
changes has settled.

inotify on Linux, a stat poller elsewhere. It never reads or judges the files: the callback
re-reads the whole directory (a Kubernetes ConfigMap changes by renaming its ``..data`` link).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional, Tuple

from twisted.internet.task import LoopingCall
from twisted.python.filepath import FilePath

from tsproxy.logs import get_logger

__all__ = [
    "DEBOUNCE",
    "Debounce",
    "InotifySource",
    "POLL_INTERVAL",
    "PollingSource",
    "ConfigWatcher",
    "directory_snapshot",
    "watch_directory",
]

log = get_logger(__name__)

#: Quiet time after the last event of a burst before the reload.
DEBOUNCE = 0.2
#: A burst that never settles still reloads this long after its first event.
DEBOUNCE_LIMIT = 0.8
#: Seconds between two scans of the polling fallback.
POLL_INTERVAL = 0.5

Snapshot = Dict[str, Tuple[int, int, int]]


class Debounce:
    """Calls ``action`` ``delay`` seconds after the last of a burst of ``touch()`` calls, and
    no later than ``limit`` seconds after the burst's first."""

    def __init__(
        self,
        clock: Any,
        action: Callable[[], None],
        delay: float = DEBOUNCE,
        limit: float = DEBOUNCE_LIMIT,
    ) -> None:
        self.clock = clock
        self.action = action
        self.delay = delay
        self.limit = limit
        self._pending: Any = None
        self._first = 0.0

    def touch(self) -> None:
        """Something changed: (re)start the quiet period."""
        now = self.clock.seconds()
        if self._pending is None:
            self._first = now
            self._pending = self.clock.callLater(self.delay, self._fire)
            return
        self._pending.reset(max(0.0, min(self.delay, self._first + self.limit - now)))

    def cancel(self) -> None:
        """Forget a pending call."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _fire(self) -> None:
        self._pending = None
        self.action()


class InotifySource:
    """Kernel notifications for the directory: writes, creations, deletions and renames in it.

    Construction raises where inotify is missing (ImportError without it in libc) or out of
    watches (INotifyError); nothing is left open then.
    """

    # In-place writes end with CLOSE_WRITE, atomic replaces with MOVED_TO; editors and
    # ConfigMaps also create, delete and rename away.
    MASK_NAMES = ("IN_CLOSE_WRITE", "IN_MOVED_TO", "IN_MOVED_FROM", "IN_CREATE", "IN_DELETE")

    def __init__(self, reactor: Any, path: str) -> None:
        from twisted.internet import inotify

        self._inotify = inotify
        self.path = path
        self._changed: Callable[[], None] = lambda: None
        self.notifier = inotify.INotify(reactor)
        mask = 0
        for name in self.MASK_NAMES:
            mask |= getattr(inotify, name)
        try:
            self.notifier.watch(FilePath(path), mask=mask, callbacks=[self._notify])
        except BaseException:
            self.notifier.loseConnection()
            raise

    def _notify(self, ignored: Any, path: FilePath, event: int) -> None:
        log.debug(
            "{path}: {events}",
            path=path.path,
            events=",".join(self._inotify.humanReadableMask(event)),
        )
        if event & self._inotify.IN_DELETE_SELF:
            log.warn("configuration directory {path} is gone: no more reloads", path=self.path)
            return
        self._changed()

    def start(self, changed: Callable[[], None]) -> None:
        self._changed = changed
        self.notifier.startReading()

    def stop(self) -> None:
        self.notifier.loseConnection()


def directory_snapshot(path: str) -> Snapshot:
    """(mtime in ns, size, inode) of every entry in ``path``, following symbolic links; an
    entry that vanishes while it is read is left out."""
    snapshot: Snapshot = {}
    try:
        entries = list(os.scandir(path))
    except OSError:
        return snapshot
    for entry in entries:
        try:
            stat = entry.stat()
        except OSError:
            continue
        snapshot[entry.name] = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    return snapshot


class PollingSource:
    """Compares a stat snapshot of the directory every ``interval`` seconds.

    Two writes of the same size within one file-time tick look alike; inotify has no such
    blind spot, which is why it is preferred.
    """

    def __init__(self, clock: Any, path: str, interval: float = POLL_INTERVAL) -> None:
        self.clock = clock
        self.path = path
        self.interval = interval
        self._call: Optional[LoopingCall] = None
        self._last: Snapshot = {}

    def start(self, changed: Callable[[], None]) -> None:
        self._last = directory_snapshot(self.path)

        def scan() -> None:
            now = directory_snapshot(self.path)
            if now != self._last:
                self._last = now
                changed()

        self._call = LoopingCall(scan)
        self._call.clock = self.clock
        self._call.start(self.interval, now=False).addErrback(
            lambda failure: log.failure("polling {path} stopped", failure, path=self.path)
        )

    def stop(self) -> None:
        if self._call is not None and self._call.running:
            self._call.stop()
        self._call = None


class ConfigWatcher:
    """A source of change events, debounced into calls of ``on_change``."""

    def __init__(
        self,
        source: Any,
        clock: Any,
        on_change: Callable[[], object],
        delay: float = DEBOUNCE,
        limit: float = DEBOUNCE_LIMIT,
    ) -> None:
        self.source = source
        self.debounce = Debounce(clock, self._changed, delay, limit)
        self.on_change = on_change

    def start(self) -> None:
        self.source.start(self.debounce.touch)

    def stop(self) -> None:
        self.debounce.cancel()
        self.source.stop()

    def _changed(self) -> None:
        try:
            self.on_change()
        except Exception:
            # A bug in one reload must not stop the next ones.
            log.failure("reload failed")


def watch_directory(
    reactor: Any, clock: Any, path: str, on_change: Callable[[], object]
) -> ConfigWatcher:
    """A watcher for ``path`` with inotify where the kernel has it, polling otherwise."""
    try:
        source: Any = InotifySource(reactor, path)
        kind = "inotify"
    except Exception as exc:  # ImportError, INotifyError (a plain Exception), OSError
        source = PollingSource(clock, path)
        kind = "polling every %gs (no inotify: %s)" % (source.interval, exc)
    log.info("watching {path} for changes ({kind})", path=path, kind=kind)
    return ConfigWatcher(source, clock, on_change)
