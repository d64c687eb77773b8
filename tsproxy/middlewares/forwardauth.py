"""Traefik's forwardAuth middleware: ask an auth server about each request; a 2xx lets it go on
(with chosen auth headers and cookies), any other answer goes back to the client as it is.

The auth request's head is built purely (`auth_request_headers`); the call goes through an
`AuthClient` (authclient.AgentAuthClient in the proxy, a fake in tests).
"""

from __future__ import annotations

import html
from typing import Any, Callable, List, Optional, Sequence, Tuple
from urllib.parse import urljoin, urlsplit

import attrs
from twisted.internet.defer import CancelledError, maybeDeferred

from tsproxy.config.schema import FieldError, Fields
from tsproxy.middlewares.authclient import (
    AgentAuthClient,
    AuthClient,
    AuthResponse,
    ResponseTooLarge,
    TLSMaterial,
    tls_policy,
)
from tsproxy.middlewares.base import (
    Answer,
    BodyTooLarge,
    BuildContext,
    BuildError,
    HeaderList,
    MiddlewareKind,
    Request,
    Response,
    StepResult,
    canonical_name,
)
from tsproxy.rules.regex import RegexError, compile_search

__all__ = [
    "KINDS",
    "ForwardAuth",
    "ForwardAuthSpec",
    "auth_request_headers",
    "remove_connection_headers",
]

HOP_BY_HOP = ("Connection", "Keep-Alive", "Te", "Trailers", "Transfer-Encoding", "Upgrade")
#: The X- headers Traefik manages; untrusted copies never reach the auth server.
MANAGED = (
    "X-Forwarded-Proto",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Forwarded-Server",
    "X-Forwarded-Uri",
    "X-Forwarded-Method",
    "X-Forwarded-Prefix",
    "X-Forwarded-Scheme",
    "X-Forwarded-Tls-Client-Cert",
    "X-Forwarded-Tls-Client-Cert-Info",
    "X-Scheme",
    "X-Real-Ip",
)
# Also spelled with "_" (X_Forwarded_For): some servers read both as the same variable.
_MANAGED_KEYS = frozenset(name.lower() for name in MANAGED) | frozenset(
    name.lower().replace("-", "_") for name in MANAGED
)
# The names the entrypoint would have removed from an untrusted peer before any middleware.
_ENTRYPOINT_MANAGED = frozenset(name.lower() for name in MANAGED)
# Set by forwardAuth itself; allowed through authRequestHeaders when trustForwardHeader.
_SET_HERE = (
    "X-Forwarded-For",
    "X-Forwarded-Method",
    "X-Forwarded-Proto",
    "X-Forwarded-Port",
    "X-Forwarded-Host",
    "X-Forwarded-Uri",
)


@attrs.frozen
class ForwardAuthTLSSpec:
    ca_secret: str = ""
    cert_secret: str = ""
    insecure_skip_verify: bool = False


@attrs.frozen
class ForwardAuthSpec:
    address: str
    #: None: unset, Traefik's legacy header mode.
    trust_forward_header: Optional[bool] = None
    auth_response_headers: Tuple[str, ...] = ()
    auth_response_headers_regex: str = ""
    auth_request_headers: Tuple[str, ...] = ()
    add_auth_cookies_to_response: Tuple[str, ...] = ()
    forward_body: bool = False
    max_body_size: int = -1
    max_response_body_size: int = -1
    header_field: str = ""
    preserve_location_header: bool = False
    preserve_request_method: bool = False
    auth_signin_url: str = ""
    tls: Optional[ForwardAuthTLSSpec] = None


def _url(fields: Fields, key: str, required: bool) -> str:
    value = fields.string(key, required=required)
    if not value:
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise fields.fail(key, f"must be an http:// or https:// URL with a host, not {value!r}")
    return value


