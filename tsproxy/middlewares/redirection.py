"""The step behind an entrypoint's ``http.redirections.entryPoint``: Traefik makes it a
redirectScheme middleware (scheme, the target entrypoint's port, permanent) on a catch-all
internal router; this is that step, so the redirection works whichever kinds are built in.
"""

from __future__ import annotations

from typing import Optional

import attrs

from tsproxy.middlewares.base import Answer, Request

__all__ = ["SchemeRedirect", "redirect_status"]

_TEXT = {
    301: "Moved Permanently",
    302: "Found",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
}
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def redirect_status(method: str, permanent: bool) -> int:
    """Traefik's redirect status: 301/302 for GET, 308/307 for anything else."""
    if permanent:
        return 301 if method == "GET" else 308
    return 302 if method == "GET" else 307


def _hostname(host: str) -> str:
    """The Host header without its port (brackets kept around an IPv6 address)."""
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end >= 0 else host
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else host


@attrs.define(eq=False)
class SchemeRedirect:
    """Answers every request with a redirect to ``scheme``://host[:port]/same-target."""

    name: str
    scheme: str
    port: str
    permanent: bool

    def handle(self, request: Request) -> Optional[Answer]:
        host = _hostname(request.host)
        port = "" if _DEFAULT_PORTS.get(self.scheme) == self.port or not self.port else self.port
        location = f"{self.scheme}://{host}{':' + port if port else ''}{request.target}"
        status = redirect_status(request.method, self.permanent)
        return Answer(
            status,
            (("Location", location), ("Content-Type", "text/plain; charset=utf-8")),
            _TEXT[status].encode("ascii"),
        )
