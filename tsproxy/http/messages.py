"""HTTP/1.1 message heads as the parser in ``wire`` gives them, and the request policy it
applies: plain values, no parsing and no I/O.
"""

from __future__ import annotations

from typing import FrozenSet, List, Optional, Tuple

import attrs

#: Header lines a request may carry (a tsproxy limit, entrypoint http.maxHeaders): past it, 431.
MAX_HEADERS = 100

Headers = List[Tuple[bytes, bytes]]


@attrs.frozen
class RequestPolicy:
    """What an entrypoint accepts of a request head, and how it cleans the path.

    ``denied_escapes`` are upper-case hex pairs (b"2F") refused in the path with 400.
    """

    max_headers: int = MAX_HEADERS
    sanitize_path: bool = True
    denied_escapes: FrozenSet[bytes] = frozenset()


DEFAULT_POLICY = RequestPolicy()


@attrs.define(slots=True)
class RequestHead:
    """A parsed request line and header section."""

    method: bytes
    target: bytes
    version: bytes  # b"HTTP/1.0" or b"HTTP/1.1"
    headers: Headers
    #: Body framing: "none", "length" or "chunked".
    framing: str = "none"
    content_length: int = 0
    #: The client wants the connection kept after this exchange.
    keep_alive: bool = True
    #: Lower-cased tokens of the Connection header.
    connection_tokens: Tuple[bytes, ...] = ()
    #: A protocol upgrade (WebSocket) was asked for: the Upgrade header's value.
    upgrade: Optional[bytes] = None
    expect_continue: bool = False
    #: Where the request goes: the absolute-form target's authority, else the Host header
    #: ("" for HTTP/1.0 without one). Validated; routed on and sent on as Host.
    host: bytes = b""
    #: The host came from an absolute-form target, not from the Host header.
    host_in_target: bool = False
    #: The target as forwarded: origin form with the cleaned path (or "*", or a CONNECT
    #: authority). Routing sees the same path.
    path: bytes = b"/"


@attrs.define(slots=True)
class ResponseHead:
    """A parsed status line and header section."""

    version_minor: int
    status: int
    reason: bytes
    headers: Headers
    #: "none", "length", "chunked" or "close" (read until the connection closes).
    framing: str = "none"
    content_length: int = 0
    keep_alive: bool = True
    connection_tokens: Tuple[bytes, ...] = ()


class HTTPError(Exception):
    """A message that cannot be accepted; `status` is what to answer a client with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
