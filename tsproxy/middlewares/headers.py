"""The headers middleware: custom request/response headers, CORS (preflights answered here)
and the security headers of github.com/unrolled/secure, as Traefik 3.7 combines them.

A pure step: request changes in place, response changes through one response hook.
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple

import attrs

from tsproxy.config.schema import Fields
from tsproxy.middlewares.base import (
    Answer,
    BuildContext,
    BuildError,
    HeaderList,
    MiddlewareKind,
    Request,
    Response,
    StepResult,
)
from tsproxy.middlewares.gourl import http_error
from tsproxy.rules import regex

__all__ = ["KINDS", "HeadersSpec", "has_cors_headers", "has_custom_headers", "has_secure_headers"]

#: A note for the engine: do not add X-Forwarded-For (customRequestHeaders X-Forwarded-For: "").
NO_X_FORWARDED_FOR = "no_x_forwarded_for"

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\r\n\x00]")

Pairs = Tuple[Tuple[str, str], ...]


@attrs.frozen
class HeadersSpec:
    """Traefik's dynamic.Headers (3.7), field by field."""

    custom_request_headers: Pairs = ()
    custom_response_headers: Pairs = ()
    access_control_allow_credentials: bool = False
    access_control_allow_headers: Tuple[str, ...] = ()
    access_control_allow_methods: Tuple[str, ...] = ()
    access_control_allow_origin_list: Tuple[str, ...] = ()
    access_control_allow_origin_list_regex: Tuple[str, ...] = ()
    access_control_expose_headers: Tuple[str, ...] = ()
    access_control_max_age: Optional[int] = None
    add_vary_header: bool = False
    allowed_hosts: Tuple[str, ...] = ()
    hosts_proxy_headers: Tuple[str, ...] = ()
    ssl_proxy_headers: Pairs = ()
    sts_seconds: Optional[int] = None
    sts_include_subdomains: bool = False
    sts_preload: bool = False
    force_sts_header: bool = False
    frame_deny: bool = False
    custom_frame_options_value: str = ""
    content_type_nosniff: bool = False
    browser_xss_filter: bool = False
    custom_browser_xss_value: str = ""
    content_security_policy: str = ""
    content_security_policy_report_only: str = ""
    public_key: str = ""
    referrer_policy: str = ""
    permissions_policy: str = ""
    is_development: bool = False


_REMOVED = "removed in Traefik v3 (parsed and ignored there too)"
_DEPRECATED = {
    "sslRedirect": _REMOVED + "; use a redirectScheme middleware",
    "sslTemporaryRedirect": _REMOVED + "; use a redirectScheme middleware",
    "sslHost": _REMOVED + "; use a redirectRegex middleware",
    "sslForceHost": _REMOVED + "; use a redirectRegex middleware",
    "featurePolicy": _REMOVED + "; use permissionsPolicy",
}


def _header_map(fields: Fields, key: str) -> Pairs:
    section = fields.mapping(key)
    if section is None:
        return ()
    pairs = []
    for name in list(section.data):
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise section.fail(str(name), "is not a valid header name")
        value = section.string(name)
        if _BAD_VALUE.search(value):
            raise section.fail(name, "must not contain CR, LF or NUL")
        pairs.append((name, value))
    return tuple(pairs)


def _optional_int(fields: Fields, key: str) -> Optional[int]:
    """An int64 Traefik keeps as a pointer: absent is None, an explicit 0 is 0."""
    present = fields.has(key)
    value = fields.integer(key, 0, minimum=-(2**63), maximum=2**63 - 1)
    return value if present else None


def _value(fields: Fields, key: str) -> str:
    value = fields.string(key)
    if _BAD_VALUE.search(value):
        raise fields.fail(key, "must not contain CR, LF or NUL")
    return value


def _values(fields: Fields, key: str) -> Tuple[str, ...]:
    values = fields.strings(key)
    for index, value in enumerate(values):
        if _BAD_VALUE.search(value):
            raise fields.fail(key, "item %d must not contain CR, LF or NUL" % index)
    return values


