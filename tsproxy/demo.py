"""`tsproxy demo`: the proxy on a configuration directory plus the demo backends.

The HTTP backends answer `Hello app-v1` / `Hello app-v2` on 127.0.0.1:9001 and :9002 and log
every request they get, mirrored copies included. The UDP backends echo-1 / echo-2 on
127.0.0.1:9053 and :9054 answer each datagram with `echo-N <datagram>`. The TCP backends
greeter-1 / greeter-2 on 127.0.0.1:9101 and :9102 say `HELLO greeter-N` first, then echo.
These are the addresses conf/'s Endpoints name (each port can be changed on the command
line, for a copy of conf/ whose Endpoints name other ports). As under twistd, SIGHUP reloads the
configuration and SIGTERM/SIGINT stop it gracefully.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any, Callable, List, Tuple

from twisted.internet.error import CannotListenError
from twisted.logger import globalLogBeginner

from tsproxy.logs import get_logger, log_observer
from tsproxy.testing import listen_app, listen_tcp_greeter, listen_udp_echo

log = get_logger(__name__)


def _log_request(name: str, record: Any) -> None:
    host = record["headers"].get("host", ["-"])[0]
    log.info(
        "{name} got {method} {uri} (Host: {host})",
        name=name,
        method=record["method"],
        uri=record["uri"],
        host=host,
    )


def _log_datagram(name: str, addr: Any, data: bytes) -> None:
    log.info(
        "{name} got {size} bytes from {host}:{port}",
        name=name,
        size=len(data),
        host=addr[0],
        port=addr[1],
    )


def _log_connection(name: str, addr: Any) -> None:
    log.info(
        "{name} got a TCP connection from {host}:{port}", name=name, host=addr.host, port=addr.port
    )


def run_demo(
    config_dir: str,
    v1_port: int,
    v2_port: int,
    echo_ports: Tuple[int, int] = (9053, 9054),
    greeter_ports: Tuple[int, int] = (9101, 9102),
) -> int:
    """Run until interrupted; returns the process exit status."""
    from twisted.internet import reactor

    from tsproxy.service import ProxyService, StartupError

    globalLogBeginner.beginLoggingTo([log_observer(sys.stdout)], redirectStandardIO=False)
    ports: List[Any] = []
    backends: List[Tuple[str, int, str, Callable[[], Any]]] = [
        (
            "app-v1",
            v1_port,
            "",
            partial(listen_app, reactor, "app-v1", v1_port, on_request=_log_request),
        ),
        (
            "app-v2",
            v2_port,
            "",
            partial(listen_app, reactor, "app-v2", v2_port, on_request=_log_request),
        ),
    ]
    for number, port in enumerate(echo_ports, 1):
        name = "echo-%d" % (number,)
        prefix = ("%s " % (name,)).encode("ascii")
        echo = partial(
            listen_udp_echo, reactor, name, port, prefix=prefix, on_datagram=_log_datagram
        )
        backends.append((name, port, "/udp", echo))
    for number, port in enumerate(greeter_ports, 1):
        name = "greeter-%d" % (number,)
        greeter = partial(listen_tcp_greeter, reactor, name, port, on_connection=_log_connection)
        backends.append((name, port, "", greeter))
    service = ProxyService(config_dir, reactor, watch=True, handle_signals=True)
    try:
        for name, port, suffix, listen in backends:
            try:
                ports.append(listen())
            except CannotListenError as e:
                raise StartupError(
                    "demo backend %s: cannot listen on 127.0.0.1:%d%s: %s"
                    % (name, port, suffix, e.socketError)
                ) from None
        service.startService()
    except StartupError as e:
        log.critical("cannot start: {error}", error=str(e))
        for listening in ports:
            listening.stopListening()
        return 1
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    log.info(
        "demo backends app-v1 on 127.0.0.1:{p1}, app-v2 on 127.0.0.1:{p2},"
        " UDP echo-1 on 127.0.0.1:{e1}, echo-2 on 127.0.0.1:{e2},"
        " TCP greeter-1 on 127.0.0.1:{g1}, greeter-2 on 127.0.0.1:{g2}; Ctrl-C stops",
        p1=v1_port,
        p2=v2_port,
        e1=echo_ports[0],
        e2=echo_ports[1],
        g1=greeter_ports[0],
        g2=greeter_ports[1],
    )
    reactor.run()
    return 0
