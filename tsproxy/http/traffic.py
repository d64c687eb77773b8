"""The engine's end of the response sinks the traffic middlewares wrap (compress, buffering,
errors, circuitBreaker): the sink nearest the client, which frames what reaches it as HTTP/1.1
(Content-Length when the head has one, else chunked, or close for an HTTP/1.0 client)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, List, Tuple

from tsproxy.http.headers import client_response_head
from tsproxy.http.wire import LAST_CHUNK, ResponseHead, encode_chunk
from tsproxy.middlewares.base import HeaderList, Request, Response

__all__ = ["ClientSink", "sink_response"]

_FRAMING = (b"transfer-encoding",)


def sink_response(status: int, headers: Any, request: Request) -> Response:
    """A Response for the sinks from wire headers (bytes pairs), framing headers left out
    except Content-Length (a sink that changes the body drops it)."""
    text: List[Tuple[str, str]] = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in headers
        if name.lower() not in _FRAMING
    ]
    return Response(status, HeaderList(text), request)


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


class ClientSink:
    """Writes the response to the connection `conn` (an HTTPServerConnection): `head` once,
    then the body framed, then `end` hands back to the connection (`sink_ended`)."""

    def __init__(self, conn: Any, head_only: bool, http10: bool, extra: Any = ()) -> None:
        self.conn = conn
        self.head_only = head_only
        self.http10 = http10
        self.extra = extra
        self.framing = "none"
        self.status = 0

    def head(self, response: Response) -> None:
        conn = self.conn
        self.status = response.status
        length = response.headers.get("Content-Length")
        size = 0
        if self.head_only or response.status in (204, 304):
            self.framing = "none"
        elif length is not None and length.strip().isdigit():
            self.framing = "length"
            size = int(length)
        elif self.http10:
            self.framing = "close"
            conn.keep_alive = False
        else:
            self.framing = "chunked"
        if not conn.req_body_done:
            conn.keep_alive = False
        head = ResponseHead(
            version_minor=1,
            status=response.status,
            reason=_reason(response.status),
            headers=[(n.encode("latin-1"), v.encode("latin-1")) for n, v in response.headers],
            content_length=size,  # the Content-Length the head says, not 0
        )
        conn.sink_head(
            client_response_head(
                head,
                framing_out=self.framing,
                keep_alive=conn.keep_alive,
                client_http10=self.http10,
                extra=self.extra,
            ),
            response.status,
        )

    def data(self, chunk: bytes) -> None:
        if self.framing == "none" or not chunk:
            return
        conn = self.conn
        if self.framing == "chunked":
            conn.transport.writeSequence(encode_chunk(chunk))
        else:
            conn.transport.write(chunk)
        conn.resp_bytes += len(chunk)

    def flush(self) -> None:
        """Writes go out as they come: nothing is held here."""

    def end(self) -> None:
        if self.framing == "chunked":
            self.conn.transport.write(LAST_CHUNK)
        self.conn.sink_ended()
