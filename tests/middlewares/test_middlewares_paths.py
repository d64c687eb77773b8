"""Tests for tsproxy.middlewares.paths: the Traefik vectors of the five path middlewares,
located parse errors, and behaviour the vectors leave out (queries, chaining, escapes)."""

from __future__ import annotations

from typing import List, Optional, Tuple

from twisted.trial.unittest import SynchronousTestCase

from tests.mwvectors import add_vector_tests, build, case_keys, deviations, load, parse_error
from tsproxy.middlewares.base import Answer, BuildError, HeaderList, Request


class StripPrefixVectorTests(SynchronousTestCase):
    """stripPrefix.json, every case."""


class StripPrefixRegexVectorTests(SynchronousTestCase):
    """stripPrefixRegex.json, every case."""


class AddPrefixVectorTests(SynchronousTestCase):
    """addPrefix.json, every case."""


class ReplacePathVectorTests(SynchronousTestCase):
    """replacePath.json, every case."""


class ReplacePathRegexVectorTests(SynchronousTestCase):
    """replacePathRegex.json, every case."""


add_vector_tests(StripPrefixVectorTests, "stripPrefix.json", "stripPrefix")
add_vector_tests(StripPrefixRegexVectorTests, "stripPrefixRegex.json", "stripPrefixRegex")
add_vector_tests(AddPrefixVectorTests, "addPrefix.json", "addPrefix")
add_vector_tests(ReplacePathVectorTests, "replacePath.json", "replacePath")
add_vector_tests(ReplacePathRegexVectorTests, "replacePathRegex.json", "replacePathRegex")


# (kind, YAML, line, message)
PARSE_ERRORS = [
    ("stripPrefix", "spec:\n  prefixes: /api\n", 2, "spec.prefixes: must be a list"),
    ("stripPrefix", "spec:\n  prefixes:\n  - 1\n", 3, "spec.prefixes[0]: must be a string"),
    (
        "stripPrefix",
        "spec:\n  prefixes: []\n  forceSlash: yes\n",
        3,
        "spec.forceSlash: must be true or false",
    ),
    ("stripPrefix", "spec:\n  prefix: [/api]\n", 2, "spec.prefix: unknown field"),
    ("stripPrefixRegex", "spec:\n  regex: ^/api\n", 2, "spec.regex: must be a list"),
    ("stripPrefixRegex", "spec:\n  regex: []\n  regexp: []\n", 3, "spec.regexp: unknown field"),
    ("addPrefix", "spec:\n  prefix: 12\n", 2, "spec.prefix: must be a string"),
    ("addPrefix", "spec:\n  prefix: /a\n  prefixes: [/b]\n", 3, "spec.prefixes: unknown field"),
    ("replacePath", "spec:\n  path: [/a]\n", 2, "spec.path: must be a string"),
    ("replacePath", "spec:\n  path: /a\n  regex: x\n", 3, "spec.regex: unknown field"),
    ("replacePathRegex", "spec:\n  replacement: /a\n", 1, "spec.regex: is required"),
    ("replacePathRegex", "spec:\n  regex: ''\n", 2, "spec.regex: must not be empty"),
    (
        "replacePathRegex",
        "spec:\n  regex: x\n  replacement: 1\n",
        3,
        "spec.replacement: must be a string",
    ),
    (
        "replacePathRegex",
        "spec:\n  regex: x\n  permanent: true\n",
        3,
        "spec.permanent: unknown field",
    ),
]

# (kind, config, BuildError text)
BUILD_ERRORS = [
    ("addPrefix", {}, "prefix cannot be empty"),
    (
        "stripPrefixRegex",
        {"regex": ["/ok", "a(b"]},
        "error compiling regular expression a(b: error parsing regexp: missing closing ): `a(b`",
    ),
    (
        "replacePathRegex",
        {"regex": "(?<=x)y"},
        "error compiling regular expression (?<=x)y: error parsing regexp: "
        "lookbehind (?<=...) is not supported by RE2",
    ),
]


