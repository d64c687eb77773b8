"""Logging an error that may repeat thousands of times a second (a flood, descriptors run
out): the first occurrence is logged at once, the ones after it are counted and logged as one
line per interval. Never a line per datagram or per accept; time comes from the clock given.
"""

from __future__ import annotations

from typing import Any

__all__ = ["INTERVAL", "RepeatedError"]

#: Seconds between two lines about the same repeating error.
INTERVAL = 10.0


class RepeatedError:
    """One kind of error, logged by ``log`` at ``level`` (default warn) with ``message`` (a Twisted
    format string; ``{error}`` is the detail of the latest occurrence) and ``fields``.

    Call it once per occurrence. The first is logged with ``count`` 1; later ones within
    ``interval`` seconds are counted, and logged as one line ("... N more times in 10 s")
    when the interval ends. :meth:`stop` logs what is still counted and cancels the timer.
    """

    def __init__(
        self,
        clock: Any,
        log: Any,
        message: str,
        interval: float = INTERVAL,
        level: str = "warn",
        **fields: Any,
    ) -> None:
        self.clock = clock
        self.log = log
        self.level = level
        self.message = message
        self.interval = interval
        self.fields = fields
        self.total = 0
        self._counted = 0
        self._error = ""
        self._timer: Any = None

    def __call__(self, error: object = "") -> None:
        self.total += 1
        self._error = str(error)
        if self._timer is None:
            self._emit(1, "")
            self._timer = self.clock.callLater(self.interval, self._flush)
        else:
            self._counted += 1

    def _emit(self, count: int, suffix: str) -> None:
        getattr(self.log, self.level)(
            self.message + suffix,
            count=count,
            interval=self.interval,
            error=self._error,
            **self.fields,
        )

    def _flush(self) -> None:
        self._timer = None
        if self._counted:
            count, self._counted = self._counted, 0
            self._emit(count, " ({count} more times in {interval:g} s)")
            # Still happening: the next line comes after another interval at the earliest.
            self._timer = self.clock.callLater(self.interval, self._flush)

    def stop(self) -> None:
        """Log what is counted and not logged yet; no timer is left behind."""
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        if self._counted:
            count, self._counted = self._counted, 0
            self._emit(count, " ({count} more times)")
