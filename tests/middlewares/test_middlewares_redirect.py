"""Tests for tsproxy.middlewares.redirect: the Traefik vectors of redirectScheme and
redirectRegex, located parse errors, and the answers' exact shape."""

from __future__ import annotations

from typing import Optional, Tuple

from twisted.trial.unittest import SynchronousTestCase

from tests.mwvectors import add_vector_tests, build, parse_error
from tsproxy.middlewares.base import Answer, BuildError, HeaderList, Request
from tsproxy.middlewares.redirect import redirect_status


class RedirectSchemeVectorTests(SynchronousTestCase):
    """redirectScheme.json, every case (both request-target forms)."""


class RedirectRegexVectorTests(SynchronousTestCase):
    """redirectRegex.json, every case."""


add_vector_tests(RedirectSchemeVectorTests, "redirectScheme.json", "redirectScheme")
add_vector_tests(RedirectRegexVectorTests, "redirectRegex.json", "redirectRegex")

PARSE_ERRORS = [
    (
        "redirectScheme",
        "spec:\n  scheme: https\n  port: 443\n",
        3,
        'spec.port: must be a string (quote it: port: "443")',
    ),
    ("redirectScheme", "spec:\n  scheme: [https]\n", 2, "spec.scheme: must be a string"),
    (
        "redirectScheme",
        "spec:\n  scheme: https\n  permanent: 'true'\n",
        3,
        "spec.permanent: must be true or false",
    ),
    (
        "redirectScheme",
        "spec:\n  scheme: https\n  forcePermanentRedirect: true\n",
        3,
        "spec.forcePermanentRedirect: unknown field",
    ),
    ("redirectRegex", "spec:\n  replacement: x\n", 1, "spec.regex: is required"),
    (
        "redirectRegex",
        "spec:\n  regex: x\n  replacement: {a: b}\n",
        3,
        "spec.replacement: must be a string",
    ),
    (
        "redirectRegex",
        "spec:\n  regex: x\n  statusCode: 308\n",
        3,
        "spec.statusCode: unknown field",
    ),
]


def _request(
    target: str,
    host: str = "foo",
    method: str = "GET",
    tls: bool = False,
    headers: Tuple[Tuple[str, str], ...] = (),
) -> Request:
    path, mark, query = target.partition("?")
    return Request(
        method,
        path,
        query if mark else None,
        HeaderList((("Host", host),) + headers),
        "192.0.2.1",
        tls=tls,
    )


# (kind, config, request, Location or None for "continues")
BEHAVIOUR = [
    ("redirectScheme", {"scheme": "https"}, _request("/a?b=1&c"), "https://foo/a?b=1&c"),
    ("redirectScheme", {"scheme": "https"}, _request("/a", tls=True), None),
    # Behind a TLS-terminating hop: no redirect loop.
    (
        "redirectScheme",
        {"scheme": "https"},
        _request("/a", headers=(("X-Forwarded-Proto", "HTTPS"),)),
        None,
    ),
    (
        "redirectScheme",
        {"scheme": "https", "port": "8443"},
        _request("/a", headers=(("X-Forwarded-Proto", "https"),)),
        "https://foo:8443/a",
    ),
    (
        "redirectScheme",
        {"scheme": "https", "port": "8443"},
        _request("/a", host="foo:8443", tls=True),
        None,
    ),
    (
        "redirectScheme",
        {"scheme": "http"},
        _request("/a", host="[2001:db8::1]:8080"),
        "http://[2001:db8::1]/a",
    ),
    ("redirectScheme", {"scheme": "https"}, _request("/", host="a:b:c"), "https://a:b:c/"),
    (
        "redirectRegex",
        {"regex": "^http://foo/(.*)", "replacement": "https://bar/$1"},
        _request("/x?y"),
        "https://bar/x?y",
    ),
    (
        "redirectRegex",
        {"regex": "^https://foo/(.*)", "replacement": "http://bar/$1"},
        _request("/x", tls=True),
        "http://bar/x",
    ),
    (
        "redirectRegex",
        {"regex": "^http://foo/(.*)", "replacement": "http://foo/$1"},
        _request("/x"),
        None,
    ),
    (
        "redirectRegex",
        {"regex": "^http://(?P<host>[a-z]+)/", "replacement": "https://${host}.example/"},
        _request("/"),
        "https://foo.example/",
    ),
]


class BehaviourTests(SynchronousTestCase):
    """Redirect decisions and the answers sent."""

    def test_parse_errors(self) -> None:
        """Each bad section is refused at the line and key path of the problem."""
        for kind, text, line, message in PARSE_ERRORS:
            self.assertEqual(parse_error(kind, text), (line, message), text)

    def test_build_errors(self) -> None:
        """No scheme and a regexp Go refuses cannot be built."""
        for kind, config, message in [
            ("redirectScheme", {}, "you must provide a target scheme"),
            ("redirectRegex", {"regex": "^(.*"}, "error parsing regexp: missing closing ): `^(.*`"),
        ]:
            with self.assertRaises(BuildError) as caught:
                build(kind, config)
            self.assertEqual(str(caught.exception), message)

    def test_decisions(self) -> None:
        """Each request is redirected to the listed Location, or continues untouched."""
        for kind, config, request, location in BEHAVIOUR:
            target = request.target
            result = build(kind, config).handle(request)
            got: Optional[str] = None
            if isinstance(result, Answer):
                got = dict(result.headers)["Location"]
            self.assertEqual(got, location, (kind, config, target))
            self.assertEqual(request.target, target)

    def test_statuses(self) -> None:
        """GET gets 302/301; every other method (HEAD too) 307/308, as Traefik."""
        table = [
            ("GET", False, 302),
            ("GET", True, 301),
            ("HEAD", False, 307),
            ("POST", True, 308),
            ("PUT", False, 307),
            ("OPTIONS", True, 308),
        ]
        for method, permanent, status in table:
            self.assertEqual(redirect_status(method, permanent), status)
            step = build("redirectScheme", {"scheme": "https", "permanent": permanent})
            answer = step.handle(_request("/", method=method))
            self.assertEqual(answer.status, status)  # type: ignore[union-attr]

    def test_answer_shape(self) -> None:
        """The body is the status text and there is no Content-Type (Traefik's entrypoint
        keeps Go from sniffing one)."""
        answer = build("redirectScheme", {"scheme": "https"}).handle(_request("/x"))
        self.assertEqual(answer, Answer(302, (("Location", "https://foo/x"),), b"Found"))

    def test_unparsable_target(self) -> None:
        """A rewritten URL Go's parser refuses is a 502 with the status text."""
        step = build("redirectRegex", {"regex": "^(.*)$", "replacement": "http://a b/"})
        self.assertEqual(step.handle(_request("/")), Answer(502, (), b"Bad Gateway"))
