"""HTTP/1.1 wire format: request and response heads, and body framing decoders.

Pure byte-level code with no I/O and no Twisted: the protocols in this package feed it bytes.
It is strict where laxness lets a proxy be smuggled through (RFC 9112 §6.3, §11.2).
"""

from __future__ import annotations

import re
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple, TypeVar, Union

# The parsed values live in messages, the body decoders in bodies; importers take them from
# here too.
from tsproxy.http.bodies import LAST_CHUNK as LAST_CHUNK
from tsproxy.http.bodies import BodyDecoder as BodyDecoder
from tsproxy.http.bodies import ChunkedDecoder as ChunkedDecoder
from tsproxy.http.bodies import CloseDecoder as CloseDecoder
from tsproxy.http.bodies import LengthDecoder as LengthDecoder
from tsproxy.http.bodies import encode_chunk as encode_chunk
from tsproxy.http.messages import DEFAULT_POLICY as DEFAULT_POLICY
from tsproxy.http.messages import MAX_HEADERS as MAX_HEADERS
from tsproxy.http.messages import Headers as Headers
from tsproxy.http.messages import HTTPError as HTTPError
from tsproxy.http.messages import RequestHead as RequestHead
from tsproxy.http.messages import RequestPolicy as RequestPolicy
from tsproxy.http.messages import ResponseHead as ResponseHead

#: Go's default http.Server.MaxHeaderBytes, which Traefik keeps (1 MiB).
MAX_HEAD_BYTES = 1 << 20
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Field values: visible ASCII, obs-text, space and tab; never CR, LF or NUL (RFC 9110 §5.5).
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# A request target is visible ASCII; a fragment is never sent (Traefik's denyFragment).
_TARGET_BAD = re.compile(rb"[\x00-\x20\x7f-\xff#]")
_ABSOLUTE = re.compile(rb"^[A-Za-z][A-Za-z0-9+.\-]*://")
# Go's httpguts.validHostByte, without the comma: a Host naming a list is refused.
_HOST_BYTES = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!$%&'()*+;=-.:[]_~"
# An origin-form target that needs no cleaning: no escape, no dot segment, no empty segment.
_PATH_WORK = re.compile(rb"%|/\.|//")
_AUTHORITY_FORM = re.compile(rb"^(?:\[[0-9A-Fa-f:.]+\]|[0-9A-Za-z!$%&'()*+;=\-._~]+):[0-9]+$")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_DIGITS = re.compile(rb"^[0-9]+$")
_HEX = re.compile(rb"^[0-9A-Fa-f]+$")
_STATUS_LINE = re.compile(rb"^HTTP/1\.([01]) ([0-9]{3})(?: (.*))?$")


def find_head_end(buf: bytes, start: int = 0) -> Tuple[int, int]:
    """Return (end of head, start of body) in `buf`, or (-1, -1) if the head is incomplete.

    A bare LF line ending is tolerated, as RFC 9112 §2.2 allows recipients to.
    """
    crlf = buf.find(b"\r\n\r\n", start)
    lf = buf.find(b"\n\n", start)
    if crlf < 0 and lf < 0:
        # A head that started with a CRLF CRLF mix, such as "\n\r\n".
        mixed = buf.find(b"\n\r\n", start)
        if mixed < 0:
            return -1, -1
        return mixed, mixed + 3
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, crlf + 4
    return lf, lf + 2


def _split_lines(head: bytes) -> List[bytes]:
    lines = head.split(b"\n")
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _parse_fields_slowly(lines: Sequence[bytes], error_status: int) -> Headers:
    """Line by line, to say what is wrong with a header section the fast path refused."""
    headers: Headers = []
    for line in lines:
        if not line:
            continue
        if line[0] in b" \t":
            # obs-fold is deprecated and a smuggling vector (RFC 9112 §5.2).
            raise HTTPError(error_status, "obsolete line folding in header")
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            raise HTTPError(error_status, "malformed header line")
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value):
            raise HTTPError(error_status, "invalid character in header value")
        headers.append((name, value))
    return headers


# One pass over a whole header section: token names, visible/obs-text values, CRLF or LF.
_FIELDS_OK = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r?\n)*")
#: Headers that decide framing and connection handling, gathered in the same pass.
_SPECIAL = frozenset(
    [b"connection", b"transfer-encoding", b"content-length", b"host", b"upgrade", b"expect"]
)


