"""tsproxy's loggers, filtered by the static configuration's `log.level`.

Only tsproxy's own events are filtered: the filter sits between our Loggers and the global
publisher, so twistd/twist and trial keep their observers untouched. Traefik's levels
(DEBUG, INFO, WARN, ERROR, FATAL, PANIC) map onto Twisted's.
"""

from __future__ import annotations

from typing import Any, Dict

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)
from zope.interface import implementer

LEVELS: Dict[str, Any] = {
    "TRACE": LogLevel.debug,
    "DEBUG": LogLevel.debug,
    "INFO": LogLevel.info,
    "WARN": LogLevel.warn,
    "WARNING": LogLevel.warn,
    "ERROR": LogLevel.error,
    "FATAL": LogLevel.critical,
    "PANIC": LogLevel.critical,
}

_predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)


@implementer(ILogObserver)
def _to_global(event: Dict[str, Any]) -> None:
    # Looked up per event: whatever observers the runner installed get it.
    globalLogPublisher(event)


_observer = FilteringLogObserver(_to_global, [_predicate])


def get_logger(namespace: str) -> Logger:
    """A Logger for `namespace` whose events obey `log.level`."""
    return Logger(namespace=namespace, observer=_observer)


def apply_log_level(level: str) -> None:
    """Show tsproxy's events at `level` and above (unknown names mean INFO)."""
    _predicate.setLogLevelForNamespace("", LEVELS.get(level.upper(), LogLevel.info))
