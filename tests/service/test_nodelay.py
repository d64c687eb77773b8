"""tsproxy.nodelay: Nagle is off on the sockets the proxy accepts and dials, as in Go."""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.test.proto_helpers import StringTransport
from twisted.trial.unittest import TestCase

from tests.proxyfixture import ProxyTestCase
from tsproxy.nodelay import set_no_delay


def _no_delay(transport: Any) -> int:
    return int(transport.getHandle().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


class SetNoDelayTests(TestCase):
    """set_no_delay on real and in-memory transports."""

    @defer.inlineCallbacks
    def test_tcp_socket(self) -> Any:
        """A real TCP connection's socket gets TCP_NODELAY (it starts without it)."""
        accepted: list = []

        class Keep(Protocol):
            def connectionMade(self) -> None:
                accepted.append(self)

        port = reactor.listenTCP(0, Factory.forProtocol(Keep), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = Protocol()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), client)
        self.addCleanup(client.transport.loseConnection)
        self.assertEqual(_no_delay(client.transport), 0)
        set_no_delay(client.transport)
        self.assertEqual(_no_delay(client.transport), 1)

    def test_in_memory_transport(self) -> None:
        """A transport without a TCP socket is left alone, without an error."""
        set_no_delay(StringTransport())
        set_no_delay(object())


class ProxyNoDelayTests(ProxyTestCase):
    """Both sides of a proxied HTTP exchange run without Nagle."""

    @defer.inlineCallbacks
    def test_client_and_backend_sockets(self) -> Any:
        """After a keep-alive exchange, the client's connection and the pooled backend one
        have TCP_NODELAY set."""
        self.use_seed_config()
        service = self.start_proxy()
        response, body = yield self.get("traefikservice-wrr.kubesre.lc")
        self.assertEqual(response.code, 200)
        (factory,) = [f for f in service.factories if f.name == "web"]
        clients = list(factory.connections)
        self.assertTrue(clients)
        self.assertEqual([_no_delay(c.transport) for c in clients], [1] * len(clients))
        pooled = [c for conns in factory.pool.idle.values() for c in conns]
        self.assertTrue(pooled)
        self.assertEqual([_no_delay(c.transport) for c in pooled], [1] * len(pooled))
