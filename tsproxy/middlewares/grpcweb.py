"""Traefik's grpcWeb middleware: gRPC-Web from browsers to gRPC services, as Traefik does it
with improbable-eng/grpc-web's wrapper (and rs/cors inside it).

A POST whose Content-Type starts with ``application/grpc-web`` goes on as gRPC
(``application/grpc…``; the ``-text`` variants' base64 body decoded); the answer comes back
with its Content-Type made ``application/grpc-web…`` again, its body frames as they are (each
chunk base64-encoded for ``-text``), and the service's trailers appended as a last frame
(flag 0x80, ``name: value\\r\\n`` lines). A CORS preflight asking for ``x-grpc-web`` is
answered here for the origins in ``allowOrigins``. Everything else passes untouched.

The framing functions are pure and take plain values; the step and its response sink use
them. The engine's part: `Request.keep_trailers` (trailers given to the sink on
`Response.trailers`) and `Request.new_body` (the decoded body sent on).
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Any, Iterable, List, Optional, Sequence, Tuple

import attrs

from tsproxy.config.schema import Fields
from tsproxy.middlewares.base import (
    Answer,
    BodyTooLarge,
    BuildContext,
    BuildError,
    HeaderList,
    MiddlewareKind,
    Request,
    Response,
    ResponseSink,
    StepResult,
    canonical_name,
)

__all__ = [
    "KINDS",
    "GrpcWeb",
    "GrpcWebSink",
    "GrpcWebSpec",
    "decode_text",
    "is_grpc_web",
    "origin_allowed",
    "preflight_headers",
    "request_content_type",
    "response_content_type",
    "trailer_frame",
]

GRPC = "application/grpc"
GRPC_WEB = "application/grpc-web"
GRPC_WEB_TEXT = "application/grpc-web-text"
#: The most base64 text a ``-text`` request may carry: it is read whole to be decoded
#: (gRPC-Web requests are one message; 4 MiB is gRPC's default message size limit).
TEXT_BODY_LIMIT = 4 * 1024 * 1024 * 4 // 3 + 64
#: What rs/cors lets a preflight ask for when no methods are configured (grpc-web sets none).
_METHODS = ("GET", "POST", "HEAD")
#: rs/cors's Access-Control-Max-Age as grpc-web configures it (10 minutes).
_MAX_AGE = "600"
_PLAIN = ("Content-Type", "text/plain; charset=utf-8")
_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


@attrs.frozen
class GrpcWebSpec:
    #: Origins allowed to call (``*``: any); none by default.
    allow_origins: Tuple[str, ...] = ()


def parse(fields: Fields) -> GrpcWebSpec:
    origins = fields.strings("allowOrigins")
    fields.done()
    return GrpcWebSpec(origins)


# -- pure framing --------------------------------------------------------------------------


def is_grpc_web(method: str, content_type: Optional[str]) -> bool:
    """A gRPC-Web call, as grpc-web's IsGrpcWebRequest: POST with a Content-Type starting
    with ``application/grpc-web`` (case-sensitive, as the Go library compares)."""
    return method == "POST" and (content_type or "").startswith(GRPC_WEB)


def is_preflight(method: str, request_headers: Optional[str]) -> bool:
    """A CORS preflight for a gRPC-Web call (grpc-web's IsAcceptableGrpcCorsRequest): OPTIONS
    whose Access-Control-Request-Headers names ``x-grpc-web``."""
    return method == "OPTIONS" and "x-grpc-web" in (request_headers or "").lower()


def request_content_type(content_type: str) -> str:
    """The Content-Type sent to the service: the gRPC-Web type replaced by gRPC's, suffix
    kept (``application/grpc-web-text+proto`` → ``application/grpc+proto``)."""
    incoming = GRPC_WEB_TEXT if content_type.startswith(GRPC_WEB_TEXT) else GRPC_WEB
    return content_type.replace(incoming, GRPC, 1)


def response_content_type(content_type: str, text: bool) -> str:
    """The Content-Type sent to the browser: gRPC's type made the gRPC-Web one the request
    used (``application/grpc+proto`` → ``application/grpc-web+proto``)."""
    return content_type.replace(GRPC, GRPC_WEB_TEXT if text else GRPC_WEB, 1)


def decode_text(data: bytes) -> bytes:
    """A ``-text`` body decoded: base64 with padding, line breaks ignored, several padded
    pieces one after the other accepted (each 4-character group decodes alone); ValueError
    for anything else."""
    data = data.replace(b"\r", b"").replace(b"\n", b"")
    if len(data) % 4 or not _B64.issuperset(data):
        raise ValueError("the body is not base64")
    out: List[bytes] = []
    for start in range(0, len(data), 4):
        group = data[start : start + 4]
        if b"=" in group[:2] or group[2:3] == b"=" and group[3:] != b"=":
            raise ValueError("the body is not base64")
        try:
            out.append(base64.b64decode(group, validate=True))
        except binascii.Error as e:
            raise ValueError("the body is not base64") from e
    return b"".join(out)


def encode_text(data: bytes) -> bytes:
    """Bytes for a ``-text`` response: one padded base64 piece."""
    return base64.b64encode(data)


def trailer_frame(trailers: Iterable[Tuple[str, str]], sent: Iterable[str] = ()) -> bytes:
    """The trailers as gRPC-Web's last frame: flag 0x80, the length (4 bytes, big-endian),
    then one ``name: value\\r\\n`` line per value, names lower-cased and sorted (Go's
    Header.Write), values' line breaks made spaces and trimmed; names already in the head
    (`sent`) and ``trailer`` left out."""
    skip = {name.lower() for name in sent} | {"trailer"}
    values: dict[str, List[str]] = {}
    for name, value in trailers:
        lname = name.lower()
        if lname not in skip:
            values.setdefault(lname, []).append(value)
    lines = []
    for name in sorted(values):
        for value in values[name]:
            clean = value.replace("\r", " ").replace("\n", " ").strip(" \t")
            lines.append(f"{name}: {clean}\r\n")
    block = "".join(lines).encode("latin-1")
    return b"\x80" + struct.pack(">I", len(block)) + block


def origin_allowed(allow_origins: Sequence[str], origin: str) -> bool:
    """Traefik's origin check: ``*`` or an exact match."""
    return any(item == "*" or item == origin for item in allow_origins)


def preflight_headers(
    allow_origins: Sequence[str],
    origin: Optional[str],
    method: Optional[str],
    request_headers: Optional[str],
) -> List[Tuple[str, str]]:
    """The answer's headers to a gRPC-Web preflight (rs/cors's handlePreflight): the Vary
    lines always; the Access-Control-Allow-* ones only for an allowed origin asking for
    GET, POST or HEAD. Requested headers are all allowed, echoed in Go's spelling."""
    out = [
        ("Vary", "Origin"),
        ("Vary", "Access-Control-Request-Method"),
        ("Vary", "Access-Control-Request-Headers"),
    ]
    if not origin or not origin_allowed(allow_origins, origin):
        return out
    wanted = (method or "").upper()
    if wanted != "OPTIONS" and wanted not in _METHODS:
        return out
    asked = [
        canonical_name(item.strip()) for item in (request_headers or "").split(",") if item.strip()
    ]
    out += [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Methods", wanted)]
    if asked:
        out.append(("Access-Control-Allow-Headers", ", ".join(asked)))
    out += [("Access-Control-Allow-Credentials", "true"), ("Access-Control-Max-Age", _MAX_AGE)]
    return out


def cors_headers(allow_origins: Sequence[str], origin: Optional[str]) -> List[Tuple[str, str]]:
    """What rs/cors adds to the answer of a gRPC-Web call: Vary always, the origin and
    credentials for an allowed one (the call is made either way: the browser enforces)."""
    out = [("Vary", "Origin")]
    if origin and origin_allowed(allow_origins, origin):
        out += [
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Allow-Credentials", "true"),
        ]
    return out


def response_headers(
    headers: Iterable[Tuple[str, str]], cors: Iterable[Tuple[str, str]], text: bool
) -> List[Tuple[str, str]]:
    """The head sent to the browser: names in Go's spelling, Content-Type made gRPC-Web's,
    Content-Length and Trailer dropped (the body grows), the CORS lines added, and
    Access-Control-Expose-Headers naming every header plus grpc-status and grpc-message
    (grpc-web's prepareHeaders)."""
    out: List[Tuple[str, str]] = []
    for name, value in headers:
        lname = name.lower()
        if lname in ("content-length", "trailer", "access-control-expose-headers"):
            continue
        if lname == "content-type":
            value = response_content_type(value, text)
        out.append((canonical_name(name), value))
    out.extend(cors)
    names: List[str] = []
    for name, _ in out:
        if name not in names:
            names.append(name)
    expose = ", ".join(names + ["grpc-status", "grpc-message"])
    return [("Access-Control-Expose-Headers", expose)] + out


# -- the step and its sink -----------------------------------------------------------------


@attrs.define(eq=False)
class GrpcWebSink:
    """The answer to a gRPC-Web call on its way back: the head made gRPC-Web's, body chunks
    passed (base64 for ``-text``), and the trailers' frame written before the end."""

    downstream: ResponseSink
    text: bool
    cors: List[Tuple[str, str]]
    response: Optional[Response] = None
    sent: Tuple[str, ...] = ()

    def head(self, response: Response) -> None:
        self.response = response
        response.headers = HeaderList(response_headers(response.headers, self.cors, self.text))
        self.sent = tuple(name for name, _ in response.headers)
        self.downstream.head(response)

    def data(self, chunk: bytes) -> None:
        self.downstream.data(encode_text(chunk) if self.text else chunk)

    def flush(self) -> None:
        self.downstream.flush()

    def end(self) -> None:
        response = self.response
        trailers = response.trailers if response is not None else None
        # A trailers-only answer (grpc-status in the head) ends with an empty frame: its
        # status is in the head already, as with Traefik.
        frame = trailer_frame(trailers or (), self.sent)
        self.downstream.data(encode_text(frame) if self.text else frame)
        self.downstream.end()


@attrs.define(eq=False)
class GrpcWeb:
    """One built grpcWeb step."""

    name: str
    spec: GrpcWebSpec

    def handle(self, request: Request) -> StepResult:
        headers = request.headers
        origins = self.spec.allow_origins
        if is_preflight(request.method, headers.get("Access-Control-Request-Headers")):
            method = headers.get("Access-Control-Request-Method")
            if not method:
                return None  # not a preflight after all: left to the service
            answer = preflight_headers(
                origins,
                headers.get("Origin"),
                method,
                headers.get("Access-Control-Request-Headers"),
            )
            return Answer(200, tuple(answer))
        content_type = headers.get("Content-Type")
        if not is_grpc_web(request.method, content_type):
            return None
        assert content_type is not None
        text = content_type.startswith(GRPC_WEB_TEXT)
        headers.set("Content-Type", request_content_type(content_type))
        request.keep_trailers = True
        cors = cors_headers(origins, headers.get("Origin"))

        def wrap(downstream: ResponseSink) -> ResponseSink:
            return GrpcWebSink(downstream, text, cors)

        request.wrap_response(wrap)
        if not text:
            return None
        read = request.read_body
        assert read is not None  # build refuses an engine without request bodies
        return read(TEXT_BODY_LIMIT).addCallbacks(_decoded, _too_large, callbackArgs=(request,))


def _decoded(body: bytes, request: Request) -> Optional[Answer]:
    try:
        request.new_body = decode_text(body)
    except ValueError as e:
        return Answer(400, (_PLAIN,), f"{e}\n".encode())
    return None


def _too_large(failure: Any) -> Answer:
    failure.trap(BodyTooLarge)
    return Answer(
        413, (("Content-Type", "text/plain; charset=utf-8"),), b"request body too large\n"
    )


def build(spec: GrpcWebSpec, name: str, context: BuildContext) -> GrpcWeb:
    if not getattr(context, "traffic_hooks", False):
        raise BuildError("grpcWeb needs the engine's response-body hook, not wired here")
    if not getattr(context, "request_bodies", False):
        raise BuildError("grpcWeb needs the engine's request-body hook, not wired here")
    return GrpcWeb(name, spec)


KINDS = (MiddlewareKind("grpcWeb", parse, build),)
