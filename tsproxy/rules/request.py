"""What a rule may look at: the routing view of one HTTP request or one TCP connection.

Canonical host and routing path eagerly, the rest lazily; it must not read sockets or wire bytes.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import attrs

from tsproxy.rules.ipcheck import Address, parse_ip

# RFC 3986 reserved characters that Traefik keeps percent-encoded in the routing path, so
# that e.g. PathPrefix(`/foo/bar`) does not match /foo%2Fbar.
RESERVED_ESCAPES = frozenset(
    "%" + c for c in "3A 2F 3F 23 5B 5D 40 21 24 26 27 28 29 2A 2B 2C 3B 3D 25".split()
)
# Go's url.validEncoded for paths: anything else means EscapedPath() re-encodes the path.
_PATH_NEEDS_WORK = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/\[\]]")
_INVALID_ENCODED = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/\[\]%]")
# Bytes Go's escape(path, encodePath) leaves alone.
_PATH_SAFE = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~$&+,/:;=@"
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")
_TRIM = " \t\r\n"


def split_host_port(hostport: str) -> Optional[Tuple[str, str]]:
    """Go's net.SplitHostPort: (host, port), or None where Go returns an error."""
    i = hostport.rfind(":")
    if i < 0:
        return None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or end + 1 != i:
            return None
        host, rest_start, close_start = hostport[1:end], 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            return None
        rest_start, close_start = 0, 0
    if "[" in hostport[rest_start:] or "]" in hostport[close_start:]:
        return None
    return host, hostport[i + 1 :]


def canonical_host(value: str) -> str:
    """Traefik's request-decorator host: port and IPv6 brackets removed, trimmed, lower-cased."""
    if ":" in value:
        parts = split_host_port(value)
        if parts is not None:
            value = parts[0]
        elif len(value) > 2 and value[0] == "[" and value[-1] == "]":
            value = value[1:-1]
    return value.strip(_TRIM).lower()


def _utf8(text: str) -> bytes:
    """UTF-8 bytes of text, surrogate escapes back to their bytes; never raises."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # A lone surrogate that is not an escaped byte: keep it rather than fail the request.
        return text.encode("utf-8", "surrogatepass")


def _unhex(text: str, i: int) -> int:
    """The byte encoded by text[i:i+3] (``%XX``), or -1 if that is not a valid escape."""
    if i + 2 < len(text) and text[i + 1] in _HEXDIGITS and text[i + 2] in _HEXDIGITS:
        return int(text[i + 1 : i + 3], 16)
    return -1


def _escaped_path(raw: str) -> str:
    """Go's URL.EscapedPath() for a request path received as ``raw``."""
    if not _INVALID_ENCODED.search(raw):
        return raw
    # Go rebuilds the path from its decoded form, losing the original escapes.
    decoded = bytearray()
    i = 0
    data = _utf8(raw)
    while i < len(data):
        byte = data[i]
        if byte == 0x25:
            value = _unhex(data[i : i + 3].decode("latin-1"), 0)
            if value >= 0:
                decoded.append(value)
                i += 3
                continue
        decoded.append(byte)
        i += 1
    return "".join(chr(b) if b in _PATH_SAFE else "%%%02X" % b for b in decoded)


def routing_path(raw_path: str) -> str:
    """The path Traefik's Path/PathPrefix/PathRegexp see (v3.4.1+ and v2.11.25+).

    Percent-escapes of reserved characters stay encoded (hex upper-cased, as Traefik's
    normalizePath does first); all other escapes are decoded, bytes read as UTF-8 with
    undecodable bytes kept as surrogate escapes. An invalid escape is kept literally (Go
    answers 400 before routing such a request).
    """
    if not _PATH_NEEDS_WORK.search(raw_path):
        return raw_path
    escaped = _escaped_path(raw_path)
    if "%" not in escaped:
        return escaped
    return _percent_decode(escaped, keep=RESERVED_ESCAPES) or ""


