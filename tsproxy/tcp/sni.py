"""A pure TLS ClientHello parser for routing TCP connections by SNI and ALPN (issue 4).

No Twisted and no I/O: the peeking protocol calls :func:`parse_client_hello` on everything
buffered so far and gets ``None`` (need more bytes), a :class:`ClientHello`, or one of two
exceptions: :class:`NotTLS` when the bytes do not start a TLS handshake record (route to the
HTTP or non-TLS TCP routers), :class:`MalformedHello` when they do but the ClientHello is
invalid or larger than the cap. No other exception escapes, whatever the input.

The hello may be spread over several handshake records (fragmentation); the checks on the
ClientHello body follow Go's ``crypto/tls`` (which Traefik peeks with): one host_name at most,
no trailing dot, no empty names, no duplicate extensions, exact vector lengths.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import attrs

__all__ = [
    "MAX_BUFFER",
    "MAX_HELLO_LENGTH",
    "ClientHello",
    "HelloReader",
    "MalformedHello",
    "NotTLS",
    "parse_client_hello",
]

HANDSHAKE = 0x16
CLIENT_HELLO = 1
MAX_RECORD_LENGTH = 1 << 14
#: Largest ClientHello handshake message body accepted (16 KiB); larger is MalformedHello.
MAX_HELLO_LENGTH = 1 << 14
#: The records holding the hello must end within this many bytes of the stream.
MAX_BUFFER = 1 << 16


EXT_SERVER_NAME = 0
EXT_ALPN = 16
EXT_SUPPORTED_VERSIONS = 43


class NotTLS(ValueError):
    """The bytes are not a TLS handshake record (first byte, version or length)."""


class MalformedHello(ValueError):
    """The bytes are TLS handshake records, but not a valid ClientHello within the cap."""


@attrs.frozen
class ClientHello:
    """What routing needs from a ClientHello.

    ``server_name`` is the SNI host_name lower-cased as Traefik does ("" when absent; an IDN
    stays as sent, i.e. punycode). ``length`` is the byte count of the records that held the
    hello, counted from the start of the input.
    """

    server_name: str
    alpn: Tuple[str, ...]
    legacy_version: int
    supported_versions: Tuple[int, ...]
    length: int

    @property
    def versions(self) -> Tuple[int, ...]:
        """The versions offered: supported_versions if sent, else the legacy_version."""
        return self.supported_versions or (self.legacy_version,)


class _Reader:
    """Bounds-checked reads over a bytes object; running short is MalformedHello."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def empty(self) -> bool:
        return self.pos >= len(self.data)

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise MalformedHello("truncated ClientHello field")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, size: int, minimum: int = 0, maximum: int = 1 << 24) -> _Reader:
        length = self.uint(size)
        if not minimum <= length <= maximum:
            raise MalformedHello("vector length %d out of range" % length)
        return _Reader(self.take(length))


def _check_record_header(data: Union[bytes, bytearray], pos: int) -> None:
    """Check the (possibly partial) record header at pos; the first record's faults are NotTLS."""
    error = NotTLS if pos == 0 else MalformedHello
    header = data[pos : pos + 5]
    if header[:1] and header[0] != HANDSHAKE:
        raise error("record type %d is not a handshake" % header[0])
    if len(header) >= 2 and header[1] != 3:
        raise error("record major version %d is not 3" % header[1])
    if len(header) >= 3 and header[2] > 4:
        raise error("record minor version %d is unknown" % header[2])
    if len(header) == 5:
        length = int.from_bytes(header[3:5], "big")
        if not 0 < length <= MAX_RECORD_LENGTH:
            raise error("record length %d out of range" % length)


def parse_client_hello(data: bytes) -> Optional[ClientHello]:
    """Parse the ClientHello at the start of data, or return None if more bytes are needed."""
    return HelloReader().feed(bytes(data))


