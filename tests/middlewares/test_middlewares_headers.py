"""Tests for tsproxy.middlewares.headers: the Traefik vectors (custom headers, CORS, security
headers, classification), located parse errors, and the orders Traefik applies things in."""

from __future__ import annotations

from typing import Dict, Tuple

from twisted.trial.unittest import SynchronousTestCase

from tests.mwvectors import add_vector_tests, build, parse_error, parse_notices
from tsproxy.middlewares.base import Answer, BuildError, HeaderList, Request, Response
from tsproxy.middlewares.headers import NO_X_FORWARDED_FOR


class HeadersVectorTests(SynchronousTestCase):
    """headers.json, every case."""


add_vector_tests(HeadersVectorTests, "headers.json", "headers")

PARSE_ERRORS = [
    (
        "headers",
        "spec:\n  customRequestHeaders: [a]\n",
        2,
        "spec.customRequestHeaders: must be a mapping",
    ),
    (
        "headers",
        "spec:\n  customRequestHeaders:\n    X-A: 1\n",
        3,
        "spec.customRequestHeaders.X-A: must be a string",
    ),
    (
        "headers",
        "spec:\n  customResponseHeaders:\n    'X A': b\n",
        3,
        "spec.customResponseHeaders.X A: is not a valid header name",
    ),
    (
        "headers",
        'spec:\n  customResponseHeaders:\n    X-A: "b\\r\\nX-B: c"\n',
        3,
        "spec.customResponseHeaders.X-A: must not contain CR, LF or NUL",
    ),
    (
        "headers",
        "spec:\n  accessControlMaxAge: 1m\n",
        2,
        "spec.accessControlMaxAge: must be an integer between -9223372036854775808 and "
        "9223372036854775807",
    ),
    (
        "headers",
        "spec:\n  accessControlAllowOriginList: '*'\n",
        2,
        "spec.accessControlAllowOriginList: must be a list",
    ),
    (
        "headers",
        "spec:\n  stsSeconds: '31536000'\n",
        2,
        "spec.stsSeconds: must be an integer between -9223372036854775808 and 9223372036854775807",
    ),
    ("headers", "spec:\n  frameDeny: 1\n", 2, "spec.frameDeny: must be true or false"),
    (
        "headers",
        "spec:\n  sslProxyHeaders:\n    X-Forwarded-Proto: [https]\n",
        3,
        "spec.sslProxyHeaders.X-Forwarded-Proto: must be a string",
    ),
    (
        "headers",
        'spec:\n  contentSecurityPolicy: "a\\nb"\n',
        2,
        "spec.contentSecurityPolicy: must not contain CR, LF or NUL",
    ),
    (
        "headers",
        'spec:\n  accessControlAllowHeaders: ["a\\nb"]\n',
        2,
        "spec.accessControlAllowHeaders: item 0 must not contain CR, LF or NUL",
    ),
    (
        "headers",
        "spec:\n  frameDeny: true\n  xssFilter: true\n",
        3,
        "spec.xssFilter: unknown field",
    ),
]


def _request(
    method: str = "GET",
    host: str = "example.com",
    headers: Tuple[Tuple[str, str], ...] = (),
    tls: bool = False,
) -> Request:
    return Request(
        method, "/foo", None, HeaderList((("Host", host),) + headers), "192.0.2.1", tls=tls
    )


def _respond(
    step: object, request: Request, headers: Tuple[Tuple[str, str], ...] = ()
) -> Dict[str, str]:
    """Run the step and its hooks over a 200 with `headers`; the final head as a dict."""
    result = step.handle(request)  # type: ignore[attr-defined]
    assert result is None, result
    response = Response(200, HeaderList(headers), request)
    for hook in reversed(request.response_hooks):
        hook(response)
    return dict(response.headers)