def query_unescape(text: str) -> Optional[str]:
    """Go's url.QueryUnescape: '+' is a space; None for an invalid escape."""
    if "%" not in text:
        return text.replace("+", " ")
    return _percent_decode(text, plus_is_space=True, strict=True)


def _percent_decode(
    text: str, keep: frozenset = frozenset(), plus_is_space: bool = False, strict: bool = False
) -> Optional[str]:
    """Decode %XX escapes (bytes read as UTF-8, surrogate-escaped when not).

    Escapes in ``keep`` stay encoded, hex upper-cased; an invalid escape makes the result
    None when ``strict``, else stays as it is.
    """
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%":
            value = _unhex(text, i)
            if value >= 0:
                code = text[i : i + 3].upper()
                if code in keep:
                    out += code.encode("ascii")
                else:
                    out.append(value)
                i += 3
                continue
            if strict:
                return None
        out += b" " if ch == "+" and plus_is_space else _utf8(ch)
        i += 1
    return out.decode("utf-8", "surrogateescape")


def parse_query(raw_query: str) -> Dict[str, Tuple[str, ...]]:
    """Go's url.ParseQuery after Traefik's AllowQuerySemicolons (';' separates like '&').

    Pairs whose key or value has an invalid escape are skipped, as Go skips them.
    """
    values: Dict[str, List[str]] = {}
    for part in raw_query.replace(";", "&").split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        key_text = query_unescape(key)
        value_text = query_unescape(value)
        if key_text is None or value_text is None:
            continue
        values.setdefault(key_text, []).append(value_text)
    return {key: tuple(found) for key, found in values.items()}


def _is_token(text: str) -> bool:
    return bool(text) and not _NON_TOKEN.search(text)


