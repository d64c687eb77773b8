"""The redirecting middlewares: redirectScheme and redirectRegex, as Traefik 3.7 answers them
(302/307, or 301/308 when permanent; the body is the status text, with no Content-Type).

Pure steps over the request head: they answer or let the request continue untouched.
"""

from __future__ import annotations

from typing import Tuple

import attrs

from tsproxy.config.schema import Fields
from tsproxy.middlewares.base import (
    Answer,
    BuildContext,
    BuildError,
    MiddlewareKind,
    Request,
    StepResult,
)
from tsproxy.middlewares.goregexp import GoRegexp, RegexError, compile_go
from tsproxy.middlewares.gourl import status_text, url_parse_error

__all__ = ["KINDS", "redirect_status"]


def redirect_status(method: str, permanent: bool) -> int:
    """Traefik's choice: GET keeps the historical codes, other methods the method-preserving."""
    if permanent:
        return 301 if method == "GET" else 308
    return 302 if method == "GET" else 307


def _redirect(request: Request, location: str, permanent: bool) -> Answer:
    status = redirect_status(request.method, permanent)
    # The entrypoint's Content-Type marker keeps Go from sniffing one for the status text.
    return Answer(status, (("Location", location),), status_text(status).encode("ascii"))


def _uri(request: Request) -> str:
    """The request target as received (Go's RequestURI); an empty path stays empty."""
    return request.path if request.query is None else f"{request.path}?{request.query}"


def _split_host_port(host: str) -> Tuple[str, str]:
    """Host and ":port" ("" without one), as Go's net.SplitHostPort splits a Host header."""
    if host.startswith("["):
        close = host.find("]")
        if close >= 0 and host[close + 1 : close + 2] == ":":
            return host[: close + 1], host[close + 1 :]
        return host, ""
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        return name, ":" + port
    return host, ""


def _port_field(fields: Fields, key: str) -> str:
    """Traefik's port is a string; a bare YAML number gets told to quote itself."""
    value = fields.data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        raise fields.fail(key, 'must be a string (quote it: %s: "%d")' % (key, value))
    return fields.string(key)


# -- redirectScheme ------------------------------------------------------------------------


@attrs.frozen
class RedirectSchemeSpec:
    scheme: str = ""
    port: str = ""
    permanent: bool = False


def parse_redirect_scheme(fields: Fields) -> RedirectSchemeSpec:
    spec = RedirectSchemeSpec(
        scheme=fields.string("scheme"),
        port=_port_field(fields, "port"),
        permanent=fields.boolean("permanent", False),
    )
    fields.done()
    return spec


@attrs.define
class RedirectScheme:
    name: str
    scheme: str
    port: str  # ":8443", or "" (none, or the target scheme's default)
    permanent: bool

    def handle(self, request: Request) -> StepResult:
        host, port = _split_host_port(request.host)
        scheme = "https" if request.tls else "http"
        # Behind a TLS-terminating hop the request arrives as http with X-Forwarded-Proto:
        # honouring it is what keeps an http->https redirect from looping.
        proto = (request.headers.get("X-Forwarded-Proto") or "").lower()
        if proto in ("http", "ws"):
            scheme = "http"
        elif proto in ("https", "wss"):
            scheme = "https"
        if (scheme, port) in (("http", ":80"), ("https", ":443")):
            port = ""
        uri = _uri(request)
        target = f"{self.scheme}://{host}{self.port}{uri}"
        if target == f"{scheme}://{host}{port}{uri}":
            return None
        return _redirect(request, target, self.permanent)


def build_redirect_scheme(
    spec: RedirectSchemeSpec, name: str, context: BuildContext
) -> RedirectScheme:
    if not spec.scheme:
        raise BuildError("you must provide a target scheme")
    port = spec.port
    if not port or (spec.scheme, port) in (("http", "80"), ("https", "443")):
        port = ""
    else:
        port = ":" + port
    return RedirectScheme(name, spec.scheme, port, spec.permanent)


# -- redirectRegex -------------------------------------------------------------------------


@attrs.frozen
class RedirectRegexSpec:
    regex: str = ""
    replacement: str = ""
    permanent: bool = False


def parse_redirect_regex(fields: Fields) -> RedirectRegexSpec:
    spec = RedirectRegexSpec(
        regex=fields.string("regex", required=True),
        replacement=fields.string("replacement"),
        permanent=fields.boolean("permanent", False),
    )
    fields.done()
    return spec


@attrs.define
class RedirectRegex:
    name: str
    expression: GoRegexp
    replacement: str
    permanent: bool

    def handle(self, request: Request) -> StepResult:
        # X-Forwarded-Proto is not consulted here (unlike redirectScheme), as in Traefik.
        scheme = "https" if request.tls else "http"
        old = f"{scheme}://{request.host}{_uri(request)}"
        if self.expression.search(old) is None:
            return None
        new = self.expression.replace_all(old, self.replacement)
        if url_parse_error(new):
            return Answer(502, (), status_text(502).encode("ascii"))
        if new == old:
            return None
        return _redirect(request, new, self.permanent)


def build_redirect_regex(
    spec: RedirectRegexSpec, name: str, context: BuildContext
) -> RedirectRegex:
    try:
        expression = compile_go(spec.regex)
    except RegexError as error:
        raise BuildError("error parsing regexp: %s" % error) from None
    return RedirectRegex(name, expression, spec.replacement, spec.permanent)


KINDS = (
    MiddlewareKind("redirectScheme", parse_redirect_scheme, build_redirect_scheme),
    MiddlewareKind("redirectRegex", parse_redirect_regex, build_redirect_regex),
)
