"""Traefik's compress middleware: gzip, br or zstd as the client accepts (Traefik's order and
defaults), once the body reaches minResponseBodyBytes or the service flushes; streamed chunk
by chunk, never holding more than the minimum; never over an existing Content-Encoding."""

from __future__ import annotations

import zlib
from typing import Any, List, Optional, Sequence, Tuple

import attrs

from tsproxy.config.schema import FieldError, Fields
from tsproxy.middlewares.base import (
    BuildContext,
    BuildError,
    MiddlewareKind,
    Request,
    Response,
    ResponseSink,
    StepResult,
)
from tsproxy.middlewares.encoding import (
    IDENTITY,
    NOT_ACCEPTABLE,
    MediaType,
    media_type_equals,
    parse_media_type,
    select_encoding,
)

__all__ = ["KINDS", "Compress", "CompressSink", "CompressSpec", "available_encodings"]

ENCODINGS = ("gzip", "br", "zstd")
_GRPC: MediaType = ("application/grpc", {})


def available_encodings() -> Tuple[str, ...]:
    """The encodings this Python can produce (zstandard may be missing on PyPy)."""
    found = ["gzip"]
    if _brotli() is not None:
        found.append("br")
    try:
        import zstandard  # noqa: F401
    except ImportError:
        pass
    else:
        found.append("zstd")
    return tuple(found)


def _brotli() -> Any:
    """Google's brotli module (CPython) or brotlicffi (PyPy wheels), same API; None."""
    try:
        import brotli
    except ImportError:
        try:
            import brotlicffi as brotli
        except ImportError:
            return None
    return brotli


@attrs.frozen
class CompressSpec:
    excluded: Tuple[MediaType, ...] = ()
    included: Tuple[MediaType, ...] = ()
    min_size: int = 1024
    encodings: Tuple[str, ...] = ENCODINGS
    default: str = ""


def _media_types(fields: Fields, key: str) -> Tuple[MediaType, ...]:
    out: List[MediaType] = []
    for value, path, line in fields.items(key):
        parsed = parse_media_type(value) if isinstance(value, str) else None
        if parsed is None:
            raise FieldError(line, path, f"invalid media type {value!r}")
        out.append((parsed[0], {}))  # Traefik keeps only the bare media type
    return tuple(out)


def parse(fields: Fields) -> CompressSpec:
    excluded = _media_types(fields, "excludedContentTypes")
    included = _media_types(fields, "includedContentTypes")
    if excluded and included:
        raise fields.fail(
            "includedContentTypes",
            "excludedContentTypes and includedContentTypes options are mutually exclusive",
        )
    min_size = fields.integer("minResponseBodyBytes", 1024, minimum=0) or 1024
    encodings: Tuple[str, ...] = ENCODINGS
    if fields.has("encodings"):
        encodings = fields.strings("encodings")
        if not encodings:
            raise fields.fail("encodings", "at least one encoding must be specified")
        for name in encodings:
            if name not in ENCODINGS:
                raise fields.fail("encodings", f"unsupported encoding {name!r} (gzip, br, zstd)")
    default = fields.string("defaultEncoding")
    if default and default not in encodings:
        raise fields.fail("defaultEncoding", f"defaultEncoding {default!r} is not in encodings")
    fields.done()
    return CompressSpec(excluded, included, min_size, tuple(encodings), default)


def _no_body(status: int) -> bool:
    return 100 <= status < 200 or status in (204, 304)


def content_type_allowed(
    value: Optional[str], excluded: Sequence[MediaType], included: Sequence[MediaType]
) -> bool:
    """Whether a response of Content-Type `value` may be compressed."""
    if not value:
        return not included
    parsed = parse_media_type(value)
    if parsed is None:
        return False
    if any(media_type_equals(item, parsed) for item in (_GRPC,) + tuple(excluded)):
        return False
    if included:
        return any(media_type_equals(item, parsed) for item in included)
    return True


