"""twistd plugin options and service factory: the only place the global reactor is picked.

The configuration is loaded while options are parsed, so a broken static configuration is
reported as a usage error with file and line, before any port is opened.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any, Optional

from twisted.application.service import IService
from twisted.logger import LogLevel
from twisted.python import logfile, usage

from tsproxy.config.load import load_directory
from tsproxy.logs import apply_log_level, log_observer


def worker_count(text: str) -> int:
    """``--workers``: a positive number, or ``auto`` for the cores this process may use."""
    if text == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise usage.UsageError("--workers: a number of at least 1, or auto, not %r" % (text,))
    return count


class Options(usage.Options):
    """Command-line options of `twistd tsproxy`."""

    synopsis = "[-c DIR] [--workers N|auto]"
    optParameters = [
        ["config", "c", "conf/", "Directory holding tsproxy.yaml and the dynamic YAML files."],
        ["workers", "w", "1", "Worker processes sharing the ports (auto: one per core)."],
        # Set by the supervisor on the workers it starts (tsproxy.workers), not by hand.
        ["worker-channel", None, None, "(internal) the supervisor's channel descriptor."],
        ["worker-index", None, "0", "(internal) this worker's number."],
        ["worker-start-date", None, "", "(internal) when the supervisor started."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self.loaded: Optional[Any] = None

    def postOptions(self) -> None:
        path = os.path.abspath(self["config"])
        if not os.path.isdir(path):
            raise usage.UsageError("configuration directory not found: %s" % (path,))
        self["config"] = path
        self["workers"] = worker_count(self["workers"])
        loaded = load_directory(path)
        if loaded.static is None:
            problems = "\n".join(str(e) for e in loaded.errors) or "no static configuration"
            raise usage.UsageError("cannot start:\n" + problems)
        if self["workers"] > 1:
            for ep in loaded.static.entrypoints:
                if ep.port == 0:
                    raise usage.UsageError(
                        "%s: entrypoint %s: --workers %d needs a fixed port (each worker would"
                        " pick its own port 0)" % (ep.location, ep.name, self["workers"])
                    )
        self.loaded = loaded
        apply_log_level(loaded.static.log_level, loaded.static.log_format)


def _twistd_log_file(runner: Any) -> Optional[IO[str]]:
    """Where twistd would write its log (its --logfile, stdout under -n without one); None
    with --syslog, which stays twistd's."""
    if runner.get("syslog"):
        return None
    name = runner.get("logfile") or ""
    if name == "-" or (runner.get("nodaemon") and not name):
        return sys.stdout
    return logfile.LogFile.fromFullPath(name or "twistd.log")  # type: ignore[return-value]


def _take_over_logging(options: Options, service: Any) -> None:
    """Make the runner write our lines: twist takes a file observer factory in its options
    (and would write JSON dumps when its output is not a terminal), twistd the application's
    ILogObserver component, which ProxyService sets when it joins the application."""
    runner = getattr(options, "parent", None)
    if runner is None:
        return
    if "fileLogObserverFactory" in runner:
        runner["fileLogObserverFactory"] = log_observer
        # log.level decides; twist's own level filter would hide DEBUG.
        runner["logLevel"] = LogLevel.debug
    elif "nodaemon" in runner:
        out = _twistd_log_file(runner)
        if out is not None:
            service.log_observer = log_observer(out)


def makeService(options: Options) -> IService:
    """Build the proxy service for `options` (the reactor is chosen here and only here)."""
    from twisted.internet import reactor

    from tsproxy.fastpoll import speed_up

    speed_up(reactor)
    if options["worker-channel"] is not None:
        from tsproxy.workers.worker import WorkerService

        return WorkerService(
            options["config"],
            reactor,
            int(options["worker-channel"]),
            int(options["worker-index"]),
            options["worker-start-date"],
            loaded=options.loaded,
        )
    if options["workers"] > 1:
        from tsproxy.workers.supervisor import Supervisor

        return Supervisor(
            options["config"],
            options["workers"],
            reactor,
            options.loaded.static,  # type: ignore[union-attr]
            handle_signals=True,
            watch=True,
            exit=os._exit,
        )

    from tsproxy.service import ProxyService

    service = ProxyService(
        options["config"],
        reactor,
        loaded=options.loaded,
        exit_on_startup_error=True,
        handle_signals=True,
        watch=True,
    )
    _take_over_logging(options, service)
    return service
