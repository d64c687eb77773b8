"""Helpers for the traffic-control middleware tests: a build context whose engine honours
the exchange hooks, and a pure player of those hooks (response sinks, end hooks) standing in
for the engine."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import attrs

from tests.authfixture import FakeContext
from tsproxy.middlewares.base import ExchangeEnd, HeaderList, Request, Response

__all__ = ["Collected", "HookedContext", "deliver"]


@attrs.define
class HookedContext(FakeContext):
    """A FakeContext whose engine wires `wrap_response`, `on_end` and `retry`."""

    traffic_hooks: bool = True
    services: Dict[str, Callable[[Request], Any]] = attrs.Factory(dict)

    def service_client(self, ref: str) -> Optional[Callable[[Request], Any]]:
        return self.services.get(ref)


@attrs.define
class Collected:
    """The sink nearest the client: what the client got."""

    status: int = 0
    headers: HeaderList = attrs.Factory(HeaderList)
    chunks: List[bytes] = attrs.Factory(list)
    ended: bool = False
    flushes: int = 0

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def head(self, response: Response) -> None:
        assert not self.status, "two heads"
        self.status, self.headers = response.status, response.headers

    def data(self, chunk: bytes) -> None:
        assert self.status and not self.ended
        self.chunks.append(chunk)

    def flush(self) -> None:
        self.flushes += 1

    def end(self) -> None:
        assert self.status and not self.ended
        self.ended = True


def deliver(
    request: Request,
    status: int,
    headers: Any = (),
    writes: Tuple[bytes, ...] = (),
    flush_after: Tuple[int, ...] = (),
    client: Optional[Collected] = None,
) -> Collected:
    """Write a service's answer through the request's hooks and sinks as the engine must:
    head hooks innermost first, then the sinks (first wrapper nearest the client), then the
    end hooks once the client sink saw the end."""
    client = client if client is not None else Collected()
    sink: Any = client
    for wrapper in request.sink_wrappers:
        sink = wrapper(sink)
    response = Response(status, HeaderList(list(headers)), request)
    for hook in reversed(request.response_hooks):
        hook(response)
    sink.head(response)
    for index, chunk in enumerate(writes):
        if chunk:
            sink.data(chunk)
        if index in flush_after:
            sink.flush()
    sink.end()
    if client.ended:
        for hook in request.end_hooks:
            hook(ExchangeEnd(client.status, 0.0))
    return client