class _Encoder:
    """One streaming compressor with the three calls the sink needs."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        if encoding == "gzip":
            self.gzip = zlib.compressobj(6, zlib.DEFLATED, 31)
        elif encoding == "br":
            self.br = _brotli().Compressor()
        else:
            import zstandard

            self.zstd = zstandard.ZstdCompressor().compressobj()

    def compress(self, data: bytes) -> bytes:
        if self.encoding == "gzip":
            return self.gzip.compress(data)
        if self.encoding == "br":
            return bytes(self.br.process(data))
        return bytes(self.zstd.compress(data))

    def flush(self) -> bytes:
        if self.encoding == "gzip":
            return self.gzip.flush(zlib.Z_SYNC_FLUSH)
        if self.encoding == "br":
            return bytes(self.br.flush())
        import zstandard

        return bytes(self.zstd.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))

    def finish(self) -> bytes:
        if self.encoding == "gzip":
            return self.gzip.flush()
        if self.encoding == "br":
            return bytes(self.br.finish())
        return bytes(self.zstd.flush())


@attrs.define(eq=False)
class CompressSink:
    """Holds the head and up to `min_size` body bytes, then either compresses the rest as
    it streams or lets the response through unchanged."""

    downstream: ResponseSink
    encoding: str
    min_size: int
    excluded: Sequence[MediaType] = ()
    included: Sequence[MediaType] = ()
    response: Optional[Response] = None
    held: List[bytes] = attrs.Factory(list)
    size: int = 0
    #: "holding", "compressing" or "passing"
    state: str = "holding"
    encoder: Optional[_Encoder] = None

    def head(self, response: Response) -> None:
        headers = response.headers
        if headers.get("Content-Encoding") or _no_body(response.status):
            self.state = "passing"
            self.downstream.head(response)
            return
        if not content_type_allowed(headers.get("Content-Type"), self.excluded, self.included):
            self.state = "passing"
            self.downstream.head(response)
            return
        self.response = response

    def data(self, chunk: bytes) -> None:
        if self.state == "passing":
            self.downstream.data(chunk)
        elif self.state == "compressing":
            assert self.encoder is not None
            out = self.encoder.compress(chunk)
            if out:
                self.downstream.data(out)
        else:
            self.held.append(chunk)
            self.size += len(chunk)
            if self.size >= self.min_size:
                self._start()

    def _start(self) -> None:
        assert self.response is not None
        headers = self.response.headers
        headers.remove("Content-Length")
        headers.set("Content-Encoding", self.encoding)
        if "accept-encoding" not in [v.strip().lower() for v in headers.get_all("Vary")]:
            headers.add("Vary", "Accept-Encoding")
        self.state = "compressing"
        self.encoder = _Encoder(self.encoding)
        self.downstream.head(self.response)
        held, self.held = b"".join(self.held), []
        out = self.encoder.compress(held)
        if out:
            self.downstream.data(out)

    def flush(self) -> None:
        if self.state == "holding":
            if not self.size:
                return  # nothing yet: the head can still take an encoding
            self._start()
        if self.state == "compressing":
            assert self.encoder is not None
            out = self.encoder.flush()
            if out:
                self.downstream.data(out)
        self.downstream.flush()

    def end(self) -> None:
        if self.state == "holding":
            assert self.response is not None
            self.state = "passing"
            if self.size:
                self.response.headers.add("Vary", "Accept-Encoding")
            self.downstream.head(self.response)
            for chunk in self.held:
                self.downstream.data(chunk)
            self.held = []
        elif self.state == "compressing":
            assert self.encoder is not None
            out = self.encoder.finish()
            if out:
                self.downstream.data(out)
        self.downstream.end()


@attrs.define(eq=False)
class Compress:
    """One built compress step."""

    name: str
    spec: CompressSpec

    def handle(self, request: Request) -> StepResult:
        if request.method == "HEAD":
            return None
        request_type = request.headers.get("Content-Type")
        if request_type and not content_type_allowed(request_type, self.spec.excluded, ()):
            return None
        accept = request.headers.get_all("Accept-Encoding")
        encoding = select_encoding(
            accept if "Accept-Encoding" in request.headers else None,
            self.spec.encodings,
            self.spec.default,
        )
        if encoding in (IDENTITY, NOT_ACCEPTABLE):
            return None
        if encoding == "gzip" and accept and not _names_gzip(accept):
            return None  # Traefik's gzip handler wants the gzip token itself (not just *)
        spec = self.spec

        def wrap(downstream: ResponseSink) -> ResponseSink:
            return CompressSink(downstream, encoding, spec.min_size, spec.excluded, spec.included)

        request.wrap_response(wrap)
        return None


def _names_gzip(values: Sequence[str]) -> bool:
    for value in values:
        for item in value.split(","):
            name, _, params = item.strip().partition(";")
            if name.strip().lower() == "gzip" and params.replace(" ", "") != "q=0":
                return True
    return False


def build(spec: CompressSpec, name: str, context: BuildContext) -> Compress:
    if not getattr(context, "traffic_hooks", False):
        raise BuildError("compress needs the engine's response-body hook, not wired yet")
    missing = [name for name in spec.encodings if name not in available_encodings()]
    if missing and spec.encodings != ENCODINGS:
        raise BuildError(f"encodings: {', '.join(missing)} not available in this Python")
    if missing:
        spec = attrs.evolve(spec, encodings=tuple(e for e in spec.encodings if e not in missing))
    return Compress(name, spec)


KINDS = (MiddlewareKind("compress", parse, build),)
