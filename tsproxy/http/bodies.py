"""HTTP/1.1 message bodies: decoders for each framing, and chunked encoding.

Pure byte-level code with no I/O, as ``wire`` (which re-exports all of it): the protocols feed
a decoder the bytes after a head until it says the body is complete.
"""

from __future__ import annotations

import re
from typing import Callable, List, Optional

from tsproxy.http.messages import HTTPError

#: A chunk-size line (size plus extensions) longer than this is an attack, not a chunk.
MAX_CHUNK_LINE = 4096
#: Trailer section limit: trailers are read and dropped.
MAX_TRAILER_BYTES = 64 * 1024
_HEX = re.compile(rb"^[0-9A-Fa-f]+$")


class BodyDecoder:
    """Decodes one message body; `feed` returns leftover bytes once the body is complete."""

    done: bool = False

    def feed(self, data: bytes) -> Optional[bytes]:
        raise NotImplementedError


class LengthDecoder(BodyDecoder):
    """A body of a known Content-Length."""

    def __init__(self, length: int, on_data: Callable[[bytes], None]) -> None:
        self.remaining = length
        self.on_data = on_data
        self.done = length == 0

    def feed(self, data: bytes) -> Optional[bytes]:
        n = self.remaining
        if len(data) < n:
            self.remaining = n - len(data)
            if data:
                self.on_data(data)
            return None
        self.remaining = 0
        self.done = True
        if n:
            self.on_data(data[:n] if len(data) > n else data)
        return data[n:]


class CloseDecoder(BodyDecoder):
    """A body that ends when the connection closes."""

    def __init__(self, on_data: Callable[[bytes], None]) -> None:
        self.on_data = on_data

    def feed(self, data: bytes) -> Optional[bytes]:
        if data:
            self.on_data(data)
        return None


class ChunkedDecoder(BodyDecoder):
    """Transfer-Encoding: chunked; chunk extensions and trailers are read and dropped."""

    _SIZE, _DATA, _DATA_END, _TRAILER = range(4)

    def __init__(self, on_data: Callable[[bytes], None], error_status: int = 400) -> None:
        self.on_data = on_data
        self.error_status = error_status
        self.state = self._SIZE
        self.remaining = 0
        self.pending = b""
        self.trailer_bytes = 0

    def _fail(self, reason: str) -> HTTPError:
        return HTTPError(self.error_status, reason)

    def feed(self, data: bytes) -> Optional[bytes]:
        if self.pending:
            data = self.pending + data
            self.pending = b""
        pos = 0
        end = len(data)
        while pos < end:
            state = self.state
            if state == self._DATA:
                take = min(self.remaining, end - pos)
                self.on_data(data[pos : pos + take] if (pos or take != end) else data)
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = self._DATA_END
                continue
            nl = data.find(b"\n", pos)
            if nl < 0:
                rest = data[pos:]
                limit = MAX_CHUNK_LINE if state != self._TRAILER else MAX_TRAILER_BYTES
                if len(rest) > limit:
                    raise self._fail("chunk line too long")
                self.pending = rest
                return None
            line = data[pos:nl]
            pos = nl + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if state == self._SIZE:
                size = line.split(b";", 1)[0].strip(b" \t")
                if not _HEX.match(size) or len(size) > 15:
                    raise self._fail("invalid chunk size")
                self.remaining = int(size, 16)
                self.state = self._DATA if self.remaining else self._TRAILER
            elif state == self._DATA_END:
                if line:
                    raise self._fail("missing CRLF after chunk data")
                self.state = self._SIZE
            else:  # trailer section: ends with an empty line
                if not line:
                    self.done = True
                    return data[pos:]
                self.trailer_bytes += len(line)
                if self.trailer_bytes > MAX_TRAILER_BYTES:
                    raise self._fail("trailers too large")
        return None


def encode_chunk(data: bytes) -> List[bytes]:
    """The pieces of one chunk, for transport.writeSequence."""
    return [b"%x\r\n" % len(data), data, b"\r\n"]


LAST_CHUNK = b"0\r\n\r\n"
