"""A running proxy for integration tests: real backends and listeners on 127.0.0.1 port 0.

The configuration is the project's own conf/ (the seed scenarios), with the Endpoints
rewritten to the test backends' ports and the entrypoint on port 0.
"""

from __future__ import annotations

import os
import shutil
import socket
from typing import Any, Dict, List, Optional, Tuple

import treq
from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from tsproxy.service import ProxyService
from tsproxy.testing import listen_app, listen_tcp_greeter, listen_udp_echo

CONF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conf")

STATIC = """\
entryPoints:
  web:
    address: "127.0.0.1:0"
  websecure:
    address: "127.0.0.1:0"
  tcp:
    address: "127.0.0.1:0"
    transport: {lifeCycle: {graceTimeOut: 0s}}
  udp:
    address: "127.0.0.1:0/udp"
    transport: {lifeCycle: {graceTimeOut: 0s}}
log:
  level: ERROR
"""

ENDPOINTS = """\
apiVersion: v1
kind: Endpoints
metadata:
  name: {name}
subsets:
  - addresses:
      - ip: 127.0.0.1
    ports:
      - name: http
        port: {port}
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  ports:
    - name: http
      port: 80
"""


def free_port() -> int:
    """A port nothing listens on (bound then released, so connecting is refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


class _Silent(Protocol):
    """Accepts a request and never answers."""

    def dataReceived(self, data: bytes) -> None:
        self.factory.received.append(data)


class ProxyTestCase(TestCase):
    """Starts backends and the proxy; cleans everything up so the reactor stays clean."""

    def setUp(self) -> None:
        self.config_dir = self.mktemp()
        os.makedirs(self.config_dir)
        self.apps: Dict[str, Any] = {}
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(self.pool.closeCachedConnections)
        self.agent = Agent(reactor, pool=self.pool)
        self.service: Optional[ProxyService] = None

    def start_app(self, name: str) -> int:
        port = listen_app(reactor, name)
        self.addCleanup(port.stopListening)
        self.apps[name] = port.app
        return int(port.getHost().port)

    def start_silent(self) -> Tuple[int, List[bytes]]:
        factory = Factory.forProtocol(_Silent)
        factory.received = []  # type: ignore[attr-defined]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return int(port.getHost().port), factory.received  # type: ignore[attr-defined]

    def write(self, name: str, text: str) -> None:
        with open(os.path.join(self.config_dir, name), "w") as f:
            f.write(text)

    def use_seed_config(self) -> None:
        """conf/ as shipped, with Endpoints pointing at fresh app and UDP echo backends."""
        for name in os.listdir(CONF):
            if name.endswith(".yaml") and name not in ("tsproxy.yaml", "endpoints.yaml"):
                shutil.copy(os.path.join(CONF, name), self.config_dir)
        self.write("tsproxy.yaml", STATIC)
        docs = [
            ENDPOINTS.format(name=name, port=self.start_app(name)) for name in ("app-v1", "app-v2")
        ]
        for name in ("echo-1", "echo-2"):
            port = listen_udp_echo(reactor, name, prefix=name.encode() + b" ")
            self.addCleanup(port.stopListening)
            echo = ENDPOINTS.format(name=name, port=port.getHost().port)
            docs.append(echo.replace("name: http", "name: dns"))
        for name in ("greeter-1", "greeter-2"):
            port = listen_tcp_greeter(reactor, name)
            self.addCleanup(port.stopListening)
            greeter = ENDPOINTS.format(name=name, port=port.getHost().port)
            docs.append(greeter.replace("name: http", "name: greet"))
        self.write("endpoints.yaml", "---\n".join(docs))

    def start_proxy(self, clock: Any = None, watch: bool = False) -> ProxyService:
        service = ProxyService(self.config_dir, reactor, clock=clock, watch=watch)
        service.startService()
        self.addCleanup(service.stopService)
        self.service = service
        return service

    @property
    def base(self) -> str:
        assert self.service is not None
        return "http://127.0.0.1:%d" % (self.service.port_of("web"),)

    @defer.inlineCallbacks
    def get(
        self,
        host: str,
        path: str = "/",
        method: str = "GET",
        headers: Optional[Dict[str, List[str]]] = None,
        data: Any = None,
    ) -> Any:
        """Request through the proxy; returns (response, body bytes)."""
        all_headers = {"Host": [host]}
        all_headers.update(headers or {})
        response = yield treq.request(
            method,
            self.base + path,
            headers=all_headers,
            data=data,
            agent=self.agent,
            allow_redirects=False,
        )
        body = yield treq.content(response)
        return response, body


class RawClient(Protocol):
    """Sends bytes as given and collects everything the server answers until it closes."""

    def __init__(self) -> None:
        self.received = b""
        self.closed: defer.Deferred = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any = None) -> None:
        self.closed.callback(self.received)


@defer.inlineCallbacks
def raw_exchange(port: int, payload: bytes, half_close: bool = True) -> Any:
    """Open a TCP connection, send `payload`, optionally half-close, return all answered."""
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    client = RawClient()
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
    client.transport.write(payload)
    if half_close:
        client.transport.loseWriteConnection()
    received = yield client.closed
    return received