def _tls(fields: Fields) -> Optional[ForwardAuthTLSSpec]:
    section = fields.mapping("tls")
    if section is None:
        return None
    for key in ("ca", "cert", "key"):
        if section.has(key):
            raise section.fail(
                key,
                "names a file in Traefik's file provider; in a Middleware resource use "
                "caSecret / certSecret",
            )
    spec = ForwardAuthTLSSpec(
        ca_secret=section.string("caSecret"),
        cert_secret=section.string("certSecret"),
        insecure_skip_verify=section.boolean("insecureSkipVerify", False),
    )
    section.done({"caOptional": "deprecated and ignored, as in Traefik"})
    return spec


def _header_names(fields: Fields, key: str) -> Tuple[str, ...]:
    names = fields.strings(key)
    for (_item, path, line), name in zip(fields.items(key), names):
        if not name or any(c in name for c in " \t\r\n:"):
            raise FieldError(line, path, f"{name!r} is not a header name")
    return names


def parse(fields: Fields) -> ForwardAuthSpec:
    address = _url(fields, "address", True)
    trust: Optional[bool] = None
    if fields.has("trustForwardHeader"):
        trust = fields.boolean("trustForwardHeader", False)
    regex = fields.string("authResponseHeadersRegex")
    if regex:
        try:
            compile_search(regex)
        except RegexError as exc:
            raise fields.fail("authResponseHeadersRegex", f"invalid regexp: {exc}") from None
    spec = ForwardAuthSpec(
        address=address,
        trust_forward_header=trust,
        auth_response_headers=_header_names(fields, "authResponseHeaders"),
        auth_response_headers_regex=regex,
        auth_request_headers=_header_names(fields, "authRequestHeaders"),
        add_auth_cookies_to_response=fields.strings("addAuthCookiesToResponse"),
        forward_body=fields.boolean("forwardBody", False),
        max_body_size=fields.integer("maxBodySize", -1, minimum=-1),
        max_response_body_size=fields.integer("maxResponseBodySize", -1, minimum=-1),
        header_field=fields.string("headerField"),
        preserve_location_header=fields.boolean("preserveLocationHeader", False),
        preserve_request_method=fields.boolean("preserveRequestMethod", False),
        auth_signin_url=_url(fields, "authSigninURL", False),
        tls=_tls(fields),
    )
    fields.done()
    return spec


def _token_list(values: Sequence[str]) -> List[str]:
    return [token.strip() for value in values for token in value.split(",") if token.strip()]


def remove_connection_headers(headers: HeaderList) -> None:
    """Drop the headers the Connection header names, and Connection itself; an Upgrade it
    names stays, as ``Connection: Upgrade`` (Traefik's connectionheader.Remover)."""
    tokens = _token_list(headers.get_all("Connection"))
    upgrade = False
    for token in tokens:
        if token.lower() == "upgrade":
            upgrade = True
            continue
        headers.remove(token)
    headers.remove("Connection")
    if upgrade:
        headers.add("Connection", "Upgrade")


def _host_port(host: str) -> str:
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1 :] if end >= 0 else ""
        return rest[1:] if rest.startswith(":") else ""
    if host.count(":") == 1:
        return host.rsplit(":", 1)[1]
    return ""


