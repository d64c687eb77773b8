"""What an HTTP/2 stream (tsproxy/http/h2stream.py) uses of the connection that owns it:
a Protocol, so that the stream needs no import of tsproxy/http/h2server.py, which imports it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Protocol

if TYPE_CHECKING:
    from h2.connection import H2Connection
    from twisted.internet.interfaces import ITransport

    from tsproxy.http.entrypoint import HTTPEntryPointFactory

__all__ = ["StreamOwner"]


class StreamOwner(Protocol):
    """What a stream uses of the connection that owns it (tsproxy/http/h2server.py's
    H2ServerConnection), typed apart since that module imports h2stream."""

    @property
    def factory(self) -> HTTPEntryPointFactory: ...

    @property
    def conn(self) -> H2Connection: ...

    @property
    def limits(self) -> _OwnerLimits: ...

    @property
    def transport(self) -> Optional[ITransport]: ...

    @property
    def write_blocked(self) -> bool: ...

    @property
    def peer(self) -> Any: ...

    #: The streams' view of the entrypoint factory while nothing is observed (one per
    #: connection; an observed stream needs its own), made by the first stream.
    shared_stream_factory: Any

    def _forget(self, stream: Any) -> None: ...

    def stream_output(self) -> None: ...


class _OwnerLimits(Protocol):
    @property
    def stream_buffer(self) -> int: ...
