"""Applies the static configuration's `log.level` to Twisted's global log observers.

Traefik's levels (DEBUG, INFO, WARN, ERROR, FATAL, PANIC) map onto Twisted's; the filter
wraps the observers that twistd/twist installed, once.
"""

from __future__ import annotations

from typing import Any, Dict

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)

LEVELS: Dict[str, LogLevel] = {
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
_installed: Dict[str, Any] = {}


def apply_log_level(level: str) -> None:
    """Show events at `level` and above (unknown names mean INFO)."""
    _predicate.setLogLevelForNamespace("", LEVELS.get(level.upper(), LogLevel.info))
    if _installed:
        return
    observers = list(getattr(globalLogPublisher, "_observers", ()))
    for observer in observers:
        globalLogPublisher.removeObserver(observer)
        globalLogPublisher.addObserver(FilteringLogObserver(observer, [_predicate]))
    _installed["done"] = True