def parse_headers(fields: Fields) -> HeadersSpec:
    spec = HeadersSpec(
        custom_request_headers=_header_map(fields, "customRequestHeaders"),
        custom_response_headers=_header_map(fields, "customResponseHeaders"),
        access_control_allow_credentials=fields.boolean("accessControlAllowCredentials", False),
        access_control_allow_headers=_values(fields, "accessControlAllowHeaders"),
        access_control_allow_methods=_values(fields, "accessControlAllowMethods"),
        access_control_allow_origin_list=_values(fields, "accessControlAllowOriginList"),
        access_control_allow_origin_list_regex=fields.strings("accessControlAllowOriginListRegex"),
        access_control_expose_headers=_values(fields, "accessControlExposeHeaders"),
        access_control_max_age=_optional_int(fields, "accessControlMaxAge"),
        add_vary_header=fields.boolean("addVaryHeader", False),
        allowed_hosts=fields.strings("allowedHosts"),
        hosts_proxy_headers=fields.strings("hostsProxyHeaders"),
        ssl_proxy_headers=_header_map(fields, "sslProxyHeaders"),
        sts_seconds=_optional_int(fields, "stsSeconds"),
        sts_include_subdomains=fields.boolean("stsIncludeSubdomains", False),
        sts_preload=fields.boolean("stsPreload", False),
        force_sts_header=fields.boolean("forceSTSHeader", False),
        frame_deny=fields.boolean("frameDeny", False),
        custom_frame_options_value=_value(fields, "customFrameOptionsValue"),
        content_type_nosniff=fields.boolean("contentTypeNosniff", False),
        browser_xss_filter=fields.boolean("browserXssFilter", False),
        custom_browser_xss_value=_value(fields, "customBrowserXSSValue"),
        content_security_policy=_value(fields, "contentSecurityPolicy"),
        content_security_policy_report_only=_value(fields, "contentSecurityPolicyReportOnly"),
        public_key=_value(fields, "publicKey"),
        referrer_policy=_value(fields, "referrerPolicy"),
        permissions_policy=_value(fields, "permissionsPolicy"),
        is_development=fields.boolean("isDevelopment", False),
    )
    fields.done(_DEPRECATED)
    return spec


def has_custom_headers(spec: HeadersSpec) -> bool:
    return bool(spec.custom_request_headers or spec.custom_response_headers)


def has_cors_headers(spec: HeadersSpec) -> bool:
    return bool(
        spec.access_control_allow_credentials
        or spec.access_control_allow_headers
        or spec.access_control_allow_methods
        or spec.access_control_allow_origin_list
        or spec.access_control_allow_origin_list_regex
        or spec.access_control_expose_headers
        or spec.access_control_max_age is not None
        or spec.add_vary_header
    )


def has_secure_headers(spec: HeadersSpec) -> bool:
    """Traefik's HasSecureHeadersDefined: an explicit stsSeconds: 0 counts."""
    return bool(
        spec.allowed_hosts
        or spec.hosts_proxy_headers
        or spec.ssl_proxy_headers
        or spec.sts_seconds is not None
        or spec.sts_include_subdomains
        or spec.sts_preload
        or spec.force_sts_header
        or spec.frame_deny
        or spec.custom_frame_options_value
        or spec.content_type_nosniff
        or spec.browser_xss_filter
        or spec.custom_browser_xss_value
        or spec.content_security_policy
        or spec.content_security_policy_report_only
        or spec.public_key
        or spec.referrer_policy
        or spec.permissions_policy
        or spec.is_development
    )


def _set_or_delete(headers: HeaderList, pairs: Pairs) -> None:
    for name, value in pairs:
        if value:
            headers.set(name, value)
        else:
            headers.remove(name)


