"""What the proxy does to headers on the way through, and the responses it makes itself.

Traefik's behaviour (reference/traefik-http.md §4–5): hop-by-hop headers go, X-Forwarded-* are
rebuilt unless the peer is trusted, error bodies are Go's. Pure functions over byte strings.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple

from tsproxy.http.wire import Headers, RequestHead, ResponseHead

HOP_BY_HOP = frozenset(
    [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    ]
)

#: The X- headers Traefik manages: dropped when they come from an untrusted peer.
MANAGED_FORWARDED = frozenset(
    [
        b"x-forwarded-proto",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-forwarded-server",
        b"x-forwarded-uri",
        b"x-forwarded-method",
        b"x-forwarded-prefix",
        b"x-forwarded-tls-client-cert",
        b"x-forwarded-tls-client-cert-info",
        b"x-forwarded-scheme",
        b"x-scheme",
        b"x-real-ip",
    ]
)


def host_port(host: bytes) -> Optional[bytes]:
    """The port part of a Host header value, if any."""
    if host.startswith(b"["):
        end = host.find(b"]")
        rest = host[end + 1 :] if end >= 0 else b""
        return rest[1:] if rest.startswith(b":") and rest[1:].isdigit() else None
    if host.count(b":") == 1:
        port = host.rsplit(b":", 1)[1]
        return port if port.isdigit() else None
    return None


#: What a Connection header can never remove: the framing and the Host are the proxy's own
#: (regenerated from what it decoded), whatever the client lists.
FRAMING = frozenset([b"content-length", b"transfer-encoding", b"host"])
#: Dropped from a client's request in any case: the proxy writes them itself.
_REQUEST_OWN = HOP_BY_HOP | frozenset([b"content-length", b"host"])
#: ... and from an untrusted peer, the X- headers Traefik manages too.
_REQUEST_OWN_UNTRUSTED = _REQUEST_OWN | MANAGED_FORWARDED
_RESPONSE_OWN = HOP_BY_HOP | frozenset([b"content-length"])
#: Methods Go's transport sends "Content-Length: 0" for when there is no body.
_NO_EMPTY_LENGTH = frozenset([b"GET", b"HEAD", b"CONNECT"])


def forwarded_request_head(
    req: RequestHead,
    *,
    peer_ip: str,
    trusted: bool,
    tls: bool,
    proxy_hostname: bytes,
    host_override: Optional[bytes],
    add_forwarded_for: bool = True,
    target: Optional[bytes] = None,
) -> bytes:
    """The head tsproxy sends to a backend for `req`.

    `target` replaces ``req.path`` as the request target (a server's preservePath).

    Without `add_forwarded_for` (a headers middleware set X-Forwarded-For to ""), no
    X-Forwarded-For line is sent, as Go's ReverseProxy leaves out a nil one.

    The target is ``req.path`` (the cleaned origin form), Host is ``req.host`` (the
    absolute-form authority or the Host header) unless `host_override` (passHostHeader
    false, or an HTTP/1.0 request without a host), and the body framing is written anew
    from what the proxy decodes: nothing the client sends can make the backend read the
    body differently from the proxy.
    """
    drop = _REQUEST_OWN if trusted else _REQUEST_OWN_UNTRUSTED
    if req.connection_tokens:
        named = [t for t in req.connection_tokens if t not in drop and t not in MANAGED_FORWARDED]
        if named:
            drop = drop | frozenset(named)
    host = req.host
    sent_host = host_override if host_override is not None else host
    path = req.path if target is None else target
    lines: List[bytes] = [req.method, b" ", path, b" HTTP/1.1\r\nHost: ", sent_host, b"\r\n"]
    prior_for: List[bytes] = []
    present = set()
    if not trusted:
        # Every managed X- header is in ``drop``: none is kept, folded or counted present.
        for name, value in req.headers:
            if name.lower() not in drop:
                lines += [name, b": ", value, b"\r\n"]
    else:
        for name, value in req.headers:
            lname = name.lower()
            if lname in drop:
                continue
            if lname == b"x-forwarded-for":
                # Folded into one line below, with the peer appended, as Go's ReverseProxy does.
                prior_for.append(value)
                continue
            elif lname == b"x-forwarded-server":
                continue  # always rewritten
            elif lname in MANAGED_FORWARDED:
                present.add(lname)
            lines += [name, b": ", value, b"\r\n"]
    peer = peer_ip.encode("ascii")
    websocket = req.upgrade is not None and b"websocket" in req.upgrade.lower()
    proto = (b"wss" if tls else b"ws") if websocket else (b"https" if tls else b"http")
    port = host_port(host) or (b"443" if tls else b"80")
    if add_forwarded_for:
        lines += [b"X-Forwarded-For: ", b", ".join(prior_for + [peer]), b"\r\n"]
    if b"x-forwarded-proto" not in present:
        lines += [b"X-Forwarded-Proto: ", proto, b"\r\n"]
    if b"x-forwarded-host" not in present and host:
        lines += [b"X-Forwarded-Host: ", host, b"\r\n"]
    if b"x-forwarded-port" not in present:
        lines += [b"X-Forwarded-Port: ", port, b"\r\n"]
    lines += [b"X-Forwarded-Server: ", proxy_hostname, b"\r\n"]
    if b"x-real-ip" not in present:
        lines += [b"X-Real-Ip: ", peer, b"\r\n"]
    if req.upgrade is not None:
        lines += [b"Connection: Upgrade\r\nUpgrade: ", req.upgrade, b"\r\n"]
    if req.framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked\r\n")
    elif req.framing == "length":
        lines.append(b"Content-Length: %d\r\n" % req.content_length)
    elif req.method not in _NO_EMPTY_LENGTH and req.upgrade is None:
        lines.append(b"Content-Length: 0\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def client_response_head(
    resp: ResponseHead,
    *,
    framing_out: str,
    keep_alive: bool,
    client_http10: bool,
    extra: Sequence[Tuple[bytes, bytes]] = (),
) -> bytes:
    """The head tsproxy sends to its client for a backend's final response `resp`.

    `framing_out` is how tsproxy frames the body towards the client: "length" (the
    backend's Content-Length), "chunked" (re-chunked), "close" (until close) or "none".
    """
    # With a body, the framing sent is the proxy's own, from what it decodes (one value).
    drop = HOP_BY_HOP if framing_out == "none" else _RESPONSE_OWN
    if resp.connection_tokens:
        named = [t for t in resp.connection_tokens if t not in drop and t not in FRAMING]
        if named:
            drop = drop | frozenset(named)
    lines: List[bytes] = [b"HTTP/1.1 %d " % resp.status, resp.reason, b"\r\n"]
    for name, value in resp.headers:
        if name.lower() not in drop:
            lines += [name, b": ", value, b"\r\n"]
    for name, value in extra:
        lines += [name, b": ", value, b"\r\n"]
    if framing_out == "length":
        lines.append(b"Content-Length: %d\r\n" % resp.content_length)
    elif framing_out == "chunked":
        lines.append(b"Transfer-Encoding: chunked\r\n")
    if not keep_alive:
        lines.append(b"Connection: close\r\n")
    elif client_http10:
        lines.append(b"Connection: keep-alive\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def informational_head(resp: ResponseHead) -> bytes:
    """A 1xx interim response, passed to the client as the backend sent it."""
    lines: List[bytes] = [b"HTTP/1.1 %d " % resp.status, resp.reason, b"\r\n"]
    for name, value in resp.headers:
        lines += [name, b": ", value, b"\r\n"]
    lines.append(b"\r\n")
    return b"".join(lines)


def switching_protocols_head(resp: ResponseHead) -> bytes:
    """A 101 response: hop-by-hop headers go, except the upgrade pair itself."""
    lines: List[bytes] = [b"HTTP/1.1 101 ", resp.reason or b"Switching Protocols", b"\r\n"]
    upgrade = b""
    for name, value in resp.headers:
        lname = name.lower()
        if lname == b"upgrade":
            upgrade = value
        elif lname not in HOP_BY_HOP and (lname in FRAMING or lname not in resp.connection_tokens):
            lines += [name, b": ", value, b"\r\n"]
    lines += [b"Connection: Upgrade\r\nUpgrade: ", upgrade, b"\r\n\r\n"]
    return b"".join(lines)


_REASONS = {
    400: b"Bad Request",
    404: b"Not Found",
    408: b"Request Timeout",
    411: b"Length Required",
    413: b"Request Entity Too Large",
    414: b"Request URI Too Long",
    417: b"Expectation Failed",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
}

_date_cache: List[object] = [0, b""]


def http_date() -> bytes:
    """The current Date header value, formatted at most once a second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = formatdate(now, usegmt=True).encode("ascii")
    return _date_cache[1]  # type: ignore[return-value]


def error_response(status: int, body: Optional[bytes] = None, close: bool = False) -> bytes:
    """A complete response that tsproxy makes itself, with Traefik's (Go's) bodies.

    404 and 503 carry Go's text/plain headers; the proxy errors 502/504 carry no
    Content-Type, as in Traefik v3; client errors (4xx from parsing) close the connection.
    """
    reason = _REASONS.get(status, b"Error")
    headers: List[Tuple[bytes, bytes]] = []
    if status == 404:
        body = b"404 page not found\n" if body is None else body
        headers += [
            (b"Content-Type", b"text/plain; charset=utf-8"),
            (b"X-Content-Type-Options", b"nosniff"),
        ]
    elif status == 503:
        body = b"no available server\n" if body is None else body
        headers += [
            (b"Content-Type", b"text/plain; charset=utf-8"),
            (b"X-Content-Type-Options", b"nosniff"),
        ]
    elif status in (502, 504, 500):
        body = reason if body is None else body
    else:
        body = (b"%d %s" % (status, reason)) if body is None else body
        headers.append((b"Content-Type", b"text/plain; charset=utf-8"))
    headers += [(b"Date", http_date()), (b"Content-Length", b"%d" % len(body))]
    if close:
        headers.append((b"Connection", b"close"))
    return b"".join(
        [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
        + [b"%s: %s\r\n" % pair for pair in headers]
        + [b"\r\n", body]
    )


def decode_headers(headers: Headers) -> List[Tuple[str, str]]:
    """Header pairs as text for the rule engine: UTF-8 as Go sees them, other bytes kept
    distinct by surrogateescape (names are tokens, hence ASCII)."""
    return [(n.decode("latin-1"), v.decode("utf-8", "surrogateescape")) for n, v in headers]


class HeaderText(Sequence[Tuple[str, str]]):
    """A request's header pairs as `decode_headers` gives them, decoded when first read:
    most requests are routed on host and path alone."""

    __slots__ = ("raw", "_text")

    def __init__(self, raw: Headers) -> None:
        self.raw = raw
        self._text: Optional[List[Tuple[str, str]]] = None

    def _decoded(self) -> List[Tuple[str, str]]:
        text = self._text
        if text is None:
            text = self._text = decode_headers(self.raw)
        return text

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, index: Any) -> Any:
        return self._decoded()[index]


def set_cookie_headers(values: Iterable[str]) -> List[Tuple[bytes, bytes]]:
    """Set-Cookie pairs from the sticky balancer's header values."""
    return [(b"Set-Cookie", v.encode("latin-1")) for v in values]
