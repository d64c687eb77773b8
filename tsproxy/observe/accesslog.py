"""The access log: one line per HTTP exchange in Traefik's common or JSON format.

Lines are formatted in the reactor thread and collected; a batch (``bufferingSize`` lines, or
what one reactor turn produced when that is 0, or whatever is waiting after a second) goes to
a writer thread, so a slow disk or a blocked stdout never holds a request. The writer's queue
is bounded: past it, batches are dropped and counted rather than kept in memory.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, List, Optional

from tsproxy.logs import get_logger
from tsproxy.observe.accessformat import (
    REDACTED,
    FieldModes,
    canonical_header,
    clf_time,
    common_line,
    entry_fields,
    json_line,
    rfc3339,
)

if TYPE_CHECKING:
    from tsproxy.config.static import AccessLogConfig
    from tsproxy.observe.record import Exchange

__all__ = [
    "REDACTED",
    "AccessLog",
    "FieldModes",
    "canonical_header",
    "common_line",
    "entry_fields",
    "json_line",
    "clf_time",
    "rfc3339",
]

log = get_logger(__name__)

#: Seconds a line may wait in the buffer before it is handed to the writer.
FLUSH_INTERVAL = 1.0
#: Without bufferingSize, lines are handed over this soon: often enough to read as "at
#: once", rarely enough that waking the writer thread (and the GIL hand-off) is not paid
#: per reactor turn under load.
UNBUFFERED_DELAY = 0.02
#: Batches the writer thread may have waiting before new ones are dropped.
MAX_PENDING_BATCHES = 1024


def _open(path: str) -> int:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o664)


_REOPEN = object()
_STOP = object()


class _Writer:
    """The thread that owns the file descriptor and writes batches in order."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = _open(path) if path else 1
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=MAX_PENDING_BATCHES)
        self.thread = threading.Thread(target=self._run, name="tsproxy-access-log", daemon=True)
        self.thread.start()

    def submit(self, item: Any) -> bool:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            return False
        return True

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is _STOP:
                    return
                if item is _REOPEN:
                    self._reopen()
                else:
                    self._write(item)
            finally:
                self.queue.task_done()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as e:
            log.error("access log {path}: write failed: {e}", path=self.path or "stdout", e=e)

    def _reopen(self) -> None:
        if not self.path:
            return
        try:
            fd = _open(self.path)
        except OSError as e:
            log.error("access log {path}: cannot reopen: {e}", path=self.path, e=e)
            return
        old, self.fd = self.fd, fd
        os.close(old)

    def stop(self, timeout: float) -> None:
        """Write what is queued and end the thread, within ``timeout`` seconds; a writer stuck
        on its destination (a full pipe, a hung disk) is left behind as a daemon thread."""
        deadline = time.monotonic() + timeout
        try:
            self.queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.error(
                "access log {path}: writer stuck, {n} batches not written",
                path=self.path or "stdout",
                n=self.queue.qsize(),
            )
            return
        self.thread.join(max(0.0, deadline - time.monotonic()))
        if self.thread.is_alive():
            log.error("access log {path}: writer stuck at shutdown", path=self.path or "stdout")
        elif self.path:
            os.close(self.fd)


class AccessLog:
    """Writes one line per exchange to ``config.file_path`` (stdout when "").

    ``reactor`` schedules the flushes (a Clock in tests). Opening the file happens here, so a
    path that cannot be written fails at startup (OSError).
    """

    def __init__(self, config: AccessLogConfig, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        self.modes = FieldModes(config.fields)
        self.format: Callable[[Exchange, int, FieldModes], str] = (
            json_line if config.format == "json" else common_line
        )
        self.limit = max(config.buffering_size, 0)
        self.count = 0
        self.dropped = 0
        self.lines: List[str] = []
        self.timer: Any = None
        self.writer: Optional[_Writer] = _Writer(config.file_path)

    def log(self, rec: Exchange) -> None:
        """Format the line now; write it with its batch later, in the writer thread."""
        self.count += 1
        try:
            line = self.format(rec, self.count, self.modes)
        except Exception:
            log.failure("access log: cannot format an exchange")
            return
        lines = self.lines
        lines.append(line)
        if self.limit and len(lines) >= self.limit:
            self.flush()
        elif self.timer is None:
            # Unbuffered: within UNBUFFERED_DELAY, so a burst's lines make one write.
            delay = FLUSH_INTERVAL if self.limit else UNBUFFERED_DELAY
            self.timer = self.reactor.callLater(delay, self._timed_flush)

    def _timed_flush(self) -> None:
        self.timer = None
        self.flush()

    def flush(self) -> None:
        """Hand the lines waiting to the writer thread (never waits for it)."""
        timer, self.timer = self.timer, None
        if timer is not None and timer.active():
            timer.cancel()
        lines = self.lines
        if not lines or self.writer is None:
            return
        self.lines = []
        data = "".join(lines).encode("utf-8", "replace")
        if not self.writer.submit(data):
            self.dropped += len(lines)
            log.warn(
                "access log: writer behind, {n} lines dropped ({total} in all)",
                n=len(lines),
                total=self.dropped,
            )

    def reopen(self) -> None:
        """Reopen the file at its path (after a log rotation moved it): lines logged before
        this go to the old file, later ones to the new."""
        self.flush()
        if self.writer is not None and not self.writer.submit(_REOPEN):
            log.error("access log: writer behind, cannot reopen now")

    def sync(self, timeout: float = 10.0) -> bool:
        """Flush and wait (at most ``timeout`` seconds) until the writer thread has written
        everything; whether it did."""
        self.flush()
        writer = self.writer
        if writer is None:
            return True
        deadline = time.monotonic() + timeout
        while writer.queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Write what is left and stop the writer thread (waits at most ``timeout``)."""
        self.flush()
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.stop(timeout)
