"""HTTPSwitch: what an HTTP entrypoint's connection starts as. It picks HTTP/2 (ALPN, the
preface, or an h2c upgrade) or stays HTTP/1.1 (tsproxy/http/server.py), then steps aside;
the HTTP/2 connection is tsproxy/http/h2server.py's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Tuple

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from tsproxy.http.h2server import DEFAULT_LIMITS, SNIFF_LIMIT, H2Limits, H2ServerConnection
from tsproxy.http.h2wire import (
    PREFACE,
)
from tsproxy.http.server import HTTPServerConnection
from tsproxy.http.wire import (
    HTTPError,
    find_head_end,
    parse_request_head,
)
from tsproxy.logs import get_logger
from tsproxy.nodelay import set_no_delay

if TYPE_CHECKING:
    from tsproxy.http.entrypoint import HTTPEntryPointFactory

log = get_logger(__name__)


@implementer(IHalfCloseableProtocol)
class HTTPSwitch(Protocol):
    """A new connection of an HTTP entrypoint: becomes HTTP/2 or stays HTTP/1.1.

    ``h2`` negotiated by ALPN, or the HTTP/2 connection preface, make it HTTP/2; a first
    request ``Upgrade: h2c`` without a body is upgraded (RFC 7540 §3.2). The HTTP/1.1
    connection is made at once (it is what is counted, drained and timed out while the first
    bytes are awaited); once the protocol is known the switch steps out of the transport's
    way, so HTTP/1.1 pays nothing after the first read.
    """

    def __init__(self, factory: HTTPEntryPointFactory, limits: H2Limits = DEFAULT_LIMITS) -> None:
        self.factory = factory
        self.limits = limits
        self.http1 = HTTPServerConnection()
        self.http1.factory = factory
        self.inner: Any = None
        self.buf = b""

    def connectionMade(self) -> None:
        set_no_delay(self.transport)
        self.http1.makeConnection(self.transport)

    def dataReceived(self, data: bytes) -> None:
        inner = self.inner
        if inner is not None:
            inner.dataReceived(data)
            return
        buf = self.buf = self.buf + data
        if getattr(self.transport, "negotiatedProtocol", None) == b"h2":
            self._choose_h2(None)
            return
        if buf[: len(PREFACE)] == PREFACE:
            self._choose_h2(None)
            return
        if PREFACE.startswith(buf):
            return  # maybe the preface: wait for more
        if self.factory.tls or b"h2c" not in buf[:SNIFF_LIMIT].lower():
            self._choose(self.http1)
            return
        end, body_start = find_head_end(buf)
        if end < 0:
            if len(buf) > SNIFF_LIMIT:
                self._choose(self.http1)
            return
        try:
            req = parse_request_head(buf[:end])
        except HTTPError:
            self._choose(self.http1)
            return
        settings = _upgrade_settings(req.headers, req.connection_tokens)
        if (
            req.upgrade is None
            or req.upgrade.strip().lower() != b"h2c"
            or settings is None
            or req.framing != "none"
        ):
            self._choose(self.http1)
            return
        self.buf = buf[body_start:]
        self.transport.write(  # type: ignore[union-attr]
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        )
        self._choose_h2((settings, req))

    def _choose_h2(self, upgrade: Any) -> None:
        """Retire the HTTP/1.1 connection (it has read nothing) for an HTTP/2 one, which
        takes over its place in the connection count."""
        http1 = self.http1
        http1.state = "closed"
        http1._cancel_timer()
        self.transport.unregisterProducer()  # type: ignore[union-attr]
        self.factory.connections.discard(http1)
        self._choose(H2ServerConnection(self.factory, self.limits, upgrade=upgrade))

    def _choose(self, inner: Any) -> None:
        self.inner = inner
        transport: Any = self.transport
        # Step out of the way: the transport delivers to the chosen protocol directly.
        if getattr(transport, "protocol", None) is self:
            transport.protocol = inner
        elif getattr(transport, "wrappedProtocol", None) is self:
            transport.wrappedProtocol = inner
        if inner is not self.http1:
            inner.makeConnection(transport)
        data, self.buf = self.buf, b""
        if data:
            inner.dataReceived(data)

    def readConnectionLost(self) -> None:
        if self.inner is None:
            self._choose(self.http1)
        inner = self.inner
        if hasattr(inner, "readConnectionLost"):
            inner.readConnectionLost()
        else:
            self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        inner = self.inner if self.inner is not None else self.http1
        inner.writeConnectionLost()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        inner = self.inner if self.inner is not None else self.http1
        inner.connectionLost(reason)


def _upgrade_settings(headers: Any, tokens: Tuple[bytes, ...]) -> Optional[bytes]:
    """The single HTTP2-Settings value of an h2c upgrade request, if it is well formed."""
    if b"http2-settings" not in tokens:
        return None
    values = [v for n, v in headers if n.lower() == b"http2-settings"]
    if len(values) != 1:
        return None
    return values[0].strip()
