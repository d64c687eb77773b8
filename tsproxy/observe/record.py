"""One finished client-facing HTTP exchange, as the metrics and the access log see it.

The connection fills a record from what it already holds (raw request bytes, counters, clock
readings) and hands it over once; everything derived (labels, log fields) is computed by the
consumers, so an exchange nobody observes costs nothing. No Twisted import here.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import attrs

__all__ = ["Exchange", "method_label", "request_protocol"]

Headers = Sequence[Tuple[bytes, bytes]]

#: Methods Traefik keeps as a metric label; any other one is EXTENSION_METHOD.
_STANDARD_METHODS = {
    m.encode("ascii"): m
    for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
}
_STANDARD_METHODS[b"PRI"] = "PRI"


def method_label(method: bytes) -> str:
    """The ``method`` label value: standard methods as they are, others EXTENSION_METHOD,
    and NON_UTF8_HTTP_METHOD for bytes that are not UTF-8 (Traefik's getMethod)."""
    label = _STANDARD_METHODS.get(method)
    if label is not None:
        return label
    try:
        method.decode("utf-8")
    except UnicodeDecodeError:
        return "NON_UTF8_HTTP_METHOD"
    return "EXTENSION_METHOD"


def request_protocol(upgrade: Optional[bytes], headers: Headers) -> str:
    """The ``protocol`` label: websocket for a WebSocket upgrade, sse when the client
    accepts text/event-stream, else http (gRPC needs HTTP/2, which tsproxy does not serve)."""
    if upgrade is not None and upgrade.strip().lower() == b"websocket":
        return "websocket"
    for name, value in headers:
        if len(name) == 6 and name.lower() == b"accept" and b"text/event-stream" in value:
            return "sse"
    return "http"


@attrs.define(slots=True, eq=False)
class Exchange:
    """What happened on one exchange. Times are the clock's seconds; ``origin_duration`` is
    -1.0 and ``server_url`` "" when no server was reached (local 404/503, or cut before);
    ``status`` is what the client got (499 when it left before any answer), ``origin_status``
    what the server answered (0 if nothing). Bytes count bodies, as Traefik's capture does."""

    entrypoint: str
    router: str
    services: Sequence[str]
    server_url: str
    method: bytes
    target: bytes
    version: bytes
    headers: Headers
    upgrade: Optional[bytes]
    status: int
    origin_status: int
    request_bytes: int
    response_bytes: int
    start: float
    duration: float
    origin_duration: float
    client_ip: str
    client_port: int
    trusted: bool
    tls: bool
    response_headers: Headers = ()
    tls_version: str = ""  # Traefik's label values ("1.3", Go cipher name) when ``tls``
    tls_cipher: str = ""

    @property
    def protocol(self) -> str:
        return request_protocol(self.upgrade, self.headers)

    def header(self, name: bytes) -> Optional[bytes]:
        """The first value of request header ``name`` (lower case), or None."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None
