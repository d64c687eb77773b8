"""HTTP/2 streams as the exchange's request and response heads: pure conversions, no I/O.

The HTTP/2 entrypoint (tsproxy.http.h2server) hands each stream to the HTTP/1.1 exchange
machinery as the RequestHead this module builds from the stream's header list (refused
wherever the HTTP/1.1 parser would refuse the same request), and turns the response head
the exchange sends back into HTTP/2 response headers. The h2 library validates header
names too (lower case, no connection-specific fields, no CR/LF/NUL).
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import attrs
from hpack.hpack import encode_integer
from hpack.table import HeaderTable

from tsproxy.http.headers import _RESPONSE_OWN, FRAMING, HOP_BY_HOP
from tsproxy.http.wire import (
    _BAD_VALUE,
    _PATH_WORK,
    _TARGET_BAD,
    _TOKEN,
    DEFAULT_POLICY,
    Headers,
    HTTPError,
    RequestHead,
    RequestPolicy,
    ResponseHead,
    valid_host,
)
from tsproxy.http.wire import _content_length as content_length
from tsproxy.http.wire import _split_target as split_target

#: The client connection preface (RFC 9113 §3.4) that starts h2c with prior knowledge.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

#: Response fields HTTP/2 forbids (RFC 9113 §8.2.2): HTTP/1.1 connection management.
CONNECTION_SPECIFIC = frozenset(
    [b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"]
)


class StreamRequestError(Exception):
    """A stream's request cannot be expressed: answer it with ``status``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@attrs.frozen
class StreamRequest:
    """What an HTTP/2 request stream becomes: the request head its exchange serves, and how
    its body is framed."""

    head: RequestHead
    #: The body is passed on chunked (no content-length, and more than the headers will come).
    chunked: bool
    #: The client asked for trailers (``te: trailers``: gRPC clients do).
    wants_trailers: bool


#: Go's canonical form of the field names stream_request checked (they repeat).
_CANONICAL: Dict[bytes, bytes] = {}


def canonical_name(name: bytes) -> bytes:
    """Go's CanonicalMIMEHeaderKey: what Traefik's backends see for an HTTP/2 field name."""
    return b"-".join(part[:1].upper() + part[1:].lower() for part in name.split(b"-"))


def stream_request(
    headers: Sequence[Tuple[bytes, bytes]],
    end_stream: bool,
    policy: RequestPolicy = DEFAULT_POLICY,
) -> StreamRequest:
    """The request head for an HTTP/2 request's decoded header list, built directly.

    It is refused (StreamRequestError with the status) wherever the HTTP/1.1 parser
    (tsproxy.http.wire.parse_request_head) would refuse the same request written as text:
    the method, target, field names and values, Host, Content-Length and Expect are checked
    by the same rules, and the path is cleaned the same way. The exchange is told
    ``Connection: close`` (keep_alive false), so it ends when its response does; a request
    body without content-length is framed chunked.
    """
    method = path = authority = b""
    scheme = b""
    fields: Headers = []
    lengths: List[bytes] = []
    expects: List[bytes] = []
    wants_trailers = False
    values = []
    canonical = _CANONICAL
    for name, value in headers:
        values.append(value)
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
        # A name seen before was checked then (the cache holds checked names only).
        cname = canonical.get(name)
        if cname is None:
            if _TOKEN.match(name) is None:
                raise StreamRequestError(400, "invalid character in a header field")
            cname = canonical_name(name)
            if len(canonical) < 1024:
                canonical[name] = cname
        if name == b"host":
            if not authority:
                authority = value
            continue
        if name == b"content-length":
            lengths.append(value)
        elif name == b"expect":
            expects.append(value.lower())
        elif name == b"te":
            wants_trailers = value.lower() == b"trailers"
            continue
        elif name in CONNECTION_SPECIFIC:
            raise StreamRequestError(400, "connection-specific header field %r" % (name,))
        # Surrounding blanks are not part of a value (as the HTTP/1.1 parser strips them).
        fields.append((cname, value.strip(b" \t")))
    # One pass over every value: no byte the HTTP/1.1 parser refuses in a field value.
    if _BAD_VALUE.search(b"".join(values)) is not None:
        raise StreamRequestError(400, "invalid character in a header field")
    if method == b"CONNECT":
        raise StreamRequestError(405, "CONNECT is not supported over HTTP/2")
    if not method or not path or not scheme:
        raise StreamRequestError(400, "missing pseudo-header")
    if _TOKEN.match(method) is None:
        raise StreamRequestError(400, "invalid method")
    if _TARGET_BAD.search(path) is not None:
        raise StreamRequestError(400, "invalid request target")
    if not authority:
        raise StreamRequestError(400, "missing :authority")
    if not valid_host(authority):
        raise StreamRequestError(400, "malformed :authority")
    fields.insert(0, (b"Host", authority))
    if len(fields) > policy.max_headers:
        raise StreamRequestError(431, "too many header fields")
    req = RequestHead(method, path, b"HTTP/1.1", fields, keep_alive=False, host=authority)
    try:
        if path[0] == 47 and _PATH_WORK.search(path) is None:
            req.path = path  # origin form, already clean: the common case
        else:
            split_target(req, policy)
        length = content_length({b"content-length": lengths}, 400) if lengths else None
    except HTTPError as e:
        raise StreamRequestError(e.status, e.reason) from None
    chunked = False
    if length:
        req.framing = "length"
        req.content_length = length
    elif not end_stream and length is None:
        req.framing = "chunked"
        chunked = True
    if expects:
        if expects != [b"100-continue"]:
            raise StreamRequestError(417, "Expectation Failed")
        req.expect_continue = True
    return StreamRequest(req, chunked, wants_trailers)


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