class ParseTests(SynchronousTestCase):
    """Located errors for bad sections; BuildError for specs that cannot run."""

    def test_parse_errors(self) -> None:
        """Each bad section is refused at the line and key path of the problem."""
        for kind, text, line, message in PARSE_ERRORS:
            self.assertEqual(parse_error(kind, text), (line, message), text)

    def test_build_errors(self) -> None:
        """An empty prefix and regexps Go refuses are build errors with Traefik's text."""
        for kind, config, message in BUILD_ERRORS:
            with self.assertRaises(BuildError) as caught:
                build(kind, config)
            self.assertEqual(str(caught.exception), message)

    def test_defaults(self) -> None:
        """An empty section parses to Traefik's defaults (forceSlash false, no prefixes)."""
        self.assertEqual(parse_error("stripPrefix", "spec: {}\n"), (0, ""))
        step = build("stripPrefix", {})
        self.assertEqual((step.prefixes, step.force_slash), ((), False))  # type: ignore[attr-defined]


def _request(target: str, headers: Tuple[Tuple[str, str], ...] = ()) -> Request:
    path, mark, query = target.partition("?")
    return Request(
        "GET", path, query if mark else None, HeaderList((("Host", "h"),) + headers), "192.0.2.1"
    )


# (steps as (kind, config), request target, target sent upstream or status answered,
#  X-Forwarded-Prefix values, X-Replaced-Path values)
BEHAVIOUR: List[Tuple[List[Tuple[str, dict]], str, object, List[str], List[str]]] = [
    ([("stripPrefix", {"prefixes": ["/api"]})], "/api/x?q=1&r", "/x?q=1&r", ["/api"], []),
    ([("stripPrefix", {"prefixes": ["/api"]})], "/api?q", "/?q", ["/api"], []),
    ([("stripPrefix", {"prefixes": ["/api"], "forceSlash": True})], "/api", "/", ["/api"], []),
    (
        [("stripPrefix", {"prefixes": ["/api/"], "forceSlash": True})],
        "/api//x",
        "/x",
        ["/api/"],
        [],
    ),
    (
        [
            ("stripPrefix", {"prefixes": ["/api"], "forceSlash": True}),
            ("addPrefix", {"prefix": "/v2"}),
        ],
        "/api",
        "/v2/",
        ["/api"],
        [],
    ),
    ([("stripPrefix", {"prefixes": [" /api "]})], "/api/x", "/x", ["/api"], []),
    ([("stripPrefix", {"prefixes": ["/api"]})], "/api/%2e%2e/etc", 400, [], []),
    ([("stripPrefix", {"prefixes": ["/api"]})], "/api/%zz", 400, [], []),
    ([("stripPrefix", {"prefixes": ["/caf\u00e9"]})], "/caf%C3%A9/x", "/x", ["/caf\u00e9"], []),
    # Traefik strips then adds on the emptied path: /v2, not /v2/.
    (
        [("stripPrefix", {"prefixes": ["/api"]}), ("addPrefix", {"prefix": "/v2"})],
        "/api",
        "/v2",
        ["/api"],
        [],
    ),
    (
        [("stripPrefix", {"prefixes": ["/a"]}), ("stripPrefix", {"prefixes": ["/b"]})],
        "/a/b/c",
        "/c",
        ["/a", "/b"],
        [],
    ),
    ([("stripPrefixRegex", {"regex": ["/[0-9]+"]})], "/v/123/x", "/v/123/x", [], []),
    ([("stripPrefixRegex", {"regex": ["^/v[0-9]+", "/api"]})], "/api/x", "/x", ["/api"], []),
    ([("stripPrefixRegex", {"regex": ["/x*"]})], "/xxx/y", "/y", ["/xxx"], []),
    # Go sends RawPath only while it encodes Path: a prefix with a space loses the %2F.
    ([("addPrefix", {"prefix": "/pre fix"})], "/ap/x%2Fy", "/pre%20fix/ap/x/y", [], []),
    ([("addPrefix", {"prefix": "/a%41"})], "/b", "/a%2541/b", [], []),
    ([("addPrefix", {"prefix": "/a"})], "/b?x=%2F", "/a/b?x=%2F", [], []),
    ([("replacePath", {"path": "/new"})], "/old?q", "/new?q", [], ["/old"]),
    ([("replacePath", {"path": "/bad%zz"})], "/old", 500, [], []),
    ([("replacePath", {"path": "/a?b"})], "/old", "/a%3Fb", [], ["/old"]),
    (
        [("replacePathRegex", {"regex": "^/rp/(.*)", "replacement": "/x/$1"})],
        "/rp/a%3Fb",
        "/x/a%3Fb",
        [],
        ["/rp/a%3Fb"],
    ),
    (
        [
            (
                "replacePathRegex",
                {
                    "regex": "^/(?P<first>[a-z]+)/(?P<second>[a-z]+)",
                    "replacement": "/${second}/${first}",
                },
            )
        ],
        "/ab/cd/e",
        "/cd/ab/e",
        [],
        ["/ab/cd/e"],
    ),
    ([("replacePathRegex", {"regex": "^/(.*)", "replacement": "/$1x"})], "/ab", "/", [], ["/ab"]),
    (
        [("replacePathRegex", {"regex": "^/(.*)", "replacement": "/${1}x"})],
        "/ab",
        "/abx",
        [],
        ["/ab"],
    ),
    ([("replacePathRegex", {"regex": "^/(.*)", "replacement": "/$$1"})], "/ab", "/$1", [], ["/ab"]),
    ([("replacePathRegex", {"regex": "^/a", "replacement": "/%zz"})], "/ab", 500, [], []),
    ([("replacePathRegex", {"regex": "^/a(.*)", "replacement": "/$1"})], "/a%2e%2e/b", 400, [], []),
]


