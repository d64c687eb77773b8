"""Sending a stored request body (tsproxy/middlewares/bodystore.py) to a backend connection
in bounded pieces, as fast as the connection's write buffer drains: the body may be far
larger than memory should hold (the buffering middleware spills it to a file), so it is
never read whole. No reactor import: the connection says when it is full (`write_blocked`)
and calls `drain_hook` when it has room again (tsproxy/http/relay.py)."""

from __future__ import annotations

from typing import Any, Callable

from tsproxy.middlewares.bodystore import CHUNK, BodyReader

__all__ = ["BodyPump"]


class BodyPump:
    """Writes what `reader` reads to `conn` (a Relaying backend connection or stream), one
    `chunk` at a time while its write buffer has room; calls `done` after the last byte.
    `stop` ends it early (the backend went away, the exchange ended)."""

    def __init__(
        self, conn: Any, reader: BodyReader, done: Callable[[], None], chunk: int = CHUNK
    ) -> None:
        self.conn = conn
        self.reader = reader
        self.done = done
        self.chunk = chunk
        self.running = False
        self.stopped = False
        self.finished = False

    def start(self) -> None:
        self.conn.drain_hook = self.pump
        self.pump()

    def pump(self) -> None:
        """Write until the connection is full or the body is out."""
        if self.running or self.stopped:
            return  # a write that drained at once: the loop below goes on
        self.running = True
        try:
            conn = self.conn
            while not self.stopped and not conn.write_blocked:
                chunk = self.reader.read(self.chunk)
                if not chunk:
                    self.finished = True
                    self.stop()
                    self.done()
                    return
                conn.transport.write(chunk)
        finally:
            self.running = False

    def stop(self) -> None:
        """Write no more (idempotent)."""
        self.stopped = True
        if self.conn.drain_hook == self.pump:
            self.conn.drain_hook = None