def _parse_fields(block: bytes, error_status: int) -> Tuple[Headers, dict]:
    """The header section after the start line: (headers, {special name: [values]})."""
    if not block:
        return [], {}
    block += b"\n"
    if _FIELDS_OK.fullmatch(block) is None:
        _parse_fields_slowly(_split_lines(block), error_status)
        raise HTTPError(error_status, "malformed header section")
    # Every line is "token:value\r?\n" now: cut at the first colon, trim the value (a split
    # is several times faster than a findall with a lazy value group).
    headers: Headers = []
    special: dict = {}
    for line in block.split(b"\n"):
        if line:
            name, _, value = line.partition(b":")
            value = value.rstrip(b"\r").strip(b" \t")
            headers.append((name, value))
            lname = name.lower()
            if lname in _SPECIAL:
                if lname in special:
                    special[lname].append(value)
                else:
                    special[lname] = [value]
    return headers, special


def _comma_tokens(special: dict, lname: bytes) -> List[bytes]:
    out: List[bytes] = []
    if lname not in special:
        return out
    for value in special[lname]:
        out.extend(t.strip().lower() for t in value.split(b",") if t.strip())
    return out


def _content_length(special: dict, error_status: int) -> Optional[int]:
    lines = special.get(b"content-length")
    if lines is None:
        return None
    if len(lines) == 1 and b"," not in lines[0]:
        value = lines[0].strip()
        if value.isdigit() and len(value) <= 18:
            return int(value)  # the common case; anything else is judged below
    values = [v.strip() for value in lines for v in value.split(b",")]
    if not values:
        return None
    if any(not _DIGITS.match(v) for v in values) or len(set(values)) != 1:
        raise HTTPError(error_status, "invalid Content-Length")
    if len(values[0]) > 18:
        raise HTTPError(error_status, "Content-Length too large")
    return int(values[0])


def _start_line(head: bytes) -> Tuple[bytes, bytes]:
    """(start line, header section) of a head, skipping empty lines before it."""
    while head.startswith(b"\r\n") or head.startswith(b"\n"):
        head = head[2:] if head.startswith(b"\r\n") else head[1:]
    line, sep, block = head.partition(b"\n")
    if line.endswith(b"\r"):
        line = line[:-1]
    return line, block


def _normalize_escapes(path: bytes) -> bytes:
    """Traefik's normalizePath: %XX of unreserved characters decoded, others upper-cased."""
    out: List[bytes] = []
    pos = 0
    while True:
        pct = path.find(b"%", pos)
        if pct < 0:
            out.append(path[pos:])
            return b"".join(out)
        pair = path[pct + 1 : pct + 3]
        if len(pair) != 2 or not _HEX.match(pair):
            raise HTTPError(400, "invalid percent-encoding in path")
        out.append(path[pos:pct])
        byte = int(pair, 16)
        out.append(bytes((byte,)) if byte in _UNRESERVED else b"%" + pair.upper())
        pos = pct + 3


def clean_path(path: bytes) -> bytes:
    """Go's url.JoinPath() as Traefik's sanitizePath uses it: dot segments resolved,
    repeated slashes merged, a trailing slash kept, never above the root."""
    segments: List[bytes] = []
    for segment in path.split(b"/"):
        if segment == b"..":
            if segments:
                segments.pop()
        elif segment and segment != b".":
            segments.append(segment)
    cleaned = b"/" + b"/".join(segments)
    if path.endswith(b"/") and not cleaned.endswith(b"/"):
        cleaned += b"/"
    return cleaned


def forwarded_path(path: bytes, policy: RequestPolicy) -> bytes:
    """The path (without query) to route on and forward; HTTPError(400) if refused."""
    if b"%" in path:
        path = _normalize_escapes(path)
        denied = policy.denied_escapes
        if denied:
            pos = path.find(b"%")
            while pos >= 0:
                if path[pos + 1 : pos + 3] in denied:
                    raise HTTPError(400, "encoded character refused in path")
                pos = path.find(b"%", pos + 3)
    if policy.sanitize_path and (b"//" in path or b"/." in path):
        path = clean_path(path)
    return path


def valid_host(host: bytes) -> bool:
    """A Host value Go would accept (any byte of a host, IP literal or port), no list."""
    return not host.translate(None, _HOST_BYTES)


