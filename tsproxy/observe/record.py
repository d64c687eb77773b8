"""One finished client-facing HTTP exchange, as the metrics and the access log see it.

The connection fills a record from what it already holds (raw request bytes, counters, clock
readings) and hands it over once; everything derived (labels, log fields) is computed by the
consumers, so an exchange nobody observes costs nothing. No Twisted import here.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import attrs

__all__ = ["Exchange", "grpc_code", "method_label", "request_protocol"]

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


#: What Go's strings.TrimSpace trims (unicode.IsSpace): Python's str.strip() would also take
#: the information separators U+001C..U+001F.
_GO_SPACE = (
    " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_WANTED = (b"connection", b"upgrade", b"accept", b"content-type")


def _first_values(headers: Headers) -> List[Optional[bytes]]:
    """The first value of Connection, Upgrade, Accept and Content-Type (Go's Header.Get)."""
    found: List[Optional[bytes]] = [None, None, None, None]
    for name, value in headers:
        if 6 <= len(name) <= 12:
            lower = name.lower()
            if lower in _WANTED:
                index = _WANTED.index(lower)
                if found[index] is None:
                    found[index] = value
    return found


def _contains_token(value: Optional[bytes], token: str) -> bool:
    """Traefik's containsHeader: one comma-separated item, trimmed and lower-cased (Go's
    TrimSpace and ToLower), equals ``token``."""
    if not value:
        return False
    text = value.decode("utf-8", "replace")
    return any(item.strip(_GO_SPACE).lower() == token for item in text.split(","))


def request_protocol(headers: Headers) -> str:
    """The ``protocol`` label, as Traefik's getRequestProtocol decides it, in its order:
    ``websocket`` (Connection has the token upgrade and Upgrade the token websocket), ``sse``
    (the first Accept header has the item text/event-stream), ``grpc-web`` / ``grpc``
    (Content-Type starts with application/grpc-web / application/grpc), else ``http``."""
    connection, upgrade, accept, content_type = _first_values(headers)
    if _contains_token(connection, "upgrade") and _contains_token(upgrade, "websocket"):
        return "websocket"
    if _contains_token(accept, "text/event-stream"):
        return "sse"
    if content_type is not None and content_type.startswith(b"application/grpc"):
        if content_type.startswith(b"application/grpc-web"):
            return "grpc-web"
        return "grpc"
    return "http"


#: gRPC status names as grpc-go's Code.UnmarshalJSON accepts them (JSON strings).
_GRPC_NAMES = {
    b'"OK"': "0",
    b'"CANCELLED"': "1",
    b'"UNKNOWN"': "2",
    b'"INVALID_ARGUMENT"': "3",
    b'"DEADLINE_EXCEEDED"': "4",
    b'"NOT_FOUND"': "5",
    b'"ALREADY_EXISTS"': "6",
    b'"PERMISSION_DENIED"': "7",
    b'"RESOURCE_EXHAUSTED"': "8",
    b'"FAILED_PRECONDITION"': "9",
    b'"ABORTED"': "10",
    b'"OUT_OF_RANGE"': "11",
    b'"UNIMPLEMENTED"': "12",
    b'"INTERNAL"': "13",
    b'"UNAVAILABLE"': "14",
    b'"DATA_LOSS"': "15",
    b'"UNAUTHENTICATED"': "16",
}
_GRPC_UNKNOWN = "2"


def grpc_code(response_headers: Headers) -> str:
    """The ``code`` label of a gRPC or gRPC-Web exchange (Traefik's grpcStatusCode): the
    response's first Grpc-Status parsed as grpc-go's Code.UnmarshalJSON does (a decimal
    below 17, or a quoted name), 2 (Unknown) when absent or not a valid code."""
    for name, value in response_headers:
        if len(name) == 11 and name.lower() == b"grpc-status":
            if not value:
                return _GRPC_UNKNOWN  # Header.Get gives "" for an empty value: Unknown
            if value.isdigit():
                # strconv.ParseUint(s, 10, 32): ASCII digits only; leading zeros are fine.
                digits = value.lstrip(b"0") or b"0"
                return digits.decode("ascii") if int(digits[:3]) < 17 else _GRPC_UNKNOWN
            return _GRPC_NAMES.get(value, _GRPC_UNKNOWN)
    return _GRPC_UNKNOWN


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
        return request_protocol(self.headers)

    def header(self, name: bytes) -> Optional[bytes]:
        """The first value of request header ``name`` (lower case), or None."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None
