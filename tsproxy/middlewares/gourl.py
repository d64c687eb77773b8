"""Go's net/url path model for the rewriting middlewares: unescape, escape, EscapedPath, and
the plain answers Go's http.Error writes. Pure text functions, no I/O.

Paths are text whose characters stand for the request target's bytes as UTF-8 with
surrogateescape (as the HTTP engine decodes targets); "decoded" means percent-decoded.
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple

from tsproxy.middlewares.base import Answer

__all__ = [
    "cut_raw",
    "escape_path",
    "has_dot_segments",
    "http_error",
    "path_bytes",
    "remove_dot_segments",
    "status_text",
    "unescape",
    "url_parse_error",
    "wire_path",
]

_HEX = frozenset("0123456789abcdefABCDEF")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
# Go's shouldEscape(c, encodePath) leaves these alone too ('?' is escaped).
_PATH_SAFE = _UNRESERVED | frozenset(b"$&+,/:;=@")
# Go's validEncoded: what may stand unescaped in a RawPath Go keeps as it is.
_VALID_IN_RAW = _PATH_SAFE | frozenset(b"!'()*[]%")

_ALL_PATH_SAFE = re.compile(r"[A-Za-z0-9\-_.~$&+,/:;=@]*\Z")
_ALL_VALID_IN_RAW = re.compile(r"[A-Za-z0-9\-_.~$&+,/:;=@!'()*\[\]%]*\Z")

_STATUS_TEXT = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


def path_bytes(text: str) -> bytes:
    """The bytes a path text stands for."""
    return text.encode("utf-8", "surrogateescape")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def unescape(raw: str) -> Tuple[Optional[str], str]:
    """Go's url.PathUnescape: (decoded, "") or (None, Go's error text) for a bad %-escape."""
    if "%" not in raw:
        return raw, ""
    data = path_bytes(raw)
    out = bytearray()
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == 0x25:  # %
            hexits = data[i + 1 : i + 3].decode("latin-1")
            if len(hexits) != 2 or not set(hexits) <= _HEX:
                bad = data[i : i + 3].decode("utf-8", "replace")
                return None, 'invalid URL escape "%s"' % bad
            out.append(int(hexits, 16))
            i += 3
            continue
        out.append(byte)
        i += 1
    return _text(bytes(out)), ""


def escape_path(decoded: str) -> str:
    """Go's escaping of a decoded path (URL.EscapedPath when there is no usable RawPath)."""
    if _ALL_PATH_SAFE.match(decoded):
        return decoded
    return "".join(
        chr(byte) if byte in _PATH_SAFE else "%%%02X" % byte for byte in path_bytes(decoded)
    )


def wire_path(raw: str, decoded: str) -> str:
    """Go's URL.EscapedPath for a URL holding RawPath `raw` and Path `decoded`: the raw form
    when Go accepts it as encoded and it decodes to the path, else the path's default escaping."""
    if _ALL_VALID_IN_RAW.match(raw) and unescape(raw)[0] == decoded:
        return raw
    return escape_path(decoded)


def cut_raw(raw: str, decoded_bytes: int) -> str:
    """What is left of `raw` after the characters standing for `decoded_bytes` bytes of the
    decoded path (a %XX escape counts as one byte)."""
    count = 0
    i = 0
    while i < len(raw) and count < decoded_bytes:
        if raw[i] == "%" and len(raw) >= i + 3 and set(raw[i + 1 : i + 3]) <= _HEX:
            i += 3
            count += 1
            continue
        count += len(path_bytes(raw[i]))
        i += 1
    return raw[i:]


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 on an absolute path ("/a/./b/../c" -> "/a/c")."""
    segments = path.split("/")
    out: List[str] = []
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment in (".", ".."):
            if segment == ".." and len(out) > 1:
                out.pop()
            if index == last:
                out.append("")
            continue
        out.append(segment)
    return "/".join(out)


def has_dot_segments(decoded: str) -> bool:
    """Whether normalising the path (with a leading "/") would change it."""
    if not decoded:
        return False
    path = decoded if decoded.startswith("/") else "/" + decoded
    return remove_dot_segments(path) != path


def status_text(status: int) -> str:
    return _STATUS_TEXT.get(status, "")


def http_error(status: int, message: Optional[str] = None) -> Answer:
    """The answer Go's http.Error(rw, message, status) writes (message: the status text)."""
    text = status_text(status) if message is None else message
    headers = (("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff"))
    return Answer(status, headers, (text + "\n").encode("utf-8"))


_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.")
# Go's shouldEscape(c, encodeHost) leaves these alone (RFC 3986 reg-name, IP literals, zones).
_HOST_SAFE = _UNRESERVED | frozenset(b"!$&'()*+,;=:[]<>\"")


def _escapes_error(text: str, host: bool = False) -> str:
    """Go's unescape checks: every %XX valid; in a host, only %25 or non-ASCII may be escaped
    and no character that needs escaping may appear as it is."""
    data = path_bytes(text)
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == 0x25:
            hexits = data[i + 1 : i + 3].decode("latin-1")
            if len(hexits) != 2 or not set(hexits) <= _HEX:
                return 'invalid URL escape "%s"' % data[i : i + 3].decode("utf-8", "replace")
            if host and int(hexits[0], 16) < 8 and hexits != "25":
                return 'invalid URL escape "%%%s"' % hexits
            i += 3
            continue
        if host and byte < 0x80 and byte not in _HOST_SAFE:
            return 'invalid character "%s" in host name' % chr(byte)
        i += 1
    return ""


def url_parse_error(url: str) -> str:
    """Why Go's url.Parse refuses `url`, or "" when it accepts it (the checks that matter for
    a redirect target: control characters, scheme, authority, port, %-escapes)."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return "net/url: invalid control character in URL"
    rest, _, fragment = url.partition("#")
    error = _escapes_error(fragment)
    if error:
        return error
    scheme = ""
    for index, ch in enumerate(rest):
        if ch == ":":
            if index == 0:
                return "missing protocol scheme"
            scheme, rest = rest[:index], rest[index + 1 :]
            break
        if ch not in _SCHEME_CHARS or (index == 0 and not ch.isalpha()):
            break
    rest = rest.partition("?")[0]
    if (scheme or not rest.startswith("///")) and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        rest = slash + path
        host = authority.rpartition("@")[2]
        if host.startswith("["):
            close = host.find("]")
            if close < 0:
                return "missing ']' in host"
            port = host[close + 1 :]
            if port and (not port.startswith(":") or not port[1:].isdigit() and port != ":"):
                return 'invalid port "%s" after host' % port
        else:
            name, colon, port = host.rpartition(":")
            if colon and port and not (port.isascii() and port.isdigit()):
                return 'invalid port ":%s" after host' % port
            error = _escapes_error(name if colon else host, host=True)
            if error:
                return error
    elif not scheme and ":" in rest.partition("/")[0]:
        return "first path segment in URL cannot contain colon"
    return _escapes_error(rest)
