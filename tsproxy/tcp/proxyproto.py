"""The PROXY protocol header (HAProxy's spec, versions 1 and 2) that a TCP service sends first.

Pure: bytes in, bytes out. The encoders write the header Traefik writes after dialling a
backend whose service has `proxyProtocol.version` 1 (text) or 2 (binary); an IPv4-mapped IPv6
address counts as IPv4, and a source and destination of different families give the UNKNOWN
form. The decoder reads both versions, for tests and for entrypoints that trust the header.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from typing import NamedTuple, Optional, Tuple, Union

Endpoint = Tuple[str, int]
_IP = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107  # the longest v1 line, CRLF included
_V1_PREFIX = b"PROXY "
_V2_FIXED = 16  # signature, ver/cmd, family/protocol, length

_V4_TEXT = re.compile(
    rb"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    rb"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\Z"
)
_V6_TEXT = re.compile(rb"[0-9A-Fa-f:.]{2,45}\Z")
_PORT_TEXT = re.compile(rb"(?:0|[1-9][0-9]{0,4})\Z")

# v2 family/protocol byte -> (name, address block size); family nibble 3 is AF_UNIX.
_V2_FAMILIES = {
    0x11: ("TCP4", 12),
    0x12: ("UDP4", 12),
    0x21: ("TCP6", 36),
    0x22: ("UDP6", 36),
    0x31: ("UNIX_STREAM", 216),
    0x32: ("UNIX_DGRAM", 216),
}


class ProxyHeader(NamedTuple):
    """A decoded header; source and destination are None when it carries no IP addresses."""

    version: int
    command: str  # "PROXY", or "LOCAL" (v2 only): use the connection's own endpoints
    protocol: str  # "TCP4", "TCP6", "UNKNOWN"; v2 also "UDP4", "UDP6", "UNIX_STREAM", ...
    source: Optional[Endpoint]
    destination: Optional[Endpoint]
    tlvs: bytes = b""  # v2: the raw type-length-value bytes after the addresses


def _address(endpoint: Endpoint) -> Tuple[_IP, int]:
    host, port = endpoint
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError("port out of range: %r" % (port,))
    ip = ipaddress.ip_address(host.split("%", 1)[0])  # a zone means nothing to the backend
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip, port


def _pair(source: Endpoint, destination: Endpoint) -> Tuple[int, _IP, int, _IP, int]:
    """(4, 6, or 0 when the families differ), then both addresses and ports."""
    src, sport = _address(source)
    dst, dport = _address(destination)
    family = src.version if src.version == dst.version else 0
    return family, src, sport, dst, dport


def encode_v1(source: Endpoint, destination: Endpoint) -> bytes:
    """The text header, "PROXY TCP4 src dst sport dport\\r\\n" (or TCP6, or UNKNOWN)."""
    family, src, sport, dst, dport = _pair(source, destination)
    if not family:
        return b"PROXY UNKNOWN\r\n"
    line = "PROXY TCP%d %s %s %d %d\r\n" % (family, src, dst, sport, dport)
    return line.encode("ascii")


def encode_v2(source: Endpoint, destination: Endpoint) -> bytes:
    """The binary header, command PROXY over TCP4 or TCP6 (or UNSPEC with no addresses)."""
    family, src, sport, dst, dport = _pair(source, destination)
    if not family:
        return SIGNATURE + b"\x21\x00\x00\x00"
    block = src.packed + dst.packed + struct.pack("!HH", sport, dport)
    return SIGNATURE + struct.pack("!BBH", 0x21, 0x11 if family == 4 else 0x21, len(block)) + block


def encode(version: int, source: Endpoint, destination: Endpoint) -> bytes:
    """The header of `proxyProtocol.version` 1 or 2."""
    if version == 1:
        return encode_v1(source, destination)
    if version == 2:
        return encode_v2(source, destination)
    raise ValueError("unsupported PROXY protocol version: %r" % (version,))


def parse(data: bytes) -> Optional[Tuple[ProxyHeader, int]]:
    """Decode a header at the start of data: (header, bytes consumed), or None for more bytes.

    Raises ValueError when data cannot start with a valid header of either version.
    """
    data = bytes(data)
    if data.startswith(SIGNATURE):
        return _parse_v2(data)
    if data.startswith(_V1_PREFIX):
        return _parse_v1(data)
    if SIGNATURE.startswith(data) or _V1_PREFIX.startswith(data):
        return None
    raise ValueError("not a PROXY protocol header")


def _parse_v1(data: bytes) -> Optional[Tuple[ProxyHeader, int]]:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX or b"\n" in data:
            raise ValueError("PROXY v1 line without CRLF in %d bytes" % V1_MAX)
        return None
    line = data[:end]
    fields = line.split(b" ")
    if fields[1] == b"UNKNOWN":  # the rest of the line is ignored
        return ProxyHeader(1, "PROXY", "UNKNOWN", None, None), end + 2
    if len(fields) != 6 or fields[1] not in (b"TCP4", b"TCP6"):
        raise ValueError("malformed PROXY v1 line: %r" % (line,))
    protocol = fields[1].decode("ascii")
    source = _v1_endpoint(protocol, fields[2], fields[4])
    destination = _v1_endpoint(protocol, fields[3], fields[5])
    return ProxyHeader(1, "PROXY", protocol, source, destination), end + 2


def _v1_endpoint(protocol: str, host: bytes, port: bytes) -> Endpoint:
    if not _PORT_TEXT.match(port) or int(port) > 65535:
        raise ValueError("bad PROXY v1 port: %r" % (port,))
    pattern = _V4_TEXT if protocol == "TCP4" else _V6_TEXT
    if not pattern.match(host):
        raise ValueError("bad PROXY v1 %s address: %r" % (protocol, host))
    ip = ipaddress.ip_address(host.decode("ascii"))
    if ip.version != int(protocol[3]):
        raise ValueError("bad PROXY v1 %s address: %r" % (protocol, host))
    return str(ip), int(port)


def _parse_v2(data: bytes) -> Optional[Tuple[ProxyHeader, int]]:
    if len(data) < _V2_FIXED:
        return None
    ver_cmd, fam, length = struct.unpack_from("!BBH", data, len(SIGNATURE))
    if ver_cmd >> 4 != 2 or ver_cmd & 0xF > 1:
        raise ValueError("bad PROXY v2 version/command byte 0x%02x" % ver_cmd)
    total = _V2_FIXED + length
    if len(data) < total:
        return None
    body = data[_V2_FIXED:total]
    if ver_cmd & 0xF == 0:  # LOCAL: the receiver discards the address block and family
        return ProxyHeader(2, "LOCAL", "UNKNOWN", None, None), total
    if fam >> 4 > 3 or fam & 0xF > 2:
        raise ValueError("bad PROXY v2 family/protocol byte 0x%02x" % fam)
    if fam not in _V2_FAMILIES:  # UNSPEC family or protocol
        return ProxyHeader(2, "PROXY", "UNKNOWN", None, None, body), total
    protocol, size = _V2_FAMILIES[fam]
    if length < size:
        raise ValueError("PROXY v2 %s address block shorter than %d bytes" % (protocol, size))
    tlvs = body[size:]
    if size == 216:
        return ProxyHeader(2, "PROXY", protocol, None, None, tlvs), total
    half = (size - 4) // 2
    sport, dport = struct.unpack_from("!HH", body, 2 * half)
    src = ipaddress.ip_address(body[:half])
    dst = ipaddress.ip_address(body[half : 2 * half])
    return ProxyHeader(2, "PROXY", protocol, (str(src), sport), (str(dst), dport), tlvs), total


# -- an entrypoint reading the header (entryPoints.<name>.proxyProtocol) --------------------

_V1_SIGNATURE = b"PROXY"


class Arrival(NamedTuple):
    """How a connection of an entrypoint with ``proxyProtocol`` starts: ``consumed`` bytes
    of header to drop (0: no header, every byte is the protocol's), and the endpoints that
    replace the connection's own, or None to keep them."""

    consumed: int
    source: Optional[Endpoint] = None
    destination: Optional[Endpoint] = None


def read_arrival(data: bytes, trusted: bool) -> Optional[Arrival]:
    """What the first bytes of a connection are, as go-proxyproto reads them for Traefik.

    None: more bytes are needed to tell (a prefix of a signature, or a header not over).
    Bytes that do not start with a signature are the protocol's (no header). A header is
    dropped; its source and destination are the connection's from a ``trusted`` peer only
    (for others go-proxyproto's IGNORE policy: read and dropped, endpoints kept), and not
    for a v1 UNKNOWN or a v2 LOCAL header. Raises ValueError for a header the connection
    must be closed for: malformed, a v2 PROXY header of the UNSPEC family or protocol, and
    (from a trusted peer) one of AF_UNIX, whose address Traefik cannot use.
    """
    data = bytes(data)
    if not data.startswith(_V1_SIGNATURE) and not data.startswith(SIGNATURE):
        if _V1_SIGNATURE.startswith(data) or SIGNATURE.startswith(data):
            return None
        return Arrival(0)
    if data.startswith(_V1_SIGNATURE) and len(data) > len(_V1_SIGNATURE):
        if not data.startswith(_V1_PREFIX):
            raise ValueError("malformed PROXY v1 line")
    parsed = parse(data)
    if parsed is None:
        return None
    header, consumed = parsed
    if header.version == 2 and header.command == "PROXY" and header.protocol == "UNKNOWN":
        raise ValueError("PROXY v2 header of an unsupported address family and protocol")
    if not trusted or header.command == "LOCAL" or header.protocol == "UNKNOWN":
        return Arrival(consumed)
    if header.source is None or header.destination is None:
        raise ValueError("PROXY v2 header with %s addresses" % header.protocol)
    return Arrival(consumed, header.source, header.destination)


def bytes_wanted(data: bytes) -> int:
    """How many bytes a v2 header at the start of ``data`` spans once its length is known,
    else 0: no need to parse again before that many have come."""
    if len(data) < _V2_FIXED or not data.startswith(SIGNATURE):
        return 0
    return _V2_FIXED + int(struct.unpack_from("!H", data, _V2_FIXED - 2)[0])


def header_started(data: bytes) -> bool:
    """Whether ``data`` holds a whole signature (a header has begun): when the read timeout
    ends the wait, such a connection is closed, and any other (a signature's prefix) goes
    on as one without a header, as go-proxyproto does."""
    return data.startswith(_V1_SIGNATURE) or data.startswith(SIGNATURE)