def _split_target(req: RequestHead, policy: RequestPolicy) -> None:
    """Check the request-target's form (RFC 9112 §3.2) and fill req.path (and req.host
    for absolute form)."""
    target = req.target
    if target[0] == 47:  # "/": origin form
        path, q, query = target.partition(b"?")
        path = forwarded_path(path, policy)
        req.path = path + q + query
        return
    if req.method == b"CONNECT":
        if _AUTHORITY_FORM.match(target) is None:
            raise HTTPError(400, "invalid CONNECT target")
        req.path = target
        req.host = target
        req.host_in_target = True
        return
    if target == b"*":  # asterisk form (Go takes it with any method)
        req.path = target
        return
    scheme = _ABSOLUTE.match(target)
    if scheme is None:
        raise HTTPError(400, "invalid request target")
    rest, q, query = target[scheme.end() :].partition(b"?")
    slash = rest.find(b"/")
    authority, path = (rest[:slash], rest[slash:]) if slash >= 0 else (rest, b"/")
    authority = authority[authority.rfind(b"@") + 1 :]
    if not valid_host(authority):
        raise HTTPError(400, "invalid authority in request target")
    if authority:
        req.host = authority
        req.host_in_target = True
    req.path = forwarded_path(path, policy) + q + query


#: Header sections up to this many bytes are remembered with what was read from them ...
CACHED_SECTION_BYTES = 2048
#: ... this many of each kind (requests, responses); when full, the memory starts over.
CACHED_SECTIONS = 256
#: ... and of at most MAX_HEADERS lines: a 2 KiB section of 400 short lines ("ab:") parses
#: to some 40 KiB of tuples, which 256 refused requests would pin (10 MiB instead of 2.5).
_REQUEST_SECTIONS: dict = {}
_RESPONSE_SECTIONS: dict = {}


def _length_or_reason(special: dict, error_status: int) -> Union[int, str, None]:
    """The Content-Length (or None), or why it is refused (a str), raised where it is used."""
    try:
        return _content_length(special, error_status)
    except HTTPError as e:
        return e.reason


class _RequestSection(NamedTuple):
    """What parse_request_head reads from a header section."""

    headers: Tuple[Tuple[bytes, bytes], ...]
    connection: Tuple[bytes, ...]
    hosts: Tuple[bytes, ...]
    transfer_encoding: Tuple[bytes, ...]
    #: The Content-Length (None: none sent), or why it is refused.
    length: Union[int, str, None]
    upgrade: Tuple[bytes, ...]
    expect: Tuple[bytes, ...]


class _ResponseSection(NamedTuple):
    """What parse_response_head reads from a header section."""

    headers: Tuple[Tuple[bytes, bytes], ...]
    connection: Tuple[bytes, ...]
    transfer_encoding: Tuple[bytes, ...]
    length: Union[int, str, None]


_Section = TypeVar("_Section", _RequestSection, _ResponseSection)


def _remembered(cache: dict, block: bytes, read: Callable[[bytes], _Section]) -> _Section:
    """``read(block)``, remembered by the section's bytes: what a pure function of them gives.

    A client sends the same header section request after request, and a server answers with
    the same one until its Date changes, so most reads are found here. A section whose lines
    are refused raises every time and is never kept; what the parsers judge from a kept
    section (Host, Content-Length, Transfer-Encoding, Expect, the header count) they judge
    again for every head. What is kept is immutable; the parsers copy the header list.
    Bounded: sections up to CACHED_SECTION_BYTES and MAX_HEADERS lines, CACHED_SECTIONS of
    them.
    """
    entry = cache.get(block)
    if entry is None:
        entry = read(block)
        if len(block) <= CACHED_SECTION_BYTES and len(entry.headers) <= MAX_HEADERS:
            if len(cache) >= CACHED_SECTIONS:
                cache.clear()
            cache[block] = entry
    return entry


def _request_section(block: bytes) -> _RequestSection:
    headers, special = _parse_fields(block, 400)
    return _RequestSection(
        tuple(headers),
        tuple(_comma_tokens(special, b"connection")),
        tuple(special.get(b"host", ())),
        tuple(_comma_tokens(special, b"transfer-encoding")),
        _length_or_reason(special, 400),
        tuple(special.get(b"upgrade", ())),
        tuple(v.lower() for v in special.get(b"expect", ())),
    )


def _response_section(block: bytes) -> _ResponseSection:
    headers, special = _parse_fields(block, 502)
    return _ResponseSection(
        tuple(headers),
        tuple(_comma_tokens(special, b"connection")),
        tuple(_comma_tokens(special, b"transfer-encoding")),
        _length_or_reason(special, 502),
    )


