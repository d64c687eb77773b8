"""The entrypoint's factory and observer as an HTTP/2 stream's exchange sees them
(tsproxy/http/h2stream.py): no connection counting or idle timeout of their own (the HTTP/2
connection has them), exchanges reported as HTTP/2.0 with the stream's trailers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Tuple

import attrs

if TYPE_CHECKING:
    from tsproxy.http.entrypoint import HTTPEntryPointFactory
    from tsproxy.http.h2owner import StreamOwner

__all__ = ["stream_factory"]


class _StreamObserver:
    """The entrypoint's observer as a stream's exchange sees it: no connection counts (the
    TCP connection is counted once), exchanges reported as HTTP/2.0 with their trailers."""

    def __init__(self, real: Any, stream: Any) -> None:
        self.real = real
        self.stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def connection_opened(self, entrypoint: str, protocol: str) -> None:
        pass

    def connection_closed(self, entrypoint: str, protocol: str) -> None:
        pass

    def exchange(self, rec: Any) -> None:
        rec.version = b"HTTP/2.0"
        trailers = self.stream.resp_trailers
        if trailers:
            rec.response_headers = list(rec.response_headers) + list(trailers)
        self.real.exchange(rec)


class _NoConnections:
    """A stream's exchange is not a connection to drain: the HTTP/2 connection is."""

    def add(self, conn: Any) -> None:
        pass

    def discard(self, conn: Any) -> None:
        pass


_NO_CONNECTIONS = _NoConnections()


#: The entrypoint as stream exchanges see it, by the id of the real one: no idle timeout (the
#: HTTP/2 connection has it; an exchange armed and cancelled one per stream otherwise).
_STREAM_ENTRYPOINTS: Dict[int, Tuple[Any, Any]] = {}


def _stream_entrypoint(entrypoint: Any) -> Any:
    known = _STREAM_ENTRYPOINTS.get(id(entrypoint))
    if known is not None and known[0] is entrypoint:
        return known[1]
    if len(_STREAM_ENTRYPOINTS) > 64:
        _STREAM_ENTRYPOINTS.clear()
    seen = attrs.evolve(entrypoint, idle_timeout=0.0)
    _STREAM_ENTRYPOINTS[id(entrypoint)] = (entrypoint, seen)
    return seen


class _StreamFactory:
    """The entrypoint's factory as a stream's exchange sees it."""

    def __init__(self, real: HTTPEntryPointFactory, stream: Any) -> None:
        self.__dict__.update(real.__dict__)
        self._real = real
        self.connections = _NO_CONNECTIONS
        self.entrypoint = _stream_entrypoint(real.entrypoint)
        if real.observer is not None:
            self.observer = _StreamObserver(real.observer, stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def stream_factory(owner: StreamOwner, stream: Any) -> _StreamFactory:
    """The factory a stream's exchange sees: one per connection while nothing is observed
    (the factory's attributes do not change while its connections live), else the stream's
    own, whose observer reports this stream's trailers."""
    real = owner.factory
    if real.observer is not None:
        return _StreamFactory(real, stream)
    shared = owner.shared_stream_factory
    if shared is None or shared._real is not real:
        shared = owner.shared_stream_factory = _StreamFactory(real, stream)
    return shared  # type: ignore[no-any-return]
