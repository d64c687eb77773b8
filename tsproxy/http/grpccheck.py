"""One gRPC health check (``mode: grpc``): grpc.health.v1.Health/Check over HTTP/2, in clear
text (h2c with prior knowledge) or over TLS with ALPN h2, on a connection of its own.

The h2 library does the HTTP/2 framing; the verdict on the answer is pure
(tsproxy.balance.health.grpc_verdict).
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)
from h2.exceptions import H2Error
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from tsproxy.balance.health import (
    GRPC_HEALTH_PATH,
    GRPC_HEALTH_REQUEST,
    grpc_verdict,
    healthy_status,
)

__all__ = ["grpc_check", "h2c_check"]

#: An answer larger than this is not a HealthCheckResponse.
_MAX_BODY = 64 * 1024

Verdict = Tuple[bool, str]


class _HealthCall(Protocol):
    """The client side of one Health/Check call; ``done`` fires with a verdict."""

    def __init__(self, authority: bytes, scheme: bytes) -> None:
        self.authority = authority
        self.scheme = scheme
        self.done: defer.Deferred[Verdict] = defer.Deferred(self._cancel)
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.stream = 0
        self.status = 0
        self.grpc_status = ""
        self.body: List[bytes] = []
        self.size = 0

    def _cancel(self, d: defer.Deferred[Verdict]) -> None:
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    #: The verdict comes with the answer's headers (an HTTP check), not at its end (gRPC).
    verdict_at_headers = False

    def connectionMade(self) -> None:
        h2 = self.h2
        h2.initiate_connection()
        self.stream = h2.get_next_available_stream_id()
        try:
            self._request()
        except H2Error as e:
            self._finish(False, f"health check: HTTP/2 error: {e}")
            return
        self._flush()

    def _verdict(self) -> Verdict:
        return grpc_verdict(self.status, self.grpc_status, b"".join(self.body))

    def _request(self) -> None:
        h2 = self.h2
        h2.send_headers(
            self.stream,
            [
                (b":method", b"POST"),
                (b":scheme", self.scheme),
                (b":path", GRPC_HEALTH_PATH.encode("ascii")),
                (b":authority", self.authority),
                (b"content-type", b"application/grpc"),
                (b"te", b"trailers"),
            ],
        )
        h2.send_data(self.stream, GRPC_HEALTH_REQUEST, end_stream=True)

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def dataReceived(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except H2Error as e:
            self._finish(False, f"gRPC health check: HTTP/2 error: {e}")
            return
        for event in events:
            if getattr(event, "stream_id", self.stream) != self.stream:
                continue
            if isinstance(event, ResponseReceived):
                self._headers(event.headers)
                if self.verdict_at_headers:
                    self._finish(*self._verdict())
                    return
            elif isinstance(event, TrailersReceived):
                self._headers(event.headers)
            elif isinstance(event, DataReceived):
                self.size += len(event.data)
                if self.size > _MAX_BODY:
                    self._finish(False, "gRPC health check: answer too large")
                    return
                self.body.append(event.data)
                self.h2.acknowledge_received_data(event.flow_controlled_length, self.stream)
            elif isinstance(event, StreamEnded):
                self._finish(*self._verdict())
                return
            elif isinstance(event, (StreamReset, ConnectionTerminated)):
                self._finish(False, "gRPC health check: the server reset the call")
                return
        self._flush()

    def _headers(self, headers: Any) -> None:
        for name, value in headers:
            if name == b":status":
                self.status = int(value)
            elif name == b"grpc-status":
                self.grpc_status = value.decode("latin-1")

    def _finish(self, up: bool, why: str) -> None:
        if not self.done.called:
            self.done.callback((up, why))
        if self.transport is not None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if not self.done.called:
            self.done.callback((False, "gRPC health check: connection closed before the answer"))


class _HTTPCall(_HealthCall):
    """One HTTP health check over h2c (prior knowledge), as Traefik checks a server whose
    scheme is h2c: the verdict is the answer's status."""

    verdict_at_headers = True

    def __init__(
        self,
        authority: bytes,
        method: bytes,
        path: bytes,
        headers: Tuple[Tuple[bytes, bytes], ...],
        expected: int,
    ) -> None:
        super().__init__(authority, b"http")
        self.method = method
        self.path = path
        self.extra = headers
        self.expected = expected

    def _request(self) -> None:
        head = [
            (b":method", self.method),
            (b":scheme", b"http"),
            (b":path", self.path),
            (b":authority", self.authority),
        ]
        head.extend((name.lower(), value) for name, value in self.extra)
        self.h2.send_headers(self.stream, head, end_stream=True)

    def _verdict(self) -> Verdict:
        return healthy_status(self.status, self.expected), f"health check answered {self.status}"


def _connect(
    reactor: Any, host: str, port: int, timeout: float, call: _HealthCall, tls_options: Any = None
) -> defer.Deferred[Verdict]:
    endpoint_class = TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint
    endpoint: Any = endpoint_class(reactor, host, port, timeout=max(1, int(timeout)))
    if tls_options is not None:
        from twisted.internet.endpoints import wrapClientTLS

        endpoint = wrapClientTLS(tls_options, endpoint)
    connected = connectProtocol(endpoint, call)

    def on_connected(protocol: Optional[_HealthCall]) -> defer.Deferred[Verdict]:
        return call.done

    return connected.addCallback(on_connected)


def h2c_check(
    reactor: Any,
    host: str,
    port: int,
    timeout: float,
    method: str,
    path: str,
    authority: str,
    headers: Tuple[Tuple[str, str], ...],
    expected: int,
) -> defer.Deferred[Verdict]:
    """Dial ``host``:``port`` and send one HTTP request over h2c; fires with (up, why) by
    the answer's status (a failed connection errbacks). Redirects are not followed."""
    call = _HTTPCall(
        authority.encode("idna"),
        method.encode("ascii"),
        path.encode("ascii"),
        tuple((name.encode("utf-8"), value.encode("utf-8")) for name, value in headers),
        expected,
    )
    return _connect(reactor, host, port, timeout, call)


def grpc_check(
    reactor: Any, host: str, port: int, tls: bool, timeout: float, tls_options: Any = None
) -> defer.Deferred[Verdict]:
    """Dial ``host``:``port`` and make one Health/Check call; fires with (up, why) (a failed
    connection errbacks). ``tls``: over TLS, with ``tls_options`` (a client creator asking
    for ALPN h2); else h2c with prior knowledge."""
    shown = f"[{host}]" if ":" in host else host
    call = _HealthCall(f"{shown}:{port}".encode("idna"), b"https" if tls else b"http")
    return _connect(reactor, host, port, timeout, call, tls_options if tls else None)
