"""WebSocket through the proxy: the Upgrade handshake is forwarded, then bytes are tunnelled."""

from __future__ import annotations

from typing import Any, List

from twisted.internet import defer, reactor
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.proxyfixture import ENDPOINTS, SERVICE, STATIC, ProxyTestCase

try:
    from twisted.web.websocket import WebSocketClientEndpoint, WebSocketResource
except ImportError:  # older Twisted (PyPy's 3.9 line) or no wsproto
    WebSocketResource = None  # type: ignore[assignment,misc]


class EchoServer:
    """A WebSocket server protocol that sends every text message back."""

    def negotiationStarted(self, transport: Any) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        pass

    def textMessageReceived(self, message: str) -> None:
        self.transport.sendTextMessage("echo: " + message)

    def bytesMessageReceived(self, data: bytes) -> None:
        self.transport.sendBytesMessage(data)

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        pass


class Client:
    """Collects what the server sends; fires `got` per message."""

    def __init__(self) -> None:
        self.messages: List[Any] = []
        self.waiting: List[defer.Deferred] = []
        self.lost: defer.Deferred = defer.Deferred()

    def negotiationStarted(self, transport: Any) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        pass

    def _got(self, message: Any) -> None:
        self.messages.append(message)
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(message)

    def next_message(self) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.waiting.append(d)
        return d

    textMessageReceived = _got
    bytesMessageReceived = _got

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        self.lost.callback(None)


class _Factory:
    """Builds the same protocol instance for a server request or a client URL."""

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol

    def buildProtocol(self, _: Any) -> Any:
        return self.protocol


class _EchoFactory:
    def buildProtocol(self, request: Any) -> EchoServer:
        return EchoServer()


class WebSocketTests(ProxyTestCase):
    """A real WebSocket client and server talk through tsproxy."""

    @defer.inlineCallbacks
    def test_echo(self) -> None:
        """Text and binary messages make the round trip through the tunnel."""
        if WebSocketResource is None:
            self.skipTest("twisted.web.websocket (with wsproto) is not available")
        root = Resource()
        root.putChild(b"ws", WebSocketResource(_EchoFactory()))
        listening = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.write("tsproxy.yaml", STATIC)
        self.write(
            "ws.yaml",
            "---\n".join(
                [
                    SERVICE.format(name="ws"),
                    ENDPOINTS.format(name="ws", port=listening.getHost().port),
                    """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: ws
spec:
  routes:
    - match: PathPrefix(`/ws`)
      kind: Rule
      services:
        - name: ws
          port: 80
""",
                ]
            ),
        )
        self.start_proxy()
        endpoint = WebSocketClientEndpoint.new(
            reactor, "ws://127.0.0.1:%d/ws" % self.service.port_of("web")
        )
        client = Client()
        yield defer.Deferred.fromCoroutine(endpoint.connect(_Factory(client)))
        got = client.next_message()
        client.transport.sendTextMessage("hello")
        self.assertEqual((yield got), "echo: hello")
        got = client.next_message()
        client.transport.sendBytesMessage(b"\x00\x01" * 50000)
        received = bytes((yield got))
        # Twisted 25.5's WebSocket client (PyPy's) hands over a large message in fragments,
        # even with no proxy in between: gather them.
        while len(received) < 100000:
            received += bytes((yield client.next_message()))
        self.assertEqual(received, b"\x00\x01" * 50000)
        client.transport.loseConnection()
        yield client.lost
