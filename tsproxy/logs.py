"""tsproxy's log lines: one format for every event, ours and Twisted's, filtered by `log.level`.

`log_observer(file)` is what the runners write through (twistd and twist are handed it by
tsproxy.tap, `tsproxy demo` begins logging with it): each event becomes one line,
``2026-12-04T01:02:40.123+00:00 INFO  entrypoint web listening on 127.0.0.1:8000``, or one JSON
object with `log.format: json` (Traefik's option). `log.level` (Traefik's level names) filters
every event that reaches it, Twisted's own included; Twisted's per-connection chatter
(factories and protocols starting and stopping, ports opening and closing) is DEBUG.
"""

from __future__ import annotations

import json
import re
import time
from typing import IO, Any, Callable, Dict, Optional

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
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

#: How each level is written: Traefik's level names.
LEVEL_NAMES: Dict[Any, str] = {
    LogLevel.debug: "DEBUG",
    LogLevel.info: "INFO",
    LogLevel.warn: "WARN",
    LogLevel.error: "ERROR",
    LogLevel.critical: "FATAL",
}

_predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
_settings = {"format": "common"}

# Twisted's messages that come once per connection, listener or client factory: useful when
# debugging, noise otherwise. Matched on the formatted text (their wording has been stable
# for many releases).
_CHATTER = re.compile(
    r"^(Starting|Stopping) (factory|protocol) "
    r"|^\S+ starting on \d+$"
    r"|^\((TCP|UDP|Unix)( Port)? \S+ Closed\)$"
)


@implementer(ILogObserver)
def _to_global(event: Dict[str, Any]) -> None:
    # Looked up per event: whatever observers the runner installed get it.
    globalLogPublisher(event)


_observer = FilteringLogObserver(_to_global, [_predicate])


def get_logger(namespace: str) -> Logger:
    """A Logger for `namespace` whose events obey `log.level`."""
    return Logger(namespace=namespace, observer=_observer)


def apply_log_level(level: str, fmt: Optional[str] = None) -> None:
    """Show events at `level` and above (unknown names mean INFO), ours and, through
    `log_observer`, everyone's; `fmt` (``common`` or ``json``) switches the line format."""
    _predicate.setLogLevelForNamespace("", LEVELS.get(level.upper(), LogLevel.info))
    if fmt is not None:
        _settings["format"] = fmt


def format_address(address: Any) -> str:
    """``127.0.0.1:8000``, ``[::1]:8000``, ``127.0.0.1:5300/udp`` for a Twisted address."""
    host = str(getattr(address, "host", address))
    port = getattr(address, "port", None)
    if port is None:
        return host
    text = "[%s]:%s" % (host, port) if ":" in host else "%s:%s" % (host, port)
    return text + ("/udp" if getattr(address, "type", "TCP") == "UDP" else "")


def event_level(event: Dict[str, Any]) -> Any:
    """The event's level, with Twisted's per-connection chatter lowered to DEBUG."""
    level = event.get("log_level") or LogLevel.info
    if level == LogLevel.info and event.get("log_namespace", "").startswith("tsproxy"):
        return level
    if level == LogLevel.info and _CHATTER.search(formatEvent(event) or ""):
        return LogLevel.debug
    return level


def _timestamp(when: float) -> str:
    local = time.localtime(when)
    offset = time.strftime("%z", local) or "+0000"
    return "%s.%03d%s:%s" % (
        time.strftime("%Y-%m-%dT%H:%M:%S", local),
        int(when * 1000) % 1000,
        offset[:3],
        offset[3:],
    )


def format_line(event: Dict[str, Any], fmt: str = "common") -> str:
    """One event as one line (JSON with ``fmt`` json), ending in a newline; a failure's
    traceback follows a text line and is the ``error`` field of a JSON one."""
    when = event.get("log_time") or time.time()
    level = LEVEL_NAMES.get(event_level(event), "INFO")
    message = formatEvent(event)
    failure = event.get("log_failure")
    trace = failure.getTraceback() if failure is not None else ""
    if fmt == "json":
        record = {
            "level": level.lower(),
            "time": _timestamp(when),
            "logger": event.get("log_namespace", "-"),
            "message": message,
        }
        if trace:
            record["error"] = trace
        return json.dumps(record, ensure_ascii=False) + "\n"
    line = "%s %-5s %s\n" % (_timestamp(when), level, message)
    if trace:
        line += trace if trace.endswith("\n") else trace + "\n"
    return line


def log_observer(out: IO[str], flush: Optional[Callable[[], None]] = None) -> ILogObserver:
    """The observer that writes every event at `log.level` or above to ``out`` as a line in
    the configured format (twistd, twist and the demo all write through one of these)."""

    @implementer(ILogObserver)
    def observe(event: Dict[str, Any]) -> None:
        namespace = event.get("log_namespace") or ""
        if event_level(event) < _predicate.logLevelForNamespace(namespace):
            return
        out.write(format_line(event, _settings["format"]))
        (flush or out.flush)()

    return observe