def auth_request_headers(
    request: Request,
    trust: Optional[bool],
    allowed: Sequence[str],
) -> HeaderList:
    """The header list sent to the auth server for `request` (Traefik's writeHeader, or its
    legacy form when trustForwardHeader is unset)."""
    headers = HeaderList(
        (name, value)
        for name, value in request.headers
        if name.lower() not in ("host", "content-length")
    )
    if not request.forwarded_trusted:
        # Traefik's entrypoint would already have removed these from an untrusted peer.
        for name in _ENTRYPOINT_MANAGED:
            headers.remove(name)
    remove_connection_headers(headers)
    for name in HOP_BY_HOP:
        headers.remove(name)
    legacy = trust is None
    trusted = bool(trust)
    if not legacy and not trusted:
        headers.items = [(k, v) for k, v in headers.items if k.lower() not in _MANAGED_KEYS]
    if not legacy and request.headers.get("User-Agent") is None:
        headers.set("User-Agent", "")
    if allowed:
        keep = {name.lower() for name in allowed}
        if trusted:
            keep.update(name.lower() for name in _SET_HERE)
        headers.items = [(k, v) for k, v in headers.items if k.lower() in keep]

    def given(name: str) -> Optional[str]:
        return headers.get(name) if trusted else None

    client = request.client_ip
    if client:
        prior = headers.get_all("X-Forwarded-For") if trusted else []
        headers.set("X-Forwarded-For", ", ".join([*prior, client]))
    headers.set("X-Forwarded-Method", given("X-Forwarded-Method") or request.method)
    proto = given("X-Forwarded-Proto") or ("https" if request.tls else "http")
    headers.set("X-Forwarded-Proto", proto)
    host = request.host
    if not legacy:
        port = given("X-Forwarded-Port") or _host_port(host)
        if not port:
            port = "443" if proto in ("https", "wss") or request.tls else "80"
        headers.set("X-Forwarded-Port", port)
    forwarded_host = given("X-Forwarded-Host") or host
    if forwarded_host or legacy:
        headers.set("X-Forwarded-Host", forwarded_host)
    else:
        headers.remove("X-Forwarded-Host")
    headers.set("X-Forwarded-Uri", given("X-Forwarded-Uri") or request.target)
    return headers