# -- RFC 9113 §8.2-8.3: the checks of the h2 library's validate_headers, in one pass ---------

#: A field name: no CTL, SP, DEL, non-ASCII, upper case, or colon but a pseudo-header's first.
_H2_NAME = re.compile(rb"^:?[\x21-\x39\x3b-\x40\x5b-\x7e]+$")
_H2_BAD_VALUE = re.compile(rb"[\x00\r\n]")
_PSEUDO = frozenset([b":method", b":scheme", b":authority", b":path", b":status", b":protocol"])


#: Fields (name, value) whose name and value request_header_error found good: they repeat
#: from stream to stream (where a field is, and how often, is checked each time).
_GOOD_FIELDS: set = set()


def _field_error(name: bytes, value: bytes) -> Optional[str]:
    """Why one field's name or value is malformed (RFC 9113 §8.2.1), or None."""
    if _H2_NAME.match(name) is None:
        return "invalid header name %r" % (name,)
    if value:
        if _H2_BAD_VALUE.search(value) is not None:
            return "invalid character in the value of %r" % (name,)
        if value[:1] in b" \t" or value[-1:] in b" \t":
            return "header value of %r surrounded by whitespace" % (name,)
    return None


def request_header_error(headers: Sequence[Tuple[bytes, bytes]], trailer: bool) -> Optional[str]:
    """Why a received request header block (or trailer block) is malformed, or None.

    The same checks as the h2 library's inbound validation (h2.utilities.validate_headers
    for a server), done in one pass: field names and values (RFC 9113 §8.2.1), no
    connection-specific fields or TE other than "trailers" (§8.2.2), pseudo-headers known,
    once, first, and those a request needs (§8.3.1; none in trailers), :authority or Host
    and equal if both, no empty :path.
    """
    pseudo = set()
    regular = False
    method = authority = host = None
    good = _GOOD_FIELDS
    for field in headers:
        name, value = field
        if field not in good:
            why = _field_error(name, value)
            if why is None and name in CONNECTION_SPECIFIC:
                why = "connection-specific header field %r" % (name,)
            if why is None and name == b"te" and value.lower() != b"trailers":
                why = "TE other than trailers"
            if why is not None:
                return why
            if len(good) >= 4096:
                good.clear()
            good.add(field)
        if name[:1] == b":":
            if name in pseudo or regular or name not in _PSEUDO:
                return "misplaced, repeated or unknown pseudo-header %r" % (name,)
            pseudo.add(name)
            if name == b":method":
                method = value
            elif name == b":authority":
                authority = value
            elif name == b":path" and not value and not trailer:
                return "empty :path"
            continue
        regular = True
        if name == b"host" and not trailer:
            if host is not None:
                return "several Host fields"
            host = value
    if trailer:
        return "pseudo-header in trailers" if pseudo else None
    if b":method" not in pseudo or b":status" in pseudo:
        return "request pseudo-headers missing or wrong"
    if method == b"CONNECT":
        if b":protocol" in pseudo:
            if b":scheme" not in pseudo or b":path" not in pseudo:
                return "extended CONNECT without :scheme or :path"
        elif b":scheme" in pseudo or b":path" in pseudo:
            return "CONNECT with :scheme or :path"
    elif b":scheme" not in pseudo or b":path" not in pseudo or b":protocol" in pseudo:
        return "request pseudo-headers missing or wrong"
    if authority is None and host is None:
        return "neither :authority nor Host"
    if authority is not None and host is not None and authority != host:
        return ":authority and Host differ"
    return None


