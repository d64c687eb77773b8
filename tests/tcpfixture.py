"""Backends and configuration for TCP routing tests: greeting echo servers, a recorder,
a redis-server subprocess, and IngressRouteTCP documents pointing at them."""

from __future__ import annotations

import os
import shutil
import socket
from typing import Any, Dict, List, Optional, Sequence, Tuple

from twisted.internet import defer, reactor, threads
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.utils import getProcessOutputAndValue
from zope.interface import implementer

from tests.proxyfixture import ProxyTestCase
from tsproxy.testing import listen_tcp_greeter

TCP_STATIC = """\
entryPoints:
  tcp:
    address: "127.0.0.1:0"
    transport:
      lifeCycle: {{graceTimeOut: 0s}}
      respondingTimeouts: {{readTimeout: {read_timeout}}}
log:
  level: ERROR
"""

#: haproxy in front of a tsproxy entrypoint (``accept-proxy``) or sending PROXY headers to it:
#: its frontend port, its server's port and the server options (``send-proxy``...).
HAPROXY = shutil.which("haproxy")
HAPROXY_CFG = """
defaults
    mode tcp
    timeout connect 5s
    timeout client 5s
    timeout server 5s
frontend front
    bind 127.0.0.1:%d accept-proxy
    default_backend back
backend back
    server s 127.0.0.1:%d %s
"""

BACKEND = """\
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  ports:
    - {{name: main, port: 7000}}
---
apiVersion: v1
kind: Endpoints
metadata: {{name: {name}}}
subsets:
  - addresses: [{{ip: 127.0.0.1}}]
    ports: [{{name: main, port: {port}}}]
"""


def route_tcp(
    name: str,
    match: str,
    services: Sequence[str],
    tls: str = "",
    extra: str = "",
    weights: Sequence[int] = (),
) -> str:
    """An IngressRouteTCP with one route; ``extra`` is added to every service entry."""
    lines = [
        "apiVersion: traefik.io/v1alpha1",
        "kind: IngressRouteTCP",
        f"metadata: {{name: {name}}}",
        "spec:",
        "  routes:",
        f"    - match: {match}",
        "      services:",
    ]
    for index, service in enumerate(services):
        weight = f", weight: {weights[index]}" if weights else ""
        lines.append(f"        - {{name: {service}, port: 7000{weight}{extra}}}")
    if tls:
        lines.append(f"  tls: {tls}")
    return "\n".join(lines) + "\n"


@implementer(IHalfCloseableProtocol)
class HalfOpen(Protocol):
    """Records what it gets and never closes, even after the client's FIN."""

    def dataReceived(self, data: bytes) -> None:
        self.factory.received.append(data)

    def readConnectionLost(self) -> None:
        self.factory.received.append(b"<EOF>")

    def writeConnectionLost(self) -> None:
        pass


class TCPProxyTestCase(ProxyTestCase):
    """ProxyTestCase with TCP backends and a ``tcp`` entrypoint."""

    def setUp(self) -> None:
        super().setUp()
        self.greeters: Dict[str, Any] = {}
        self.docs: List[str] = []

    def start_greeter(self, name: str) -> int:
        port = listen_tcp_greeter(reactor, name)
        self.addCleanup(port.stopListening)
        self.greeters[name] = port.greeter
        return int(port.getHost().port)

    def start_half_open(self) -> Tuple[int, List[bytes]]:
        factory = Factory.forProtocol(HalfOpen)
        factory.received = []  # type: ignore[attr-defined]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return int(port.getHost().port), factory.received  # type: ignore[attr-defined]

    def backend(self, name: str, port: int) -> None:
        self.docs.append(BACKEND.format(name=name, port=port))

    @defer.inlineCallbacks
    def wait_no_connections(self) -> Any:
        """Until the proxy tracks no connection (5 s at most, else the test fails)."""
        from twisted.internet.task import deferLater

        assert self.service is not None
        for _ in range(500):
            if not any(len(f.connections) for f in self.service.factories):
                return
            yield deferLater(reactor, 0.01, lambda: None)
        self.fail("connections left: %r" % [list(f.connections) for f in self.service.factories])

    def start_tcp_proxy(self, *routes: str, read_timeout: str = "60s", clock: Any = None) -> int:
        self.write("tsproxy.yaml", TCP_STATIC.format(read_timeout=read_timeout))
        self.write("routes.yaml", "---\n".join(self.docs + list(routes)))
        service = self.start_proxy(clock=clock)
        return service.port_of("tcp")

    @defer.inlineCallbacks
    def start_redis(self) -> Any:
        """A redis-server on 127.0.0.1 (skips the test when redis-server is missing)."""
        from twisted.trial.unittest import SkipTest

        binary = shutil.which("redis-server")
        if binary is None:
            raise SkipTest("redis-server is not installed (apt-get install redis-server)")
        port = free_tcp_port()
        directory = self.mktemp()
        os.makedirs(directory)
        process = reactor.spawnProcess(
            _Quiet(),
            binary,
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                directory,
            ],
            env=os.environ.copy(),
        )
        self.addCleanup(_stop, process)
        yield wait_listening(port)
        return port


class _Quiet(Protocol):
    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        self.ended: defer.Deferred = defer.Deferred()

    def childDataReceived(self, fd: int, data: bytes) -> None:
        pass

    def childConnectionLost(self, fd: int) -> None:
        pass

    def processExited(self, reason: Any) -> None:
        pass

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)


def _stop(process: Any) -> Any:
    try:
        process.signalProcess("TERM")
    except Exception:
        return None
    return process.proto.ended


def free_tcp_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@defer.inlineCallbacks
def wait_listening(port: int, attempts: int = 100) -> Any:
    """Until something accepts on 127.0.0.1:port (a subprocess starting up)."""
    from twisted.internet.task import deferLater

    for _ in range(attempts):
        ok = yield threads.deferToThread(_can_connect, port)
        if ok:
            return
        yield deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f"nothing listens on {port}")


def _can_connect(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def run(argv: Sequence[str], stdin: Optional[bytes] = None) -> Any:
    """Run a client program; (stdout, stderr, exit code)."""
    binary = shutil.which(argv[0])
    assert binary is not None, argv[0]
    if stdin is None:
        return getProcessOutputAndValue(binary, list(argv[1:]), env=os.environ.copy())
    return threads.deferToThread(_run_with_input, [binary] + list(argv[1:]), stdin)


def _run_with_input(argv: List[str], stdin: bytes) -> Tuple[bytes, bytes, int]:
    import subprocess

    done = subprocess.run(argv, input=stdin, capture_output=True, timeout=30)
    return done.stdout, done.stderr, done.returncode


def socket_session(
    port: int,
    send: bytes = b"",
    half_close: bool = False,
    read_until_close: bool = True,
    timeout: float = 10.0,
    first_read: bool = False,
) -> Any:
    """A blocking client in a thread: connect, optionally read a greeting first, send, maybe
    half-close, read until the server closes. Returns everything received."""

    def session() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            got = b""
            if first_read:
                got += sock.recv(65536)
            if send:
                sock.sendall(send)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            while read_until_close:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
            return got

    return threads.deferToThread(session)