def _cookie_name(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[0].strip()


def _copy_headers(
    request: Request,
    auth: AuthResponse,
    names: Sequence[str],
    regex: Optional[Callable[[str], bool]],
) -> None:
    auth_headers = HeaderList(auth.headers)
    for name in names:
        request.headers.remove(name)
        for value in auth_headers.get_all(name):
            request.headers.add(name, value)
    if regex is not None:
        request.headers.items = [
            (k, v) for k, v in request.headers.items if not regex(canonical_name(k))
        ]
        for key, value in auth.headers:
            if regex(canonical_name(key)):
                request.headers.add(key, value)


@attrs.define(eq=False)
class ForwardAuth:
    """One built forwardAuth step."""

    name: str
    spec: ForwardAuthSpec
    client: AuthClient
    allowed: Tuple[str, ...]
    regex: Optional[Callable[[str], bool]] = None

    def close(self) -> Any:
        """Close the auth client's pooled connections (the proxy stops)."""
        close = getattr(self.client, "close", None)
        return close() if close is not None else None

    def handle(self, request: Request) -> StepResult:
        d = maybeDeferred(self._body, request)
        d.addCallback(self._ask, request)
        d.addErrback(self._failed)
        return d

    def _body(self, request: Request) -> Any:
        spec = self.spec
        if not spec.forward_body:
            return None
        if request.method == "CONNECT" and request.headers.get("Content-Length") is None:
            return None  # tunnel data, not a body
        if request.read_body is None:  # build refuses forwardBody without request_bodies
            raise RuntimeError("the engine did not give the request body")
        return request.read_body(spec.max_body_size)

    def _ask(self, body: Optional[bytes], request: Request) -> Any:
        spec = self.spec
        headers = auth_request_headers(request, spec.trust_forward_header, self.allowed)
        method = request.method if spec.preserve_request_method else "GET"
        d = self.client.request(
            method, spec.address, list(headers), body, spec.max_response_body_size
        )
        return d.addCallback(self._decide, request)

    def _decide(self, auth: AuthResponse, request: Request) -> StepResult:
        spec = self.spec
        if not 200 <= auth.status < 300:
            return self._refusal(auth, request)
        _copy_headers(request, auth, spec.auth_response_headers, self.regex)
        if spec.header_field:
            user = HeaderList(auth.headers).get(spec.header_field)
            if user:
                request.notes["auth_user"] = user
        wanted = set(spec.add_auth_cookies_to_response)
        auth_cookies = [
            value
            for key, value in auth.headers
            if key.lower() == "set-cookie" and _cookie_name(value) in wanted
        ]
        if wanted and any(key.lower() == "set-cookie" for key, _ in auth.headers):
            request.on_response(lambda response: _merge_cookies(response, wanted, auth_cookies))
        return None

    def _refusal(self, auth: AuthResponse, request: Request) -> Answer:
        spec = self.spec
        if spec.auth_signin_url and auth.status == 401:
            return _redirect(spec.auth_signin_url, request.method)
        headers = HeaderList(auth.headers)
        for name in (*HOP_BY_HOP, "Content-Length"):
            headers.remove(name)
        location = headers.get("Location")
        if location and not spec.preserve_location_header:
            headers.set("Location", urljoin(spec.address, location))
        return Answer(auth.status, tuple(headers), auth.body)

    def _failed(self, failure: Any) -> Answer:
        # Agent wraps a cancellation in ResponseNeverReceived & co. (`reasons`).
        reasons = [failure, *getattr(failure.value, "reasons", ())]
        if any(reason.check(CancelledError) for reason in reasons):
            return Answer(499)
        if failure.check(BodyTooLarge, ResponseTooLarge):
            return Answer(401)
        return Answer(
            500,
            (("Content-Type", "text/plain; charset=utf-8"),),
            b"Internal Server Error",
        )


def _merge_cookies(response: Response, wanted: set, auth_cookies: List[str]) -> None:
    """Backend cookies named in addAuthCookiesToResponse give way to the auth server's."""
    kept = [v for v in response.headers.get_all("Set-Cookie") if _cookie_name(v) not in wanted]
    response.headers.remove("Set-Cookie")
    for value in [*kept, *auth_cookies]:
        response.headers.add("Set-Cookie", value)


def _redirect(url: str, method: str) -> Answer:
    """Go's http.Redirect with 302."""
    headers: Tuple[Tuple[str, str], ...] = (("Location", url),)
    body = b""
    if method in ("GET", "HEAD"):
        headers += (("Content-Type", "text/html; charset=utf-8"),)
        body = ('<a href="%s">Found</a>.\n\n' % html.escape(url)).encode("utf-8")
    return Answer(302, headers, body)


def _secret_pem(context: BuildContext, name: str, keys: Sequence[str], what: str) -> bytes:
    data = context.secret(name)
    if data is None:
        raise BuildError(f"tls: secret {context.namespace}/{name} not found")
    for key in keys:
        if data.get(key):
            return data[key]
    raise BuildError(
        f"tls: secret {context.namespace}/{name} has no {what} (keys: {', '.join(keys)})"
    )


def tls_material(spec: ForwardAuthTLSSpec, context: BuildContext) -> TLSMaterial:
    """The PEM material the spec's Secrets hold (Traefik's caSecret / certSecret keys)."""
    ca = cert = key = None
    if spec.ca_secret:
        ca = _secret_pem(context, spec.ca_secret, ("tls.ca", "ca.crt"), "CA certificate")
    if spec.cert_secret:
        cert = _secret_pem(context, spec.cert_secret, ("tls.crt",), "certificate")
        key = _secret_pem(context, spec.cert_secret, ("tls.key",), "private key")
    return TLSMaterial(ca, cert, key, spec.insecure_skip_verify)


def build(
    spec: ForwardAuthSpec,
    name: str,
    context: BuildContext,
    client: Optional[AuthClient] = None,
) -> ForwardAuth:
    if spec.forward_body and not getattr(context, "request_bodies", False):
        raise BuildError(
            "forwardBody needs the request body, which this engine does not buffer yet"
        )
    regex = None
    if spec.auth_response_headers_regex:
        regex = compile_search(spec.auth_response_headers_regex)
    if client is None:
        policy = None
        if spec.tls is not None:
            material = tls_material(spec.tls, context)
            try:
                policy = tls_policy(material)
            except Exception as exc:  # pyOpenSSL / Twisted raise several kinds for bad PEM
                raise BuildError(f"tls: cannot use the certificates: {exc}") from None
        client = AgentAuthClient(context.reactor, policy)
    elif spec.tls is not None:
        tls_material(spec.tls, context)
    return ForwardAuth(name, spec, client, spec.auth_request_headers, regex)


KINDS = (MiddlewareKind("forwardAuth", parse, build),)
