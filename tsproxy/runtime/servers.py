"""A load balancer's server: its address, its URL (with the path as written) and how a
request target is sent to it (Traefik's ``preservePath``). Pure.
"""

from __future__ import annotations

import attrs

from tsproxy.config.resources import TransportSettings

__all__ = ["Server", "join_target"]


@attrs.frozen(cache_hash=True)
class Server:
    """One backend address; ``host`` is bare, ``url`` brackets an IPv6 host and ends in the
    URL's ``path`` as written (escaped; a file-provider server's, else ""). Requests are sent
    with their own target, unless ``preserve_path``: then under ``path`` (Traefik's
    ``preservePath``)."""

    scheme: str
    host: str
    port: int
    url: str
    transport: TransportSettings = TransportSettings()
    path: str = ""
    preserve_path: bool = False

    @classmethod
    def at(
        cls,
        scheme: str,
        host: str,
        port: int,
        transport: TransportSettings,
        path: str = "",
        preserve_path: bool = False,
    ) -> Server:
        shown = f"[{host}]" if ":" in host else host
        url = f"{scheme}://{shown}:{port}{path}"
        return cls(scheme, host, port, url, transport, path, preserve_path)

    @property
    def origin(self) -> str:
        """``scheme://host:port``, the URL without its path."""
        return self.url[: len(self.url) - len(self.path)] if self.path else self.url

    def forward_target(self, target: bytes) -> bytes:
        """The request target sent to this server for ``target`` (origin form)."""
        if not self.preserve_path or not self.path:
            return target
        return join_target(self.path.encode("ascii"), target)


def join_target(base: bytes, target: bytes) -> bytes:
    """Go's JoinURLPath on escaped paths, as Traefik's preservePath applies it: ``base``
    and the target's path joined by exactly one slash, the target's query kept."""
    path, mark, query = target.partition(b"?")
    if base.endswith(b"/") and path.startswith(b"/"):
        path = base + path[1:]
    elif not base.endswith(b"/") and not path.startswith(b"/"):
        path = base + b"/" + path
    else:
        path = base + path
    return path + mark + query
