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


class Options(usage.Options):
    """Command-line options of `twistd tsproxy`."""

    synopsis = "[-c DIR]"
    optParameters = [
        ["config", "c", "conf/", "Directory holding tsproxy.yaml and the dynamic YAML files."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self.loaded: Optional[Any] = None

    def postOptions(self) -> None:
        path = os.path.abspath(self["config"])
        if not os.path.isdir(path):
            raise usage.UsageError("configuration directory not found: %s" % (path,))
        self["config"] = path
        loaded = load_directory(path)
        if loaded.static is None:
            problems = "\n".join(str(e) for e in loaded.errors) or "no static configuration"
            raise usage.UsageError("cannot start:\n" + problems)
        self.loaded = loaded


def makeService(options: Options) -> IService:
    """Build the proxy service for `options` (the reactor is chosen here and only here)."""
    from twisted.internet import reactor

    from tsproxy.service import ProxyService

    return ProxyService(
        options["config"],
        reactor,
        loaded=options.loaded,
        exit_on_startup_error=True,
        handle_signals=True,
        watch=True,
    )
