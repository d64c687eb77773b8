"""A dnsmasq resolver and the dig client for DNS tests, as child processes stopped by PID.

dnsmasq serves one static record (example.test -> 10.0.0.1) on 127.0.0.1 and forwards nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
from typing import Any, List

from twisted.internet import defer, error, protocol, reactor
from twisted.internet.task import deferLater

from tests.udpfixture import unused_udp_port

_SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
DNSMASQ = shutil.which("dnsmasq", path=_SBIN)
DIG = shutil.which("dig", path=_SBIN)
RECORD = ("example.test", "10.0.0.1")


class _Collect(protocol.ProcessProtocol):
    """Collects stdout; ``ended`` fires with it when the process exits."""

    def __init__(self) -> None:
        self.out: List[bytes] = []
        self.ended: defer.Deferred[bytes] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        self.out.append(data)

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(b"".join(self.out))


def dig(port: int, name: str) -> defer.Deferred[str]:
    """Ask 127.0.0.1:port for the A record of ``name``; the answer of ``dig +short``."""
    assert DIG is not None
    collect = _Collect()
    args = [DIG, "@127.0.0.1", "-p", str(port), name, "A", "+short", "+time=2", "+tries=1"]
    reactor.spawnProcess(collect, DIG, args, env={})
    return collect.ended.addCallback(lambda out: out.decode().strip())


def unused_dns_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1: dnsmasq listens on both, and a TCP
    listener of another test on the same number would make it exit."""
    for _ in range(50):
        port = unused_udp_port()
        probe = socket.socket()
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            probe.close()
        return port
    raise AssertionError("no port free for both UDP and TCP")


@defer.inlineCallbacks
def start_dnsmasq(case: Any) -> Any:
    """Start dnsmasq on a free 127.0.0.1 port, stopped by PID when ``case`` ends; returns the
    port once it answers (polled at most 100 times)."""
    assert DNSMASQ is not None
    port = unused_dns_port()
    args = [
        DNSMASQ,
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--pid-file=",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        f"--port={port}",
        f"--address=/{RECORD[0]}/{RECORD[1]}",
    ]
    if os.geteuid() == 0:
        args.append("--user=root")  # as root it would switch to a "dnsmasq" user that may not exist
    process = _Collect()
    transport = reactor.spawnProcess(process, DNSMASQ, args, env={})
    case.addCleanup(_stop, transport, process)
    for _ in range(100):
        if process.ended.called:
            case.fail("dnsmasq exited: %r" % (b"".join(process.out),))
        answer = yield dig(port, RECORD[0])
        if answer == RECORD[1]:
            return port
        yield deferLater(reactor, 0.05, lambda: None)
    case.fail("dnsmasq did not answer on port %d" % (port,))


def _stop(transport: Any, process: _Collect) -> defer.Deferred[bytes]:
    try:
        transport.signalProcess("TERM")
    except error.ProcessExitedAlready:
        pass
    return process.ended
