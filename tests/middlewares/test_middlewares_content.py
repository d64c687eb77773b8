"""Tests for tsproxy.middlewares.content: the Traefik vectors, Go's DetectContentType table,
and that the step only asks the engine to sniff."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.mwvectors import add_vector_tests, build, parse_error
from tsproxy.middlewares.base import HeaderList, Request, Response
from tsproxy.middlewares.content import detect_content_type


class ContentTypeVectorTests(SynchronousTestCase):
    """contentType.json, every case."""


add_vector_tests(ContentTypeVectorTests, "contentType.json", "contentType")

# (first body bytes, Go's http.DetectContentType) - Go's own sniff_test.go table in spirit.
SNIFF = [
    (b"", "text/plain; charset=utf-8"),
    (b"Hello, world", "text/plain; charset=utf-8"),
    (b"\x01\x02\x03", "application/octet-stream"),
    (b"\x1b[0m", "text/plain; charset=utf-8"),  # ESC is not a binary byte for Go
    (b"  \n<!DOCTYPE html>\n<html>", "text/html; charset=utf-8"),
    (b"<HtMl><bOdY>blah", "text/html; charset=utf-8"),
    (b"<h1 class=x>", "text/html; charset=utf-8"),
    (b"<html", "text/plain; charset=utf-8"),  # a tag needs a space or '>' after it
    (b"<!-- c -->", "text/html; charset=utf-8"),
    (b"\n<?xml!", "text/xml; charset=utf-8"),
    (b"%PDF-1.4", "application/pdf"),
    (b"%!PS-Adobe-3.0", "application/postscript"),
    (b"\xfe\xff\x00\x41", "text/plain; charset=utf-16be"),
    (b"\xff\xfe\x41\x00", "text/plain; charset=utf-16le"),
    (b"\xef\xbb\xbfhi", "text/plain; charset=utf-8"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"BMxx", "image/bmp"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a...", "image/gif"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"\x89PNG\x0d\x0a\x1a\x0a", "image/png"),
    (b"\xff\xd8\xff\xe0", "image/jpeg"),
    (b".snd\x00\x00", "audio/basic"),
    (b"FORM\x00\x00\x00\x00AIFFxx", "audio/aiff"),
    (b"ID3\x03", "audio/mpeg"),
    (b"OggS\x00\x02", "application/ogg"),
    (b"MThd\x00\x00\x00\x06\x00\x01", "audio/midi"),
    (b"RIFF,O\n\x00AVI LIST\xc0", "video/avi"),
    (b"RIFF,\x00\x00\x00WAVEfmt ", "audio/wave"),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video/mp4"),
    # "mp4" as the minor version (offset 12) does not count.
    (b"\x00\x00\x00\x18ftypxxxxmp42yyyyzzzz", "application/octet-stream"),
    (b"\x1aE\xdf\xa3", "video/webm"),
    (b"\x00" * 34 + b"LP", "application/vnd.ms-fontobject"),
    (b"\x00\x01\x00\x00", "font/ttf"),
    (b"OTTO", "font/otf"),
    (b"ttcf", "font/collection"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"\x1f\x8b\x08", "application/x-gzip"),
    (b"PK\x03\x04", "application/zip"),
    (b"Rar!\x1a\x07\x00", "application/x-rar-compressed"),
    (b"Rar!\x1a\x07\x01\x00", "application/x-rar-compressed"),
    (b"\x00asm\x01", "application/wasm"),
    (b"a" * 512 + b"\x00", "text/plain; charset=utf-8"),  # only the first 512 bytes count
]


class ContentTypeTests(SynchronousTestCase):
    """Sniffing table, parsing and what the hook asks of the engine."""

    def test_detect(self) -> None:
        """Each body start sniffs as Go's http.DetectContentType says."""
        for data, expected in SNIFF:
            self.assertEqual(detect_content_type(data), expected, data)

    def test_parse(self) -> None:
        """autoDetect is the only field, a boolean."""
        self.assertEqual(
            parse_error("contentType", "spec:\n  autoDetect: 'no'\n"),
            (2, "spec.autoDetect: must be true or false"),
        )
        self.assertEqual(
            parse_error("contentType", "spec:\n  sniff: true\n"), (2, "spec.sniff: unknown field")
        )

    def test_hook(self) -> None:
        """The step asks the engine to sniff; autoDetect false makes it do nothing."""
        for config, asked in [
            ({}, True),
            ({"autoDetect": True}, True),
            ({"autoDetect": False}, False),
        ]:
            request = Request("GET", "/", None, HeaderList(), "192.0.2.1")
            self.assertIsNone(build("contentType", config).handle(request))
            response = Response(200, HeaderList(), request)
            for hook in request.response_hooks:
                hook(response)
            self.assertEqual(response.sniff is detect_content_type, asked, config)
