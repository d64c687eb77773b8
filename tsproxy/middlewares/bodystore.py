"""A body held whole for a step (the buffering middleware, forwardAuth's forwardBody): its
first bytes in memory, the rest in a temporary file, as oxy's buffer keeps what passes
memRequestBodyBytes / memResponseBodyBytes on disk.

The file is a `tempfile.TemporaryFile`: unlinked as it is made, so nothing is left on disk
whatever happens to the process; closing the store closes it. Reading goes through
`BodyReader`s, each from the start (a retry replays the body with a new one). No Twisted
import: the engine paces the reads (tsproxy/http/server_steps.py).
"""

from __future__ import annotations

import tempfile
from typing import IO, Any, Callable, Iterator, Optional

__all__ = ["BodyReader", "BodyStore", "CHUNK"]

#: What one read of a stored body returns at most (the engine's send chunk).
CHUNK = 65536


class BodyStore:
    """A body: up to `memory` bytes in memory (-1: all of it), the rest appended to an
    unlinked temporary file made on first need by `make_file`."""

    def __init__(
        self, memory: int = -1, make_file: Callable[[], IO[bytes]] = tempfile.TemporaryFile
    ) -> None:
        self.memory = memory
        self.make_file = make_file
        self.head = bytearray()
        self.file: Optional[IO[bytes]] = None
        self.size = 0
        self.closed = False

    @property
    def spilled(self) -> int:
        """How many bytes are in the file."""
        return self.size - len(self.head)

    def write(self, data: bytes) -> None:
        """Append `data` (memory first, then the file)."""
        if self.closed:
            raise ValueError("write to a closed body store")
        size = len(data)
        if not size:
            return
        memory = self.memory
        if memory < 0 or (self.file is None and len(self.head) + size <= memory):
            self.head += data
        else:
            room = max(0, memory - len(self.head))
            if room:
                self.head += data[:room]
                data = data[room:]
            file = self.file
            if file is None:
                file = self.file = self.make_file()
            file.seek(0, 2)
            file.write(data)
        self.size += size

    def reader(self) -> BodyReader:
        """A reader from the body's first byte."""
        return BodyReader(self)

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """The body in pieces of at most `size` bytes."""
        reader = self.reader()
        while True:
            chunk = reader.read(size)
            if not chunk:
                return
            yield chunk

    def read_all(self) -> bytes:
        """The whole body in one bytes value (for a step that needs it so: forwardBody)."""
        return b"".join(self.chunks())

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes from `offset` (b"" at the end)."""
        if self.closed:
            raise ValueError("read from a closed body store")
        in_memory = len(self.head)
        if offset < in_memory:
            return bytes(self.head[offset : offset + size])
        file = self.file
        if file is None:
            return b""
        file.seek(offset - in_memory)
        return file.read(size)

    def close(self) -> None:
        """Let go of the memory and close (so delete) the file; closing again does nothing."""
        self.closed = True
        self.head = bytearray()
        file, self.file = self.file, None
        if file is not None:
            file.close()

    def __repr__(self) -> str:
        return f"<BodyStore {self.size} bytes, {self.spilled} in a file>"


class BodyReader:
    """Reads a store from the start, `read(n)` after `read(n)`."""

    __slots__ = ("store", "offset")

    def __init__(self, store: BodyStore) -> None:
        self.store = store
        self.offset = 0

    @property
    def left(self) -> int:
        return self.store.size - self.offset

    def read(self, size: int = CHUNK) -> bytes:
        """The next bytes, at most `size` (never more than what is in memory or the file at
        once, so a read does not cross from one to the other); b"" at the end."""
        chunk: Any = self.store.read_at(self.offset, size)
        self.offset += len(chunk)
        return bytes(chunk)