class HelloReader:
    """Reads a ClientHello as it arrives: :meth:`feed` each chunk; the records already read
    are not read again, so a hello sent a few bytes at a time costs linear work. After it
    returned a ClientHello or raised, a reader is not fed again."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.handshake = bytearray()
        self.pos = 0

    def feed(self, chunk: bytes) -> Optional[ClientHello]:
        """The ClientHello once complete, else None; NotTLS or MalformedHello as documented."""
        self.data += chunk
        data = self.data
        if not data:
            return None
        handshake = self.handshake
        while True:
            pos = self.pos
            _check_record_header(data, pos)
            if len(data) - pos < 5:
                return None
            end = pos + 5 + int.from_bytes(data[pos + 3 : pos + 5], "big")
            if end > MAX_BUFFER:
                raise MalformedHello("ClientHello records exceed %d bytes" % MAX_BUFFER)
            # The message type and length are checked as soon as they arrive, even mid-record.
            head = bytes(handshake[:4]) + bytes(data[pos + 5 : min(end, pos + 9)])
            if head[:1] and head[0] != CLIENT_HELLO:
                raise MalformedHello("handshake message type %d is not ClientHello" % head[0])
            length = int.from_bytes(head[1:4], "big") if len(head) >= 4 else -1
            if length > MAX_HELLO_LENGTH:
                raise MalformedHello("ClientHello of %d bytes exceeds the cap" % length)
            if len(data) < end:
                return None
            handshake += data[pos + 5 : end]
            self.pos = end
            if length >= 0 and len(handshake) >= 4 + length:
                return _parse_body(bytes(handshake[4 : 4 + length]), end)


def _parse_body(body: bytes, length: int) -> ClientHello:
    reader = _Reader(body)
    legacy_version = reader.uint(2)
    reader.take(32)  # random
    reader.vector(1, maximum=32)  # legacy_session_id
    suites = reader.vector(2, minimum=2)
    if len(suites.data) % 2:
        raise MalformedHello("odd cipher_suites length")
    reader.vector(1, minimum=1)  # legacy_compression_methods
    server_name = ""
    alpn: Tuple[str, ...] = ()
    supported: Tuple[int, ...] = ()
    if not reader.empty():
        extensions = reader.vector(2)
        if not reader.empty():
            raise MalformedHello("bytes after the extensions")
        seen = set()
        while not extensions.empty():
            kind = extensions.uint(2)
            ext = extensions.vector(2)
            if kind in seen:
                raise MalformedHello("duplicate extension %d" % kind)
            seen.add(kind)
            if kind == EXT_SERVER_NAME:
                server_name = _server_name(ext)
            elif kind == EXT_ALPN:
                alpn = _alpn(ext)
            elif kind == EXT_SUPPORTED_VERSIONS:
                supported = _supported_versions(ext)
    return ClientHello(server_name, alpn, legacy_version, supported, length)


def _whole(ext: _Reader, size: int, minimum: int) -> _Reader:
    """The extension's single length-prefixed list, which must fill it exactly."""
    inner = ext.vector(size, minimum=minimum)
    if not ext.empty():
        raise MalformedHello("bytes after an extension's list")
    return inner


def _server_name(ext: _Reader) -> str:
    names = _whole(ext, 2, 1)
    found = None
    while not names.empty():
        name_type = names.uint(1)
        name = names.vector(2, minimum=1).data
        if name_type != 0:
            continue
        if found is not None:
            raise MalformedHello("more than one host_name")
        found = name.decode("utf-8", "replace")
        if found.endswith("."):
            raise MalformedHello("host_name with a trailing dot")
    return (found or "").lower()


def _alpn(ext: _Reader) -> Tuple[str, ...]:
    protocols = _whole(ext, 2, 2)
    result = []
    while not protocols.empty():
        result.append(protocols.vector(1, minimum=1).data.decode("utf-8", "replace"))
    return tuple(result)


def _supported_versions(ext: _Reader) -> Tuple[int, ...]:
    versions = _whole(ext, 1, 2)
    if len(versions.data) % 2:
        raise MalformedHello("odd supported_versions length")
    return tuple(versions.uint(2) for _ in range(len(versions.data) // 2))