def exchange_response_headers(
    head: ResponseHead, framing_out: str, extra: Sequence[Tuple[bytes, bytes]] = ()
) -> List[Tuple[bytes, bytes]]:
    """The HTTP/2 header list for a backend's final response, as the exchange would send
    it to an HTTP/1.1 client (tsproxy.http.headers.client_response_head: hop-by-hop fields
    and those its Connection names dropped, ``extra`` added, the Content-Length the proxy
    frames with) without the connection management HTTP/2 forbids."""
    out = [(b":status", b"%d" % head.status)]
    drop = HOP_BY_HOP if framing_out == "none" else _RESPONSE_OWN
    if head.connection_tokens:
        named = [t for t in head.connection_tokens if t not in drop and t not in FRAMING]
        if named:
            drop = drop | frozenset(named)
    for name, value in head.headers:
        lname = name.lower()
        if lname not in drop:
            out.append((lname, value))
    for name, value in extra:
        out.append((name.lower(), value))
    if framing_out == "length":
        out.append((b"content-length", b"%d" % head.content_length))
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


# -- HPACK without the dynamic table -----------------------------------------------------------

#: The static table (RFC 7541 Appendix A): full fields, and the first index of each name.
_STATIC_FIELDS: Dict[Tuple[bytes, bytes], int] = {}
_STATIC_NAMES: Dict[bytes, int] = {}
for _index, (_name, _value) in enumerate(HeaderTable.STATIC_TABLE, 1):
    _STATIC_FIELDS.setdefault((_name, _value), _index)
    _STATIC_NAMES.setdefault(_name, _index)
#: Encoded fields by (name, value): with no dynamic table, a field's encoding never changes.
_FIELD_CACHE: Dict[Tuple[bytes, bytes], bytes] = {}
_FIELD_CACHE_SIZE = 4096


def hpack_field(name: bytes, value: bytes) -> bytes:
    """One header field in HPACK without touching the dynamic table: the static table's
    index for a field it holds, else a literal never added to the table (RFC 7541 §6.2.2)
    naming the static table's entry when it has the name; strings are not Huffman-coded."""
    field = (name, value)
    index = _STATIC_FIELDS.get(field)
    if index is not None:
        out = encode_integer(index, 7)
        out[0] |= 0x80
        return bytes(out)
    index = _STATIC_NAMES.get(name, 0)
    out = encode_integer(index, 4)
    if not index:
        out += encode_integer(len(name), 7) + name
    out += encode_integer(len(value), 7)
    return bytes(out) + value


def hpack_block(headers: Sequence[Tuple[bytes, bytes]]) -> bytes:
    """A header block of `hpack_field` encodings (cached: they repeat from stream to stream)."""
    cache = _FIELD_CACHE
    parts = []
    for field in headers:
        encoded = cache.get(field)  # type: ignore[call-overload]
        if encoded is None:
            encoded = hpack_field(field[0], field[1])
            if len(cache) >= _FIELD_CACHE_SIZE:
                cache.clear()
            cache[field] = encoded  # type: ignore[index]
        parts.append(encoded)
    return b"".join(parts)