class BehaviourTests(SynchronousTestCase):
    """What the steps do to real-looking requests, alone and chained."""

    def test_behaviour(self) -> None:
        """Each chain sends the listed target (or answers the listed status) with the
        listed X-Forwarded-Prefix and X-Replaced-Path values."""
        for steps, target, expected, prefixes, replaced in BEHAVIOUR:
            request = _request(target)
            answer: Optional[Answer] = None
            for kind, config in steps:
                result = build(kind, config).handle(request)
                if isinstance(result, Answer):
                    answer = result
                    break
            got = answer.status if answer is not None else request.target
            self.assertEqual(got, expected, (steps, target))
            self.assertEqual(request.headers.get_all("X-Forwarded-Prefix"), prefixes, target)
            self.assertEqual(request.headers.get_all("X-Replaced-Path"), replaced, target)

    def test_bad_request_answer(self) -> None:
        """The 400 for dot segments is Go's http.Error: text, nosniff, 'Bad Request\\n'."""
        answer = build("stripPrefix", {"prefixes": ["/api"]}).handle(_request("/api./x"))
        self.assertEqual(
            answer,
            Answer(
                400,
                (
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("X-Content-Type-Options", "nosniff"),
                ),
                b"Bad Request\n",
            ),
        )

    def test_client_prefix_header_kept(self) -> None:
        """X-Forwarded-Prefix is added to, as Go's Header.Add does, not replaced."""
        request = _request("/api/x", (("X-Forwarded-Prefix", "/outer"),))
        build("stripPrefix", {"prefixes": ["/api"]}).handle(request)
        self.assertEqual(request.headers.get_all("X-Forwarded-Prefix"), ["/outer", "/api"])


class DeviationListTests(SynchronousTestCase):
    """tests/data/middlewares/deviations.json stays honest."""

    def test_every_deviation_names_a_run_case(self) -> None:
        """Each listed deviation is a case some vector test runs (and so checks differs)."""
        files = [
            "stripPrefix.json",
            "stripPrefixRegex.json",
            "addPrefix.json",
            "replacePath.json",
            "replacePathRegex.json",
            "redirectScheme.json",
            "redirectRegex.json",
            "headers.json",
            "contentType.json",
        ]
        run = {key for name in files for key in case_keys(name)}
        for key, entry in deviations().items():
            self.assertIn(key, run)
            self.assertEqual(
                load(key.split("#")[0])["cases"][int(key.split("#")[1])]["name"], entry["name"]
            )
            self.assertTrue(entry["differs_in"] and entry["reason"], key)
