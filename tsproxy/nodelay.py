"""TCP_NODELAY on every TCP connection the proxy makes or accepts.

Go sets it on every TCP connection by default, so Traefik never lets Nagle's algorithm hold a
small segment back while an earlier one is unacknowledged. Without it, a response or HTTP/2
frame written after another (a gRPC reply's DATA then its trailers, a request head then its
body) waits for the peer's delayed ACK: about 40 ms per exchange on Linux.
"""

from __future__ import annotations

from typing import Any

__all__ = ["set_no_delay"]


def set_no_delay(transport: Any) -> None:
    """Turn Nagle off on `transport`'s socket; TLS wrappers pass the call to the socket below.

    Transports without a TCP socket (in-memory, UNIX) are left as they are."""
    setter = getattr(transport, "setTcpNoDelay", None)
    if setter is None:
        return
    try:
        setter(True)
    except (OSError, AttributeError, NotImplementedError):
        pass
