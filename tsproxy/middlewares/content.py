"""The contentType middleware and Go's http.DetectContentType (WHATWG MIME sniffing).

Traefik 3.7 never sniffs a Content-Type unless this middleware is on the router; the step
only asks the engine to sniff (`Response.sniff`), as it needs the first body bytes. Pure.
"""

from __future__ import annotations

import struct
from typing import Callable, Optional, Tuple

import attrs

from tsproxy.config.schema import Fields
from tsproxy.middlewares.base import (
    BuildContext,
    MiddlewareKind,
    Request,
    Response,
    StepResult,
)

__all__ = ["KINDS", "SNIFF_LEN", "detect_content_type"]

#: Go reads at most this many bytes to decide.
SNIFF_LEN = 512

_WS = b"\t\n\x0c\r "
_TEXT_UTF8 = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_HTML_TAGS = (
    b"<!DOCTYPE HTML",
    b"<HTML",
    b"<HEAD",
    b"<SCRIPT",
    b"<IFRAME",
    b"<H1",
    b"<DIV",
    b"<FONT",
    b"<TABLE",
    b"<A",
    b"<STYLE",
    b"<TITLE",
    b"<B",
    b"<BODY",
    b"<BR",
    b"<P",
    b"<!--",
)


def _html(data: bytes, tag: bytes) -> bool:
    """Case-insensitive tag then a space or '>' (Go's htmlSig)."""
    if len(data) < len(tag) + 1:
        return False
    for index, expected in enumerate(tag):
        actual = data[index]
        if 0x41 <= expected <= 0x5A:
            actual &= 0xDF
        if actual != expected:
            return False
    return data[len(tag)] in b" >"


def _masked(data: bytes, mask: bytes, pattern: bytes) -> bool:
    if len(data) < len(pattern):
        return False
    return all(data[index] & mask[index] == byte for index, byte in enumerate(pattern))


def _mp4(data: bytes) -> bool:
    if len(data) < 12:
        return False
    box_size = struct.unpack(">I", data[:4])[0]
    if len(data) < box_size or box_size % 4 != 0 or data[4:8] != b"ftyp":
        return False
    for start in range(8, box_size, 4):
        if start == 12:
            continue  # the minor version
        if data[start : start + 3] == b"mp4":
            return True
    return False


def _binary(data: bytes) -> bool:
    return any(
        byte <= 0x08 or byte == 0x0B or 0x0E <= byte <= 0x1A or 0x1C <= byte <= 0x1F
        for byte in data
    )


_FF4, _RIFF_MASK = b"\xff" * 4, b"\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff"
# (mask or None for an exact prefix, pattern, content type), in Go's order after the text
# signatures; masked ones that skip leading whitespace are handled in detect_content_type.
_SIGNATURES: Tuple[Tuple[Optional[bytes], bytes, str], ...] = (
    (None, b"%PDF-", "application/pdf"),
    (None, b"%!PS-Adobe-", "application/postscript"),
    (b"\xff\xff\x00\x00", b"\xfe\xff\x00\x00", "text/plain; charset=utf-16be"),
    (b"\xff\xff\x00\x00", b"\xff\xfe\x00\x00", "text/plain; charset=utf-16le"),
    (b"\xff\xff\xff\x00", b"\xef\xbb\xbf\x00", _TEXT_UTF8),
    (None, b"\x00\x00\x01\x00", "image/x-icon"),
    (None, b"\x00\x00\x02\x00", "image/x-icon"),
    (None, b"BM", "image/bmp"),
    (None, b"GIF87a", "image/gif"),
    (None, b"GIF89a", "image/gif"),
    (
        b"\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff",
        b"RIFF\x00\x00\x00\x00WEBPVP",
        "image/webp",
    ),
    (None, b"\x89PNG\r\n\x1a\n", "image/png"),
    (None, b"\xff\xd8\xff", "image/jpeg"),
    (_FF4, b".snd", "audio/basic"),
    (_RIFF_MASK, b"FORM\x00\x00\x00\x00AIFF", "audio/aiff"),
    (b"\xff\xff\xff", b"ID3", "audio/mpeg"),
    (b"\xff" * 5, b"OggS\x00", "application/ogg"),
    (b"\xff" * 8, b"MThd\x00\x00\x00\x06", "audio/midi"),
    (_RIFF_MASK, b"RIFF\x00\x00\x00\x00AVI ", "video/avi"),
    (_RIFF_MASK, b"RIFF\x00\x00\x00\x00WAVE", "audio/wave"),
)
_AFTER_MP4: Tuple[Tuple[Optional[bytes], bytes, str], ...] = (
    (None, b"\x1a\x45\xdf\xa3", "video/webm"),
    (b"\x00" * 34 + b"\xff\xff", b"\x00" * 34 + b"LP", "application/vnd.ms-fontobject"),
    (None, b"\x00\x01\x00\x00", "font/ttf"),
    (None, b"OTTO", "font/otf"),
    (None, b"ttcf", "font/collection"),
    (None, b"wOFF", "font/woff"),
    (None, b"wOF2", "font/woff2"),
    (None, b"\x1f\x8b\x08", "application/x-gzip"),
    (None, b"PK\x03\x04", "application/zip"),
    (None, b"Rar!\x1a\x07\x00", "application/x-rar-compressed"),
    (None, b"Rar!\x1a\x07\x01\x00", "application/x-rar-compressed"),
    (None, b"\x00asm", "application/wasm"),
)


def _first(data: bytes, table: Tuple[Tuple[Optional[bytes], bytes, str], ...]) -> str:
    for mask, pattern, content_type in table:
        if mask is None and data.startswith(pattern):
            return content_type
        if mask is not None and _masked(data, mask, pattern):
            return content_type
    return ""


def detect_content_type(data: bytes) -> str:
    """Go's http.DetectContentType: a MIME type for the first bytes of a body (always one;
    application/octet-stream when nothing fits)."""
    data = data[:SNIFF_LEN]
    start = 0
    while start < len(data) and data[start] in _WS:
        start += 1
    text = data[start:]
    for tag in _HTML_TAGS:
        if _html(text, tag):
            return _HTML
    if _masked(text, b"\xff" * 5, b"<?xml"):
        return "text/xml; charset=utf-8"
    found = _first(data, _SIGNATURES)
    if found:
        return found
    if _mp4(data):
        return "video/mp4"
    found = _first(data, _AFTER_MP4)
    if found:
        return found
    if not _binary(text):
        return _TEXT_UTF8
    return "application/octet-stream"


@attrs.frozen
class ContentTypeSpec:
    #: Deprecated in Traefik; None when unset. False makes the middleware do nothing.
    auto_detect: Optional[bool] = None


def parse_content_type(fields: Fields) -> ContentTypeSpec:
    present = fields.has("autoDetect")
    value = fields.boolean("autoDetect", False)
    fields.done()
    return ContentTypeSpec(value if present else None)


def _enable_sniffing(response: Response) -> None:
    response.sniff = detect_content_type


@attrs.define
class ContentType:
    name: str
    enabled: bool
    hook: Callable[[Response], None] = _enable_sniffing

    def handle(self, request: Request) -> StepResult:
        if self.enabled:
            request.on_response(self.hook)
        return None


def build_content_type(spec: ContentTypeSpec, name: str, context: BuildContext) -> ContentType:
    return ContentType(name, spec.auto_detect is not False)


KINDS = (MiddlewareKind("contentType", parse_content_type, build_content_type),)