class HeadersTests(SynchronousTestCase):
    """Parsing, security headers, CORS edge cases and ordering."""

    def test_parse_errors(self) -> None:
        """Each bad section is refused at the line and key path of the problem."""
        for kind, text, line, message in PARSE_ERRORS:
            self.assertEqual(parse_error(kind, text), (line, message), text)

    def test_removed_fields_are_notices(self) -> None:
        """sslRedirect and the other v3-removed fields are accepted with a notice: Traefik 3.7
        parses them and does nothing with them (checked against the 3.7.15 binary)."""
        text = "spec:\n  frameDeny: true\n  sslRedirect: true\n  featurePolicy: x\n"
        notices = parse_notices("headers", text)
        self.assertEqual([line for line, _ in notices], [3, 4])
        self.assertIn("spec.sslRedirect: removed in Traefik v3", notices[0][1])

    def test_invalid_configurations(self) -> None:
        """Nothing configured (or only removed fields) and a bad origin regexp cannot be built."""
        for config, message in [
            ({}, "headers configuration not valid"),
            ({"sslRedirect": True}, "headers configuration not valid"),
            (
                {"accessControlAllowOriginListRegex": ["(?=x)"]},
                "error occurred during origin parsing: error parsing regexp: lookahead (?=...) is "
                "not supported by RE2",
            ),
        ]:
            with self.assertRaises(BuildError) as caught:
                build("headers", config)
            self.assertEqual(str(caught.exception), message)

    def test_security_headers(self) -> None:
        """unrolled/secure's headers: STS only over TLS (or an sslProxyHeaders match, or
        forced) and never in development; customs override the booleans."""
        full = {
            "stsSeconds": 60,
            "stsIncludeSubdomains": True,
            "stsPreload": True,
            "frameDeny": True,
            "customFrameOptionsValue": "SAMEORIGIN",
            "contentTypeNosniff": True,
            "browserXssFilter": True,
            "contentSecurityPolicy": "default-src 'self'",
            "contentSecurityPolicyReportOnly": "img-src *",
            "publicKey": 'pin-sha256="x"',
            "referrerPolicy": "no-referrer",
            "permissionsPolicy": "camera=()",
            "sslProxyHeaders": {"X-Forwarded-Proto": "https"},
        }
        expected_tls = {
            "Strict-Transport-Security": "max-age=60; includeSubDomains; preload",
            "X-Frame-Options": "SAMEORIGIN",
            "X-Content-Type-Options": "nosniff",
            "X-Xss-Protection": "1; mode=block",
            "Content-Security-Policy": "default-src 'self'",
            "Content-Security-Policy-Report-Only": "img-src *",
            "Public-Key-Pins": 'pin-sha256="x"',
            "Referrer-Policy": "no-referrer",
            "Permissions-Policy": "camera=()",
        }
        plain = {
            k: v
            for k, v in expected_tls.items()
            if k not in ("Strict-Transport-Security", "Public-Key-Pins")
        }
        step = build("headers", full)
        self.assertEqual(_respond(step, _request(tls=True)), expected_tls)
        self.assertEqual(_respond(step, _request()), plain)
        proxied = _request(headers=(("X-Forwarded-Proto", "https"),))
        self.assertEqual(_respond(step, proxied), expected_tls)
        development = build("headers", dict(full, isDevelopment=True))
        self.assertEqual(_respond(development, _request(tls=True)), plain)
        custom_xss = build("headers", {"browserXssFilter": True, "customBrowserXSSValue": "0"})
        self.assertEqual(_respond(custom_xss, _request()), {"X-Xss-Protection": "0"})
        # The backend's own values are replaced, as Header.Set does.
        self.assertEqual(
            _respond(
                build("headers", {"frameDeny": True}), _request(), (("X-Frame-Options", "x"),)
            ),
            {"X-Frame-Options": "DENY"},
        )

    def test_allowed_hosts(self) -> None:
        """allowedHosts compares case-insensitively, reads hostsProxyHeaders first, is off in
        development, and its 500 carries the custom and CORS response headers."""
        config = {
            "allowedHosts": ["good.example"],
            "hostsProxyHeaders": ["X-Forwarded-Host"],
            "customResponseHeaders": {"X-Resp": "yes"},
            "accessControlAllowOriginList": ["*"],
        }
        step = build("headers", config)
        self.assertIsNone(step.handle(_request(host="GOOD.example")))
        forwarded = _request(host="bad", headers=(("X-Forwarded-Host", "good.example"),))
        self.assertIsNone(step.handle(forwarded))
        self.assertEqual(
            step.handle(_request(host="bad.example")),
            Answer(
                500,
                (
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("X-Content-Type-Options", "nosniff"),
                    ("X-Resp", "yes"),
                    ("Access-Control-Allow-Origin", "*"),
                ),
                b"Bad Host\n",
            ),
        )
        self.assertIsNone(
            build("headers", dict(config, isDevelopment=True)).handle(_request(host="x"))
        )
        # The preflight is answered before the host check, as in Traefik.
        preflight = _request(
            "OPTIONS",
            "bad.example",
            (("Origin", "http://o"), ("Access-Control-Request-Method", "GET")),
        )
        self.assertEqual(step.handle(preflight).status, 200)  # type: ignore[union-attr]

    def test_custom_request_headers(self) -> None:
        """A Host entry rewrites the Host; an empty X-Forwarded-For (exact spelling) also tells
        the engine to add none; an empty Host entry does nothing, as in Go."""
        step = build(
            "headers", {"customRequestHeaders": {"host": "new.example", "X-Forwarded-For": ""}}
        )
        request = _request(headers=(("X-Forwarded-For", "1.2.3.4"),))
        step.handle(request)
        self.assertEqual(list(request.headers), [("Host", "new.example")])
        self.assertTrue(request.notes[NO_X_FORWARDED_FOR])
        request = _request()
        build("headers", {"customRequestHeaders": {"Host": "", "x-forwarded-for": ""}}).handle(
            request
        )
        self.assertEqual((request.host, request.notes), ("example.com", {}))

    def test_cors_with_credentials(self) -> None:
        """With credentials, '*' lists echo what the preflight asked for and '*' expose
        headers are withheld; exact origins win over '*'."""
        step = build(
            "headers",
            {
                "accessControlAllowCredentials": True,
                "accessControlAllowOriginList": ["*"],
                "accessControlAllowHeaders": ["*"],
                "accessControlAllowMethods": ["*"],
                "accessControlExposeHeaders": ["*"],
                "accessControlMaxAge": 0,
            },
        )
        preflight = _request(
            "OPTIONS",
            headers=(
                ("Origin", "https://a.example"),
                ("Access-Control-Request-Method", "PATCH"),
                ("Access-Control-Request-Headers", "x-token"),
            ),
        )
        self.assertEqual(
            dict(step.handle(preflight).headers),  # type: ignore[union-attr]
            {
                "Access-Control-Allow-Credentials": "true",
                "Access-Control-Allow-Headers": "x-token",
                "Access-Control-Allow-Methods": "PATCH",
                "Access-Control-Allow-Origin": "https://a.example",
                "Access-Control-Max-Age": "0",
            },
        )
        # The list is read in order: "*" first wins over a later exact entry; an exact entry
        # first echoes the origin (both checked against Traefik 3.7.15).
        for origins, expected in [
            (["*", "https://a.example"], "*"),
            (["https://a.example", "*"], "https://a.example"),
            (["https://b.example"], None),
        ]:
            step = build("headers", {"accessControlAllowOriginList": origins})
            got = _respond(step, _request(headers=(("Origin", "https://a.example"),)))
            self.assertEqual(got.get("Access-Control-Allow-Origin"), expected, origins)
        # With credentials and no Origin at all, Traefik sends the echoed origin: empty.
        step = build(
            "headers",
            {"accessControlAllowCredentials": True, "accessControlAllowOriginList": ["*"]},
        )
        self.assertEqual(
            _respond(step, _request()),
            {"Access-Control-Allow-Origin": "", "Access-Control-Allow-Credentials": "true"},
        )

    def test_hook_order(self) -> None:
        """Security headers are set first (inner handler), then custom response headers,
        which may remove them."""
        step = build(
            "headers", {"frameDeny": True, "customResponseHeaders": {"X-Frame-Options": ""}}
        )
        self.assertEqual(_respond(step, _request()), {})