_NON_TOKEN = re.compile(r"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
_BAD_COOKIE_VALUE = re.compile(r'[^\x20-\x7e]|[";\\]')


def parse_cookies(lines: Sequence[str]) -> Dict[str, str]:
    """Cookies from Cookie header lines as Go's net/http readCookies reads them.

    Malformed pairs are skipped; when a name repeats, the first value wins (Request.Cookie).
    """
    cookies: Dict[str, str] = {}
    for line in lines:
        for part in line.strip(_TRIM).split(";"):
            part = part.strip(_TRIM)
            if not part:
                continue
            name, _, value = part.partition("=")
            name = name.strip(_TRIM)
            if not _is_token(name) or name in cookies:
                continue
            if len(value) > 1 and value[0] == '"' and value[-1] == '"':
                value = value[1:-1]
            if _BAD_COOKIE_VALUE.search(value):
                continue
            cookies[name] = value
    return cookies


class HTTPRequestInfo:
    """The routing view of one HTTP request; build it with from_request.

    ``host`` is canonical (lower-cased, no port or brackets, trailing dots removed; "" when
    the request has none) and ``path`` is the routing path. ``headers``, ``query``,
    ``cookies`` are computed on first access: most requests are routed on host and path.
    """

    __slots__ = (
        "method",
        "target",
        "host",
        "path",
        "raw_query",
        "client_ip",
        "traefik_host",
        "authority",
        "_header_lines",
        "_headers",
        "_query",
        "_cookies",
        "_client_address",
    )

    def __init__(
        self,
        method: str,
        target: str,
        host: str,
        path: str,
        raw_query: str,
        client_ip: str,
        header_lines: Sequence[Tuple[str, str]] = (),
        traefik_host: Optional[str] = None,
        authority: Optional[str] = None,
    ) -> None:
        self.method = method
        self.target = target
        self.host = host
        self.path = path
        self.raw_query = raw_query
        self.client_ip = client_ip
        # Traefik's canonical host keeps a trailing dot; Host and HostRegexp need that form.
        self.traefik_host = host if traefik_host is None else traefik_host
        # The host as received (port included): what v2 HostRegexp templates look at.
        self.authority = self.traefik_host if authority is None else authority
        self._header_lines = header_lines
        self._headers: Optional[Dict[str, Tuple[str, ...]]] = None
        self._query: Optional[Dict[str, Tuple[str, ...]]] = None
        self._cookies: Optional[Dict[str, str]] = None
        self._client_address: Optional[Tuple[Optional[Address]]] = None

    @classmethod
    def from_request(
        cls,
        method: str,
        target: str,
        headers: Sequence[Tuple[str, str]],
        client_ip: str,
        host: Optional[str] = None,
    ) -> HTTPRequestInfo:
        """Build the view from the request line, the header lines and the peer's IP.

        ``target`` is the request-target as sent (non-ASCII bytes decoded as UTF-8 with
        surrogateescape). An absolute-form target's authority wins over the Host header;
        ``host`` is that header's value when the caller has it already ("" for none): the
        header lines are then not read (they may decode lazily, when a rule asks).
        """
        authority = ""
        raw_path = ""
        raw_query = ""
        if target.startswith("/"):
            raw_path, _, raw_query = target.partition("?")
        elif method == "CONNECT":
            authority = target
        else:
            scheme = _SCHEME.match(target)
            if scheme is None:
                raw_path, _, raw_query = target.partition("?")
            else:
                rest, _, raw_query = target[scheme.end() :].partition("?")
                slash = rest.find("/")
                if slash >= 0:
                    authority, raw_path = rest[:slash], rest[slash:]
                else:
                    authority = rest
                authority = authority[authority.rfind("@") + 1 :]
        if not authority and host is not None:
            authority = host
        elif not authority:
            for name, value in headers:
                if len(name) == 4 and name.lower() == "host":
                    authority = value
                    break
        traefik_host = canonical_host(authority) if authority else ""
        host = traefik_host.rstrip(".") if traefik_host.endswith(".") else traefik_host
        return cls(
            method,
            target,
            host,
            routing_path(raw_path),
            raw_query,
            client_ip,
            headers,
            traefik_host,
            authority,
        )

    @property
    def headers(self) -> Mapping[str, Tuple[str, ...]]:
        """Lower-cased header name -> values, one per header line, in arrival order."""
        found = self._headers
        if found is None:
            collected: Dict[str, List[str]] = {}
            for name, value in self._header_lines:
                collected.setdefault(name.lower(), []).append(value)
            found = self._headers = {name: tuple(values) for name, values in collected.items()}
        return found

    @property
    def query(self) -> Mapping[str, Tuple[str, ...]]:
        """Form-decoded query values by name, ';' separating pairs as '&' does."""
        found = self._query
        if found is None:
            found = self._query = parse_query(self.raw_query)
        return found

    @property
    def cookies(self) -> Mapping[str, str]:
        """Cookie name -> value from every Cookie header line; the first occurrence wins."""
        found = self._cookies
        if found is None:
            found = self._cookies = parse_cookies(self.headers.get("cookie", ()))
        return found

    @property
    def client_address(self) -> Optional[Address]:
        """The parsed client IP, or None when client_ip is not an IP address."""
        found = self._client_address
        if found is None:
            found = self._client_address = (parse_ip(self.client_ip),)
        return found[0]

    def __repr__(self) -> str:
        return "HTTPRequestInfo(method=%r, host=%r, path=%r, raw_query=%r, client_ip=%r)" % (
            self.method,
            self.host,
            self.path,
            self.raw_query,
            self.client_ip,
        )


def canonical_domain(name: str) -> str:
    """Traefik's types.CanonicalDomain: trimmed and lower-cased."""
    return name.strip(_TRIM).lower()


@attrs.frozen
class TCPConnectionInfo:
    """The routing view of one TCP connection: TLS SNI, offered ALPN protocols, client IP.

    The SNI is canonicalised (trimmed, lower-cased) as Traefik's NewConnData does, so
    HostSNIRegexp sees the same string it would in Traefik.
    """

    sni: str = attrs.field(default="", converter=canonical_domain)
    alpn: Tuple[str, ...] = attrs.field(default=(), converter=tuple)
    client_ip: str = ""
    client_address: Optional[Address] = attrs.field(init=False, eq=False, repr=False)

    @client_address.default
    def _parse_client_ip(self) -> Optional[Address]:
        return parse_ip(self.client_ip)
