"""tsproxy.http.headers: the request's header lines as text, decoded on first read."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.http.headers import HeaderText, decode_headers


class HeaderTextTests(SynchronousTestCase):
    """HeaderText reads as decode_headers' list, and decodes only when read."""

    def test_table(self) -> None:
        """Iteration, length and indexing give what decode_headers gives."""
        cases = [
            [],
            [(b"Host", b"a.example")],
            [(b"X-Utf8", "é".encode()), (b"X-Bad", b"\xff\xfe"), (b"x-a", b"1, 2")],
        ]
        for raw in cases:
            text = HeaderText(raw)
            expected = decode_headers(raw)
            self.assertEqual(len(text), len(expected))
            self.assertEqual(list(text), expected)
            self.assertEqual([text[i] for i in range(len(text))], expected)
            self.assertEqual(list(text), expected)  # read twice: same answer

    def test_lazy(self) -> None:
        """Nothing is decoded until the lines are read, then once."""
        text = HeaderText([(b"Cookie", b"s=v")])
        self.assertIsNone(text._text)
        first = list(text)
        self.assertIs(text._text, text._decoded())
        self.assertEqual(first, [("Cookie", "s=v")])
