"""HTTP/2 streams as HTTP/1.1 messages, and back: pure conversions with no I/O.

The HTTP/2 entrypoint (tsproxy.http.h2server) hands each stream to the HTTP/1.1 exchange
machinery as the request head this module writes, and turns the HTTP/1.1 response head it
gets back into HTTP/2 response headers. Header names are validated by the h2 library
(lower case, no connection-specific fields, no CR/LF/NUL); this module still refuses what
would change the meaning of the HTTP/1.1 text it writes.
"""

from __future__ import annotations

from typing import Iterable, List, Sequence, Tuple

import attrs

from tsproxy.http.wire import Headers, ResponseHead

#: The client connection preface (RFC 9113 §3.4) that starts h2c with prior knowledge.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

#: Response fields HTTP/2 forbids (RFC 9113 §8.2.2): HTTP/1.1 connection management.
CONNECTION_SPECIFIC = frozenset(
    [b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"]
)

_BAD = (b"\r", b"\n", b"\x00")


class StreamRequestError(Exception):
    """A stream's request cannot be expressed: answer it with ``status``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@attrs.frozen
class StreamRequest:
    """What an HTTP/2 request stream becomes: the HTTP/1.1 head and how its body is framed."""

    head: bytes
    method: bytes
    #: The body is sent chunked (no content-length, and more than the headers will come).
    chunked: bool
    #: The client asked for trailers (``te: trailers``: gRPC clients do).
    wants_trailers: bool


def canonical_name(name: bytes) -> bytes:
    """Go's CanonicalMIMEHeaderKey: what Traefik's backends see for an HTTP/2 field name."""
    return b"-".join(part[:1].upper() + part[1:].lower() for part in name.split(b"-"))


def stream_request(headers: Sequence[Tuple[bytes, bytes]], end_stream: bool) -> StreamRequest:
    """The HTTP/1.1 request head for an HTTP/2 request's decoded header list.

    The head asks for ``Connection: close``, so the exchange ends when the response does;
    a request body without content-length is framed chunked.
    """
    method = path = authority = b""
    scheme = b""
    fields: List[bytes] = []
    has_length = False
    wants_trailers = False
    for name, value in headers:
        for bad in _BAD:
            if bad in name or bad in value:
                raise StreamRequestError(400, "invalid character in a header field")
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":authority":
                authority = value
            elif name == b":scheme":
                scheme = value
            else:
                raise StreamRequestError(400, "unknown pseudo-header %r" % (name,))
            continue
        if name == b"host":
            if not authority:
                authority = value
            continue
        if name == b"content-length":
            has_length = True
        elif name == b"te":
            wants_trailers = value.lower() == b"trailers"
            continue
        elif name in CONNECTION_SPECIFIC:
            raise StreamRequestError(400, "connection-specific header field %r" % (name,))
        fields += [canonical_name(name), b": ", value, b"\r\n"]
    if method == b"CONNECT":
        raise StreamRequestError(405, "CONNECT is not supported over HTTP/2")
    if not method or not path or not scheme:
        raise StreamRequestError(400, "missing pseudo-header")
    if b" " in path or b" " in method or b" " in authority:
        raise StreamRequestError(400, "space in a pseudo-header")
    if not authority:
        raise StreamRequestError(400, "missing :authority")
    chunked = not end_stream and not has_length
    head = [method, b" ", path, b" HTTP/1.1\r\nHost: ", authority, b"\r\n"]
    head += fields
    if chunked:
        head.append(b"Transfer-Encoding: chunked\r\n")
    head.append(b"Connection: close\r\n\r\n")
    return StreamRequest(b"".join(head), method, chunked, wants_trailers)


def response_headers(head: ResponseHead) -> List[Tuple[bytes, bytes]]:
    """The HTTP/2 header list for an HTTP/1.1 response head (connection fields dropped)."""
    out = [(b":status", b"%d" % head.status)]
    drop = CONNECTION_SPECIFIC
    if head.connection_tokens:
        drop = drop | frozenset(head.connection_tokens)
    for name, value in head.headers:
        lname = name.lower()
        if lname in drop:
            continue
        out.append((lname, value))
    return out


def trailer_fields(headers: Iterable[Tuple[bytes, bytes]]) -> Headers:
    """Trailers as forwarded: lower-case names, no pseudo or connection fields."""
    out: Headers = []
    for name, value in headers:
        lname = name.lower()
        if lname[:1] == b":" or lname in CONNECTION_SPECIFIC:
            continue
        out.append((lname, value))
    return out
