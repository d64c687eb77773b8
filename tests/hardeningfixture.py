"""A proxy in front of a raw HTTP/1.1 backend that records the exact bytes it receives.

The backend frames requests by itself (Content-Length or chunked, which is all the proxy
sends) and answers each with a scripted response; tests send raw bytes to the proxy and
look at raw bytes on both sides.
"""

from __future__ import annotations

import re
import socket
import struct
from typing import Any, Callable, List, Optional

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater

from tests.proxyfixture import ENDPOINTS, SERVICE, STATIC, ProxyTestCase

_LENGTH = re.compile(rb"\r\ncontent-length: *([0-9]+)\r\n", re.I)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding: *chunked\r\n", re.I)


def request_end(buf: bytes) -> int:
    """Where the first complete request in `buf` ends, or -1."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return -1
    head = buf[: end + 2]
    body = end + 4
    length = _LENGTH.search(head)
    if length is not None:
        stop = body + int(length.group(1))
        return stop if len(buf) >= stop else -1
    if _CHUNKED.search(head):
        stop = buf.find(b"\r\n0\r\n\r\n", body - 2)
        return stop + 7 if stop >= 0 else -1
    return body


def ok(request: bytes) -> bytes:
    """The default answer: 200 naming the request line."""
    body = b"seen " + request.split(b"\r\n", 1)[0]
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


class RawBackend(Protocol):
    """Records every request as bytes; answers each with ``factory.answer(request)`` (bytes
    to write, or None to stay silent)."""

    def connectionMade(self) -> None:
        self.buf = b""
        self.factory.conns.append(self)
        self.lost: defer.Deferred = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.factory.raw.append(data)
        self.buf += data
        while True:
            end = request_end(self.buf)
            if end < 0:
                return
            request, self.buf = self.buf[:end], self.buf[end:]
            self.factory.requests.append(request)
            answer = self.factory.answer(request)
            if answer is not None:
                self.transport.write(answer)
                if self.factory.close_after:
                    self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.closed += 1
        self.lost.callback(None)

    def reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0)."""
        self.transport.socket.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        self.transport.abortConnection()


class Collector(Protocol):
    """A client connection that keeps what it gets and notes how it ended."""

    def __init__(self) -> None:
        self.received = b""
        self.reason: Any = None
        self.closed: defer.Deferred = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any = None) -> None:
        self.reason = reason
        self.closed.callback(self.received)


ROUTES = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: raw
spec:
  routes:
    - match: Host(`h`) || Host(`admin.internal`) || Host(`public.test`)
      kind: Rule
      services:
        - name: raw
          port: 80
    - match: Host(`acl.test`) && !PathPrefix(`/admin`)
      kind: Rule
      services:
        - name: raw
          port: 80
    - match: PathPrefix(`/hostless`)
      kind: Rule
      priority: 1
      services:
        - name: raw
          port: 80
"""


class HardeningTestCase(ProxyTestCase):
    """The proxy's ``web`` entrypoint (``http:`` options as given) routing to a RawBackend."""

    http_options = ""
    read_timeout = ""

    def setUp(self) -> None:
        super().setUp()
        factory = Factory.forProtocol(RawBackend)
        factory.conns = []  # type: ignore[attr-defined]
        factory.raw = []  # type: ignore[attr-defined]
        factory.requests = []  # type: ignore[attr-defined]
        factory.closed = 0  # type: ignore[attr-defined]
        factory.answer = ok  # type: ignore[attr-defined]
        factory.close_after = False  # type: ignore[attr-defined]
        self.backend = factory
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.backend_port = port.getHost().port
        self.addCleanup(lambda: [c.transport.abortConnection() for c in factory.conns])

    def configure(self, clock: Any = None) -> None:
        web = '  web:\n    address: "127.0.0.1:0"\n'
        extra = self.http_options + self.read_timeout
        static = STATIC.replace(web, web + extra)
        self.write("tsproxy.yaml", static)
        docs = [
            SERVICE.format(name="raw"),
            ENDPOINTS.format(name="raw", port=self.backend_port),
            ROUTES,
        ]
        self.write("raw.yaml", "---\n".join(docs))
        self.start_proxy(clock=clock)

    @property
    def port(self) -> int:
        assert self.service is not None
        return self.service.port_of("web")

    @defer.inlineCallbacks
    def connect(self) -> Any:
        client = Collector()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), client)
        self.addCleanup(client.transport.abortConnection)
        return client

    @defer.inlineCallbacks
    def exchange(self, payload: bytes) -> Any:
        """Send `payload` on a new connection and return all until the proxy closes."""
        client = yield self.connect()
        client.transport.write(payload)
        received = yield client.closed
        return received


@defer.inlineCallbacks
def wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> Any:
    """Poll `predicate` every 10 ms on the real reactor; fail after `seconds`."""
    for _ in range(int(seconds * 100)):
        if predicate():
            return True
        yield deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("condition not met in %.1f s" % seconds)


def header_values(head: bytes, name: bytes) -> List[bytes]:
    """Values of header `name` in a raw head."""
    found = []
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower():
            found.append(value.strip())
    return found


def first_head(raw: bytes) -> Optional[bytes]:
    end = raw.find(b"\r\n\r\n")
    return raw[:end] if end >= 0 else None
