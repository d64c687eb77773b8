"""Backends for the demo and for tests: small twisted.web servers that say who they are, and
UDP echo servers.

Shipped with the package (as treq ships treq.testing) so the demo and the test suite use the
same servers. They are not on the proxy's data path.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.web import server
from twisted.web.resource import Resource
from zope.interface import implementer

from tsproxy.logs import get_logger

log = get_logger(__name__)


class AppResource(Resource):
    """Answers every request with `Hello <name>\\n` and records what it saw.

    Paths with special meaning, for tests: `/echo` streams the request body back,
    `/bytes/N` streams N bytes of `x`, `/status/N` answers with status N,
    `/headers` answers the request headers one per line.
    """

    isLeaf = True

    def __init__(self, name: str, on_request: Optional[Callable[[str, Any], None]] = None) -> None:
        super().__init__()
        self.name = name
        self.requests: List[dict] = []
        self.on_request = on_request

    def render(self, request: Any) -> Any:
        path = request.path.decode("latin-1")
        record = {
            "method": request.method.decode("latin-1"),
            "path": path,
            "uri": request.uri.decode("latin-1"),
            "headers": {
                k.decode("latin-1").lower(): [v.decode("latin-1") for v in vs]
                for k, vs in request.requestHeaders.getAllRawHeaders()
            },
        }
        self.requests.append(record)
        if self.on_request is not None:
            self.on_request(self.name, record)
        request.setHeader(b"Content-Type", b"text/plain")
        if path == "/echo":
            return _stream_file(request, request.content)
        if path.startswith("/bytes/"):
            return _stream_bytes(request, int(path.split("/")[2]))
        if path.startswith("/status/"):
            request.setResponseCode(int(path.split("/")[2]))
            return b""
        if path == "/headers":
            lines = ["%s: %s" % (k, v) for k, vs in sorted(record["headers"].items()) for v in vs]
            return ("\n".join(lines) + "\n").encode("latin-1")
        return ("Hello %s\n" % (self.name,)).encode("ascii")


@implementer(IPushProducer)
class _Streamer:
    """Writes a body in 64 KiB pieces, pausing when the client's buffer is full."""

    def __init__(self, request: Any, read: Callable[[int], bytes]) -> None:
        self.request = request
        self.read = read
        self.paused = False
        self.done = False
        request.registerProducer(self, True)
        request.notifyFinish().addErrback(lambda _: self.stopProducing())
        self.resumeProducing()

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        while not self.paused and not self.done:
            chunk = self.read(65536)
            if not chunk:
                self.done = True
                self.request.unregisterProducer()
                self.request.finish()
                return
            self.request.write(chunk)

    def stopProducing(self) -> None:
        self.done = True


def _stream_file(request: Any, content: Any) -> Any:
    content.seek(0, 2)
    request.setHeader(b"Content-Length", b"%d" % content.tell())
    content.seek(0)
    _Streamer(request, content.read)
    return server.NOT_DONE_YET


def _stream_bytes(request: Any, total: int) -> Any:
    left = [total]
    block = b"x" * 65536

    def read(n: int) -> bytes:
        take = min(n, left[0])
        left[0] -= take
        return block[:take]

    request.setHeader(b"Content-Length", b"%d" % total)
    _Streamer(request, read)
    return server.NOT_DONE_YET


class _QuietSite(server.Site):
    """A Site without Twisted's access log line per request (``on_request`` says what it
    got, where a caller wants that)."""

    def log(self, request: Any) -> None:
        pass


def app_site(name: str, on_request: Optional[Callable[[str, Any], None]] = None) -> server.Site:
    """A Site whose every path answers `Hello <name>`."""
    site = _QuietSite(AppResource(name, on_request))
    site.displayTracebacks = False
    site.noisy = False
    return site


def listen_app(
    reactor: Any,
    name: str,
    port: int = 0,
    interface: str = "127.0.0.1",
    on_request: Optional[Callable[[str, Any], None]] = None,
) -> Any:
    """Start an app backend; returns the listening port (its `.factory.resource` is the app)."""
    site = app_site(name, on_request)
    listening = reactor.listenTCP(port, site, interface=interface)
    listening.site = site
    listening.app = site.resource
    return listening


class UDPEcho(DatagramProtocol):
    """Answers every datagram with ``prefix + datagram``, to its sender; records the senders."""

    def __init__(
        self,
        name: str,
        prefix: bytes = b"",
        on_datagram: Optional[Callable[[str, Any, bytes], None]] = None,
    ) -> None:
        self.name = name
        self.prefix = prefix
        self.peers: List[Any] = []
        self.on_datagram = on_datagram

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.peers.append(addr)
        if self.on_datagram is not None:
            self.on_datagram(self.name, addr, data)
        self.transport.write(self.prefix + data, addr)  # type: ignore[union-attr]


def listen_udp_echo(
    reactor: Any,
    name: str,
    port: int = 0,
    interface: str = "127.0.0.1",
    prefix: bytes = b"",
    on_datagram: Optional[Callable[[str, Any, bytes], None]] = None,
) -> Any:
    """Start a UDP echo backend; returns the listening port (its `.echo` is the protocol)."""
    echo = UDPEcho(name, prefix, on_datagram)
    listening = reactor.listenUDP(port, echo, interface=interface, maxPacketSize=65535)
    listening.echo = echo
    return listening


@implementer(IHalfCloseableProtocol)
class TCPGreeter(Protocol):
    """A TCP backend that speaks first: ``HELLO <name>`` on connect, then echoes; on the
    client's FIN it answers ``BYE`` and closes. Its factory records connections and data."""

    factory: GreeterFactory

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        if self.factory.on_connection is not None:
            self.factory.on_connection(self.factory.name, self.transport.getPeer())  # type: ignore[union-attr]
        self.transport.write(b"HELLO " + self.factory.name.encode() + b"\r\n")  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.factory.received.append(data)
        self.transport.write(data)  # type: ignore[union-attr]

    def readConnectionLost(self) -> None:
        self.transport.write(b"BYE\r\n")  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        pass


class GreeterFactory(Factory):
    protocol = TCPGreeter  # type: ignore[assignment]
    noisy = False

    def __init__(
        self, name: str, on_connection: Optional[Callable[[str, Any], None]] = None
    ) -> None:
        self.name = name
        self.on_connection = on_connection
        self.connections: List[TCPGreeter] = []
        self.received: List[bytes] = []


def listen_tcp_greeter(
    reactor: Any,
    name: str,
    port: int = 0,
    interface: str = "127.0.0.1",
    on_connection: Optional[Callable[[str, Any], None]] = None,
) -> Any:
    """Start a greeting TCP echo backend; returns the listening port (``.greeter`` is its
    factory)."""
    factory = GreeterFactory(name, on_connection)
    listening = reactor.listenTCP(port, factory, interface=interface)
    listening.greeter = factory
    return listening
