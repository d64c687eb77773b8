"""Tests for tsproxy.middlewares.bodystore: what stays in memory, what goes to the file, and
that any reading gives the body back byte for byte."""

from __future__ import annotations

from typing import List

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.middlewares.bodystore import BodyStore


class StoreTests(SynchronousTestCase):
    """BodyStore and BodyReader with plain values."""

    def test_split(self) -> None:
        """The first `memory` bytes stay in memory, the rest goes to the file; reads in
        pieces of any size give the body back, and a new reader starts over."""
        table = [
            # memory, writes, in memory, in the file
            (-1, [b"abc", b"defgh"], 8, 0),
            (0, [b"abc", b"defgh"], 0, 8),
            (4, [b"ab"], 2, 0),
            (4, [b"abcd"], 4, 0),
            (4, [b"abcde"], 4, 1),
            (4, [b"ab", b"cdef", b"g"], 4, 3),
            (4, [b"abcd", b"", b"efgh"], 4, 4),
            (5, [b"x" * 3, b"y" * 70000], 5, 69998),
        ]
        for memory, writes, in_memory, in_file in table:
            with self.subTest(memory=memory, writes=[len(w) for w in writes]):
                store = BodyStore(memory)
                for data in writes:
                    store.write(data)
                body = b"".join(writes)
                self.assertEqual((len(store.head), store.spilled), (in_memory, in_file))
                self.assertEqual(store.file is not None, in_file > 0)
                self.assertEqual(store.size, len(body))
                self.assertEqual(store.read_all(), body)
                for size in (1, 3, 65536):
                    reader = store.reader()
                    parts: List[bytes] = []
                    while True:
                        chunk = reader.read(size)
                        if not chunk:
                            break
                        self.assertLessEqual(len(chunk), size)
                        parts.append(chunk)
                    self.assertEqual(b"".join(parts), body)
                    self.assertEqual(reader.left, 0)
                store.close()

    def test_close(self) -> None:
        """Closing closes the file and lets go of memory; the store then refuses use."""
        store = BodyStore(2)
        store.write(b"hello")
        file = store.file
        assert file is not None
        store.close()
        store.close()  # again: nothing
        self.assertTrue(file.closed)
        self.assertEqual(len(store.head), 0)
        self.assertRaises(ValueError, store.write, b"x")
        self.assertRaises(ValueError, store.read_at, 0, 1)

    def test_unlinked(self) -> None:
        """The file has no name on disk: nothing can be left behind."""
        store = BodyStore(0)
        store.write(b"secret")
        assert store.file is not None
        name = store.file.name
        self.assertIsInstance(name, int)  # a bare descriptor: TemporaryFile unlinks at once
        store.close()

    def test_write_failure(self) -> None:
        """A file that cannot take more (disk full) raises OSError to the writer."""

        class Full:
            def seek(self, offset: int, whence: int = 0) -> None:
                pass

            def write(self, data: bytes) -> int:
                raise OSError(28, "No space left on device")

            def close(self) -> None:
                pass

        store = BodyStore(1, make_file=Full)  # type: ignore[arg-type]
        self.assertRaises(OSError, store.write, b"abc")
