"""tsproxy.http.h2stream: an h2c backend's trailers reach an HTTP/2 client also when the
backend announced a Content-Length (the stream must not end on the body's last byte)."""

from __future__ import annotations

import socket
from typing import Any, Dict, List, Tuple

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, RequestReceived, ResponseReceived, StreamEnded, TrailersReceived
from twisted.internet import defer, protocol, reactor, threads

from tests.proxyfixture import STATIC, ProxyTestCase

ROUTE = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {{name: trailers}}
spec:
  entryPoints: [web]
  routes:
    - match: Host(`trailers.test`)
      kind: Rule
      services: [{{name: trailing, port: 80, scheme: h2c}}]
    - match: Host(`stepped.test`)
      kind: Rule
      middlewares: [{{name: via}}]
      services: [{{name: trailing, port: 80, scheme: h2c}}]
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {{name: via}}
spec: {{headers: {{customResponseHeaders: {{X-Via: tsproxy}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: trailing}}
spec: {{ports: [{{name: h2, port: 80}}]}}
---
apiVersion: v1
kind: Endpoints
metadata: {{name: trailing}}
subsets: [{{addresses: [{{ip: 127.0.0.1}}], ports: [{{name: h2, port: {port}}}]}}]
"""

BODY = b"\x00\x00\x00\x00\x05hello"


class TrailingBackend(protocol.Protocol):
    """An h2c server answering every stream with a Content-Length, the body, then trailers
    (what a gRPC server written that way sends)."""

    def connectionMade(self) -> None:
        self.conn = H2Connection(H2Configuration(client_side=False))
        self.conn.initiate_connection()
        self.transport.write(self.conn.data_to_send())

    def dataReceived(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, RequestReceived):
                sid = event.stream_id
                head = [(":status", "200"), ("content-type", "application/grpc")]
                self.conn.send_headers(sid, head + [("content-length", str(len(BODY)))])
                self.conn.send_data(sid, BODY)
                self.conn.send_headers(
                    sid, [("grpc-status", "0"), ("grpc-message", "fine")], end_stream=True
                )
        self.transport.write(self.conn.data_to_send())


def _call(port: int, host: bytes) -> Tuple[Dict[bytes, bytes], bytes, List[Tuple[bytes, bytes]]]:
    """One request over h2c with prior knowledge: the response head, body and trailers."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    request = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":authority", host),
        (b":path", b"/t.Echo/Unary"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ]
    conn.send_headers(1, request)
    conn.send_data(1, BODY, end_stream=True)
    sock.sendall(conn.data_to_send())
    head: Dict[bytes, bytes] = {}
    body = b""
    trailers: List[Tuple[bytes, bytes]] = []
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                raise AssertionError("the proxy closed the connection")
            for event in conn.receive_data(data):
                if isinstance(event, ResponseReceived):
                    head = dict(event.headers)
                elif isinstance(event, DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, TrailersReceived):
                    trailers = list(event.headers)
                elif isinstance(event, StreamEnded):
                    return head, body, trailers
            sock.sendall(conn.data_to_send())
    finally:
        sock.close()


class LengthAndTrailersTests(ProxyTestCase):
    """HTTP/2 client → proxy → h2c backend sending Content-Length and trailers."""

    @defer.inlineCallbacks
    def test_trailersAfterLengthBody(self) -> Any:
        """The client gets the body, then the trailers ending the stream (not END_STREAM on
        the last DATA frame with the trailers dropped), with a middleware on the route too."""
        factory = protocol.Factory.forProtocol(TrailingBackend)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.write("tsproxy.yaml", STATIC)
        self.write("route.yaml", ROUTE.format(port=port.getHost().port))
        self.start_proxy()
        assert self.service is not None
        port = self.service.port_of("web")
        for host in (b"trailers.test", b"stepped.test"):  # without and with response steps
            head, body, trailers = yield threads.deferToThread(_call, port, host)
            self.assertEqual(head[b":status"], b"200")
            self.assertEqual(body, BODY)
            self.assertEqual(trailers, [(b"grpc-status", b"0"), (b"grpc-message", b"fine")])
        self.assertEqual(head.get(b"x-via"), b"tsproxy")
