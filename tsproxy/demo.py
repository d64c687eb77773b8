"""`tsproxy demo`: the proxy on a configuration directory plus the two demo backends.

The backends answer `Hello app-v1` / `Hello app-v2` on 127.0.0.1:9001 and :9002 (the
addresses conf/'s Endpoints name) and log every request they get, mirrored copies included.
"""

from __future__ import annotations

import sys
from typing import Any, List

from twisted.logger import Logger, globalLogBeginner, textFileLogObserver

from tsproxy.testing import listen_app

log = Logger()


def _log_request(name: str, record: Any) -> None:
    host = record["headers"].get("host", ["-"])[0]
    log.info(
        "{name} got {method} {uri} (Host: {host})",
        name=name,
        method=record["method"],
        uri=record["uri"],
        host=host,
    )


def run_demo(config_dir: str, v1_port: int, v2_port: int) -> int:
    """Run until interrupted; returns the process exit status."""
    from twisted.internet import reactor

    from tsproxy.service import ProxyService, StartupError

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    ports: List[Any] = [
        listen_app(reactor, "app-v1", v1_port, on_request=_log_request),
        listen_app(reactor, "app-v2", v2_port, on_request=_log_request),
    ]
    service = ProxyService(config_dir, reactor, watch=True)
    try:
        service.startService()
    except StartupError as e:
        log.critical("cannot start: {error}", error=str(e))
        for port in ports:
            port.stopListening()
        return 1
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    log.info(
        "demo backends app-v1 on 127.0.0.1:{p1}, app-v2 on 127.0.0.1:{p2}; Ctrl-C stops",
        p1=v1_port,
        p2=v2_port,
    )
    reactor.run()
    return 0