@attrs.define
class Headers:
    """The built step; `custom` is Traefik's Header handler (custom + CORS), `secure` its
    secureHeader handler, the latter inside the former as Traefik chains them."""

    name: str
    spec: HeadersSpec
    custom: bool
    secure: bool
    origin_regexes: Tuple[regex.Search, ...] = ()

    # -- request side ----------------------------------------------------------------------

    def handle(self, request: Request) -> StepResult:
        spec = self.spec
        if self.custom:
            if has_cors_headers(spec) and self._is_preflight(request):
                return self._preflight(request)
            self._custom_request_headers(request)
        if self.secure:
            bad_host = self._bad_host(request)
            if bad_host is not None:
                return bad_host
        secure_headers = self._secure_headers(request) if self.secure else ()
        request.on_response(lambda response: self._on_response(response, secure_headers))
        return None

    def _custom_request_headers(self, request: Request) -> None:
        for name, value in self.spec.custom_request_headers:
            if not value:
                if name == "X-Forwarded-For":
                    # Go's nil-valued map entry: the reverse proxy then adds none either.
                    request.notes[NO_X_FORWARDED_FOR] = True
                if name.lower() != "host":  # Go's req.Host is not in the header map
                    request.headers.remove(name)
            else:
                request.headers.set("Host" if name.lower() == "host" else name, value)

    @staticmethod
    def _is_preflight(request: Request) -> bool:
        return bool(
            request.method == "OPTIONS"
            and request.headers.get("Access-Control-Request-Method")
            and request.headers.get("Origin")
        )

    def _preflight(self, request: Request) -> Answer:
        spec = self.spec
        credentials = spec.access_control_allow_credentials
        headers = HeaderList()
        if credentials:
            headers.set("Access-Control-Allow-Credentials", "true")
        if "*" in spec.access_control_allow_headers and credentials:
            requested = request.headers.get("Access-Control-Request-Headers") or ""
            if requested:
                headers.set("Access-Control-Allow-Headers", requested)
        elif spec.access_control_allow_headers:
            headers.set("Access-Control-Allow-Headers", ",".join(spec.access_control_allow_headers))
        if "*" in spec.access_control_allow_methods and credentials:
            method = request.headers.get("Access-Control-Request-Method") or ""
            headers.set("Access-Control-Allow-Methods", method)
        elif spec.access_control_allow_methods:
            headers.set("Access-Control-Allow-Methods", ",".join(spec.access_control_allow_methods))
        allowed = self._allowed_origin(request.headers.get("Origin") or "")
        if allowed is not None:
            headers.set("Access-Control-Allow-Origin", allowed)
        if spec.access_control_max_age is not None:
            headers.set("Access-Control-Max-Age", str(spec.access_control_max_age))
        self._expose_headers(headers)
        return Answer(200, tuple(headers))

    def _allowed_origin(self, origin: str) -> Optional[str]:
        """The Access-Control-Allow-Origin value for `origin`, or None when not allowed."""
        # The list in order: a "*" before the exact entry wins (checked against Traefik 3.7).
        for item in self.spec.access_control_allow_origin_list:
            if item == "*":
                # With credentials a literal "*" is not honoured by browsers: echo the origin.
                return origin if self.spec.access_control_allow_credentials else "*"
            if item == origin:
                return origin
        for search in self.origin_regexes:
            if search(origin):
                return origin
        return None

    def _expose_headers(self, headers: HeaderList) -> None:
        expose = self.spec.access_control_expose_headers
        if expose and not ("*" in expose and self.spec.access_control_allow_credentials):
            headers.set("Access-Control-Expose-Headers", ",".join(expose))

    # -- security headers (unrolled/secure) ------------------------------------------------

    def _bad_host(self, request: Request) -> Optional[Answer]:
        spec = self.spec
        if not spec.allowed_hosts or spec.is_development:
            return None
        host = request.host
        for header in spec.hosts_proxy_headers:
            value = request.headers.get(header)
            if value:
                host = value
                break
        if any(allowed.lower() == host.lower() for allowed in spec.allowed_hosts):
            return None
        answer = http_error(500, "Bad Host")
        if not self.custom:
            return answer
        # Traefik's custom/CORS handler wraps the secure one: its response changes apply.
        response = Response(answer.status, HeaderList(answer.headers), request)
        self._custom_response(response)
        return attrs.evolve(answer, headers=tuple(response.headers))

    def _secure_headers(self, request: Request) -> Pairs:
        """The headers unrolled/secure computes from the request, set on the response."""
        spec = self.spec
        ssl = request.tls or any(
            request.headers.get(name) == value for name, value in spec.ssl_proxy_headers
        )
        out: List[Tuple[str, str]] = []
        if spec.sts_seconds and (ssl or spec.force_sts_header) and not spec.is_development:
            value = "max-age=%d" % spec.sts_seconds
            if spec.sts_include_subdomains:
                value += "; includeSubDomains"
            if spec.sts_preload:
                value += "; preload"
            out.append(("Strict-Transport-Security", value))
        if spec.custom_frame_options_value:
            out.append(("X-Frame-Options", spec.custom_frame_options_value))
        elif spec.frame_deny:
            out.append(("X-Frame-Options", "DENY"))
        if spec.content_type_nosniff:
            out.append(("X-Content-Type-Options", "nosniff"))
        if spec.custom_browser_xss_value:
            out.append(("X-XSS-Protection", spec.custom_browser_xss_value))
        elif spec.browser_xss_filter:
            out.append(("X-XSS-Protection", "1; mode=block"))
        if spec.public_key and ssl and not spec.is_development:
            out.append(("Public-Key-Pins", spec.public_key))
        if spec.content_security_policy:
            out.append(("Content-Security-Policy", spec.content_security_policy))
        if spec.content_security_policy_report_only:
            out.append(
                ("Content-Security-Policy-Report-Only", spec.content_security_policy_report_only)
            )
        if spec.referrer_policy:
            out.append(("Referrer-Policy", spec.referrer_policy))
        if spec.permissions_policy:
            out.append(("Permissions-Policy", spec.permissions_policy))
        return tuple(out)

    # -- response side ---------------------------------------------------------------------

    def _on_response(self, response: Response, secure_headers: Pairs) -> None:
        for name, value in secure_headers:
            response.headers.set(name, value)
        if self.custom:
            self._custom_response(response)

    def _custom_response(self, response: Response) -> None:
        spec = self.spec
        headers = response.headers
        _set_or_delete(headers, spec.custom_response_headers)
        allowed = self._allowed_origin(response.request.headers.get("Origin") or "")
        if allowed is not None:
            headers.set("Access-Control-Allow-Origin", allowed)
        if spec.access_control_allow_credentials:
            headers.set("Access-Control-Allow-Credentials", "true")
        self._expose_headers(headers)
        if not spec.add_vary_header:
            return
        vary = headers.get("Vary") or ""
        if vary == "Origin":
            return
        headers.set("Vary", vary + ",Origin" if vary else "Origin")


def _origin_regexes(spec: HeadersSpec) -> Tuple[regex.Search, ...]:
    searches = []
    for pattern in spec.access_control_allow_origin_list_regex:
        try:
            searches.append(regex.compile_search(pattern))
        except regex.RegexError as error:
            raise BuildError(
                "error occurred during origin parsing: error parsing regexp: %s" % error
            ) from None
    return tuple(searches)


def build_parts(spec: HeadersSpec, name: str, custom: bool, secure: bool) -> Headers:
    """One or both of Traefik's two handlers, without the whole middleware's validation."""
    return Headers(name, spec, custom, secure, _origin_regexes(spec) if custom else ())


def build_headers(spec: HeadersSpec, name: str, context: BuildContext) -> Headers:
    custom = has_custom_headers(spec) or has_cors_headers(spec)
    secure = has_secure_headers(spec)
    if not custom and not secure:
        raise BuildError("headers configuration not valid")
    return build_parts(spec, name, custom, secure)


KINDS = (MiddlewareKind("headers", parse_headers, build_headers),)
