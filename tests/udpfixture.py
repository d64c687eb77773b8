"""UDP helpers for integration tests: a client socket, echo backends, configuration text.

Everything on 127.0.0.1; waits on real sockets are bounded by a timeout, never by sleeping.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any, Dict, List, Sequence, Tuple

from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol

from tsproxy.testing import listen_udp_echo

with open(os.path.join(os.path.dirname(__file__), "data", "services.json")) as _stream:
    # Traefik's UDP test cases (pkg/udp), by description.
    UDP_VECTORS: Dict[str, Any] = {
        case["description"]: case
        for group in json.load(_stream)["groups"]
        if group["id"] == "udp"
        for case in group["cases"]
    }

# Long enough for a loaded CI machine, short enough that a lost datagram fails fast.
REPLY_TIMEOUT = 5.0

STATIC = """\
entryPoints:
  dns:
    address: "127.0.0.1:0/udp"
    udp: {{timeout: {timeout}, maxSessions: {max_sessions}}}
    transport: {{lifeCycle: {{graceTimeOut: {grace}}}}}
log:
  level: ERROR
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec: {{ports: [{{name: dns, port: 53, protocol: UDP}}]}}
---
apiVersion: v1
kind: Endpoints
metadata: {{name: {name}}}
subsets:
{subsets}"""

SUBSET = "  - {{addresses: [{{ip: 127.0.0.1}}], ports: [{{name: dns, port: {port}}}]}}\n"


def static(timeout: str = "3s", max_sessions: int = 100, grace: str = "0s") -> str:
    return STATIC.format(timeout=timeout, max_sessions=max_sessions, grace=grace)


def service(name: str, ports: Sequence[int]) -> str:
    """A Service named ``name`` (port 53) whose endpoints are 127.0.0.1 at ``ports``."""
    subsets = "".join(SUBSET.format(port=port) for port in ports)
    return SERVICE.format(name=name, subsets=subsets)


def udp_route(*services: Tuple[str, int]) -> str:
    """An IngressRouteUDP on entrypoint dns over (service name, weight) pairs."""
    refs = "".join(f"        - {{name: {name}, port: 53, weight: {w}}}\n" for name, w in services)
    return (
        "apiVersion: traefik.io/v1alpha1\nkind: IngressRouteUDP\nmetadata: {name: dns}\n"
        "spec:\n  entryPoints: [dns]\n  routes:\n    - services:\n" + refs
    )


def unused_udp_port() -> int:
    """A UDP port nothing listens on (bound then released): datagrams to it get ICMP back."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


class UDPClient(DatagramProtocol):
    """One client address: sends datagrams and hands back the replies in order."""

    def __init__(self) -> None:
        self.replies: List[bytes] = []
        self._waiting: List[defer.Deferred[bytes]] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        if self._waiting:
            self._waiting.pop(0).callback(data)
        else:
            self.replies.append(data)

    def reply(self) -> defer.Deferred[bytes]:
        """The next reply; fails with TimeoutError after REPLY_TIMEOUT seconds."""
        if self.replies:
            return defer.succeed(self.replies.pop(0))
        d: defer.Deferred[bytes] = defer.Deferred()
        self._waiting.append(d)
        return d.addTimeout(REPLY_TIMEOUT, reactor)

    def send(self, port: int, data: bytes) -> None:
        self.transport.write(data, ("127.0.0.1", port))

    def exchange(self, port: int, data: bytes) -> defer.Deferred[bytes]:
        self.send(port, data)
        return self.reply()

    @property
    def address(self) -> Tuple[str, int]:
        host = self.transport.getHost()
        return (host.host, host.port)


class UDPTestMixin:
    """Clients and echo backends that are closed when the test ends."""

    addCleanup: Any

    def udp_client(self) -> UDPClient:
        client = UDPClient()
        port = reactor.listenUDP(0, client, interface="127.0.0.1", maxPacketSize=65535)
        self.addCleanup(port.stopListening)
        return client

    def udp_echo(self, name: str, prefix: bytes = b"") -> Tuple[int, Any]:
        """Start an echo backend; returns its port and its protocol (``.peers``)."""
        port = listen_udp_echo(reactor, name, prefix=prefix)
        self.addCleanup(port.stopListening)
        return int(port.getHost().port), port.echo