def parse_request_head(head: bytes, policy: RequestPolicy = DEFAULT_POLICY) -> RequestHead:
    """Parse a request head (without its final blank line); raise HTTPError on bad input."""
    # RFC 9112 §2.2: ignore at least one empty line before the request line.
    line, block = _start_line(head)
    if not line:
        raise HTTPError(400, "empty request")
    parts = line.split(b" ")
    if len(parts) != 3:
        raise HTTPError(400, "malformed request line")
    method, target, version = parts
    if not _TOKEN.match(method):
        raise HTTPError(400, "invalid method")
    if not target or _TARGET_BAD.search(target):
        raise HTTPError(400, "invalid request target")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        if version.startswith(b"HTTP/") and re.match(rb"^HTTP/[0-9]\.[0-9]$", version):
            raise HTTPError(505, "HTTP version not supported")
        raise HTTPError(400, "malformed HTTP version")
    section = _remembered(_REQUEST_SECTIONS, block, _request_section)
    headers, tokens, hosts, te, length, ups, expects = section
    if len(headers) > policy.max_headers:
        raise HTTPError(431, "too many header lines")
    req = RequestHead(method, target, version, list(headers))
    req.connection_tokens = tokens
    if version == b"HTTP/1.1":
        req.keep_alive = b"close" not in tokens
    else:
        req.keep_alive = b"keep-alive" in tokens and b"close" not in tokens
    if len(hosts) > 1:
        raise HTTPError(400, "too many Host headers")
    if version == b"HTTP/1.1" and not hosts:
        raise HTTPError(400, "missing required Host header")
    if hosts:
        host = hosts[0]
        if host.translate(None, _HOST_BYTES):
            raise HTTPError(400, "malformed Host header")
        req.host = host
    if target[0] == 47 and _PATH_WORK.search(target) is None:
        req.path = target  # origin form, already clean: the common case
    else:
        _split_target(req, policy)
    if isinstance(length, str):
        raise HTTPError(400, length)
    if te:
        if te != (b"chunked",):
            raise HTTPError(501, "Unsupported transfer encoding")
        if length is not None:
            # Both framings at once is the classic request smuggling shape: refuse it.
            raise HTTPError(400, "both Transfer-Encoding and Content-Length")
        if version == b"HTTP/1.0":
            raise HTTPError(400, "Transfer-Encoding in an HTTP/1.0 request")
        req.framing = "chunked"
    elif length:
        req.framing = "length"
        req.content_length = length
    if b"upgrade" in tokens:
        if ups and version == b"HTTP/1.1":
            req.upgrade = b", ".join(ups)
    if expects:
        if expects != (b"100-continue",):
            raise HTTPError(417, "Expectation Failed")
        req.expect_continue = version == b"HTTP/1.1"
    return req


def parse_response_head(head: bytes, request_method: bytes) -> ResponseHead:
    """Parse a response head; raise HTTPError(502) when the backend spoke nonsense."""
    line, block = _start_line(head)
    match = _STATUS_LINE.match(line)
    if match is None:
        raise HTTPError(502, "malformed status line")
    minor = int(match.group(1))
    status = int(match.group(2))
    if status < 100:
        raise HTTPError(502, "invalid status code")
    headers, tokens, te, length = _remembered(_RESPONSE_SECTIONS, block, _response_section)
    resp = ResponseHead(minor, status, match.group(3) or b"", list(headers))
    resp.connection_tokens = tokens
    if minor == 1:
        resp.keep_alive = b"close" not in tokens
    else:
        resp.keep_alive = b"keep-alive" in tokens and b"close" not in tokens
    if request_method == b"HEAD" or status < 200 or status in (204, 304):
        resp.framing = "none"
        return resp
    if te:
        # RFC 9112 §6.3: Transfer-Encoding overrides Content-Length; a coding we cannot
        # decode means the body runs to the end of the connection.
        resp.framing = "chunked" if te[-1] == b"chunked" else "close"
        if resp.framing == "close":
            resp.keep_alive = False
        return resp
    if isinstance(length, str):
        raise HTTPError(502, length)
    if length is not None:
        resp.framing = "length" if length else "none"
        resp.content_length = length
        return resp
    resp.framing = "close"
    resp.keep_alive = False
    return resp
