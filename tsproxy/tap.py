"""twistd plugin options and service factory: the only place the global reactor is picked.

The configuration is loaded while options are parsed, so a broken static configuration is
reported as a usage error with file and line, before any port is opened.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from twisted.application.service import IService
from twisted.python import usage

from tsproxy.config.load import load_directory


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


def makeService(options: Options) -> IService:
    """Build the proxy service for `options` (the reactor is chosen here and only here)."""
    from twisted.internet import reactor

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

    return ProxyService(
        options["config"],
        reactor,
        loaded=options.loaded,
        exit_on_startup_error=True,
        handle_signals=True,
        watch=True,
    )
