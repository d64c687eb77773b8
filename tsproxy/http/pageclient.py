"""The errors middleware's client for its page service: a GET to the Service's first server
(the next on a connection failure), the original Host kept, the answer read whole (bounded)."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from tsproxy.middlewares.base import HeaderList, Request

__all__ = ["page_fetch"]

#: An error page bigger than this is cut (a page service must not exhaust memory).
MAX_PAGE = 1 << 20
TIMEOUT = 10.0


def page_fetch(reactor: Any, servers: Sequence[Any]) -> Any:
    """fetch(Request) -> Deferred[(status, HeaderList, body)] over `servers`."""

    def fetch(request: Request) -> Any:
        import treq
        from twisted.internet import reactor as running

        clock: Any = reactor if reactor is not None else running
        headers: Dict[Any, List[Any]] = {}
        for name, value in request.headers:
            headers.setdefault(name.encode("latin-1"), []).append(value.encode("latin-1"))

        def attempt(index: int) -> Any:
            server = servers[index]
            target = server.forward_target(request.target.encode("latin-1"))
            url = server.origin.encode("latin-1") + target
            d = treq.request("GET", url, headers=headers, reactor=clock, timeout=TIMEOUT)
            d.addCallback(_read)
            if index + 1 < len(servers):
                d.addErrback(lambda _: attempt(index + 1))
            return d

        return attempt(0)

    return fetch


def _read(response: Any) -> Any:
    import treq

    def done(body: bytes) -> Any:
        items = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, values in response.headers.getAllRawHeaders()
            for value in values
        ]
        return response.code, HeaderList(items), body[:MAX_PAGE]

    return treq.content(response).addCallback(done)
