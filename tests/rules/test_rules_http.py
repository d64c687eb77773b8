"""Tests for tsproxy.rules.http and http_v2: Traefik's HTTP matcher tables, v3 and v2 syntax."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.rulevectors import add_case_tests, check, deviations, load, request_from_vector
from tsproxy.rules import HTTPRequestInfo, RuleError, compile_http_rule, parse_domains

PARSE_ERROR = "parse error"


def outcome(case: Dict[str, Any]) -> Any:
    """What tsproxy does with a vector case: PARSE_ERROR, or whether the request matches."""
    try:
        rule = compile_http_rule(case["rule"], case["syntax"])
    except RuleError:
        return PARSE_ERROR
    if "request" not in case:
        return True
    return rule.match(request_from_vector(case["request"], case.get("raw_request", "")))


def expected(case: Dict[str, Any]) -> Any:
    return PARSE_ERROR if case.get("parse_error") else case.get("match", True)


def table(name: str) -> List[Tuple[str, str, Callable[[SynchronousTestCase], None]]]:
    cases = []
    for index, case in enumerate(load(name)):
        key = "%s#%d" % (name, index)

        def body(test: SynchronousTestCase, case: Dict[str, Any] = case, key: str = key) -> None:
            check(test, key, outcome(case), expected(case))

        verdict = "is rejected" if case.get("parse_error") else "matches %s" % case.get("match")
        url = case.get("request", {}).get("url", "")
        cases.append((key, "%s (%s) %s %s" % (case["rule"], case["syntax"], verdict, url), body))
    return cases


class TraefikMatcherTableTests(SynchronousTestCase):
    """Every case of http-rules.json: Traefik's own matcher, muxer and parser tests."""


add_case_tests(TraefikMatcherTableTests, "vector", table("http-rules.json"))


class DerivedMatcherTableTests(SynchronousTestCase):
    """Every case of http-rules-derived.json: behaviour read from Traefik's code."""


add_case_tests(DerivedMatcherTableTests, "derived", table("http-rules-derived.json"))


class DeviationListTests(SynchronousTestCase):
    """rules-deviations.json stays in step with the vector files."""

    def test_everyDeviationNamesARealCase(self) -> None:
        """Each listed key points at an existing case whose rule text is recorded with it."""
        for key, entry in deviations().items():
            parts = key.split("#")
            data = load(parts[0])
            if len(parts) == 2:
                self.assertEqual(entry.get("rule"), data[int(parts[1])].get("rule"), key)
            else:
                group = next(g for g in data["groups"] if g["id"] == parts[1])
                case = group["cases"][int(parts[2])]
                self.assertEqual(entry.get("description"), case["description"], key)
            if len(parts) == 4:  # one check of an entrypoint-routing case
                checks = [c["check"] for c in case["expected"]["checks"]]
                self.assertIn(parts[3], checks, key)
                self.assertEqual(entry.get("check"), parts[3], key)
            self.assertTrue(entry["reason"], key)


def request(target: str, *headers: Tuple[str, str], method: str = "GET") -> HTTPRequestInfo:
    return HTTPRequestInfo.from_request(method, target, list(headers), "192.0.2.1")


class HostMatcherTests(SynchronousTestCase):
    """Host and HostRegexp against Traefik's canonical host."""

    def test_trailingDotOnBothSides(self) -> None:
        """A trailing dot on the rule or on the request host is tolerated."""
        self.assertTrue(compile_http_rule("Host(`a.com.`)").match(request("/", ("Host", "a.com"))))
        self.assertTrue(compile_http_rule("Host(`a.com`)").match(request("/", ("Host", "a.com."))))

    def test_hostRegexpSeesTrailingDot(self) -> None:
        """HostRegexp sees Traefik's canonical host, trailing dot included."""
        rule = compile_http_rule("HostRegexp(`^a\\.com$`)")
        self.assertFalse(rule.match(request("/", ("Host", "a.com."))))

    def test_wildcardIgnoresCaseAndPort(self) -> None:
        """Host(`*.x.com`) matches one label whatever the case and port of the request."""
        rule = compile_http_rule("Host(`*.x.com`)")
        self.assertTrue(rule.match(request("/", ("Host", "A.X.COM:8080"))))
        self.assertFalse(rule.match(request("/", ("Host", ".x.com"))))

    def test_starMatchesWithoutHost(self) -> None:
        """Host(`*`) matches a request that has no host at all."""
        self.assertTrue(compile_http_rule("Host(`*`)").match(request("/")))

    def test_hostHeaderIsNotAHeader(self) -> None:
        """Header(`Host`, ...) never matches: Go moves Host out of the header map."""
        rule = compile_http_rule("Header(`Host`, `a.com`)")
        self.assertFalse(rule.match(request("/", ("Host", "a.com"))))

    def test_requiredHosts(self) -> None:
        """Literal hosts a rule requires are reported for indexing; others are not."""
        cases = {
            "Host(`A.com.`) && Path(`/`)": frozenset(["a.com"]),
            "Host(`a.com`) || Host(`b.com`)": frozenset(["a.com", "b.com"]),
            "Host(`a.com`) || Path(`/`)": None,
            "!Host(`a.com`)": None,
            "!(!Host(`a.com`) || Path(`/`))": frozenset(["a.com"]),
            "Host(`*.a.com`)": None,
            "Host(`*`)": None,
            "HostRegexp(`a`)": None,
        }
        for text, hosts in cases.items():
            self.assertEqual(compile_http_rule(text).required_hosts, hosts, text)
        v2 = compile_http_rule("HostHeader(`a.com`, `B.com`)", "v2")
        self.assertEqual(v2.required_hosts, frozenset(["a.com", "b.com"]))

    def test_requiredPathPrefixes(self) -> None:
        """Path and PathPrefix literals a rule requires; v2 templates with variables do not count."""
        cases = {
            ("PathPrefix(`/a`) && Method(`GET`)", "v3"): frozenset(["/a"]),
            ("Path(`/a`) || PathPrefix(`/b`)", "v3"): frozenset(["/a", "/b"]),
            ("Path(`/{id}`)", "v3"): frozenset(["/{id}"]),
            ("Path(`/{id}`)", "v2"): None,
            ("PathPrefix(`/a`, `/b`)", "v2"): frozenset(["/a", "/b"]),
            ("!PathPrefix(`/a`)", "v3"): None,
            ("PathRegexp(`^/a`)", "v3"): None,
        }
        for (text, syntax), prefixes in cases.items():
            rule = compile_http_rule(text, syntax)
            self.assertEqual(rule.required_path_prefixes, prefixes, text)


class PathMatcherTests(SynchronousTestCase):
    """Path matchers against the routing path."""

    def test_reservedEscapesStayEncoded(self) -> None:
        """PathPrefix(`/a/b`) does not match /a%2fb; Path(`/a%2Fb`) does (hex case ignored)."""
        self.assertFalse(compile_http_rule("PathPrefix(`/a/b`)").match(request("/a%2fb")))
        self.assertTrue(compile_http_rule("Path(`/a%2Fb`)").match(request("/a%2fb")))

    def test_absoluteFormWithoutPath(self) -> None:
        """An absolute-form target without a path has an empty path, as in Go."""
        self.assertFalse(compile_http_rule("PathPrefix(`/`)").match(request("http://a.com")))

    def test_pathMustStartWithSlash(self) -> None:
        """A v3 Path argument without a leading slash is a RuleError at that argument."""
        with self.assertRaises(RuleError) as caught:
            compile_http_rule("Path(`css`)")
        self.assertEqual(caught.exception.column, 6)


class QueryAndHeaderMatcherTests(SynchronousTestCase):
    """Query, Header and their v2 forms."""

    def test_semicolonSeparates(self) -> None:
        """';' separates query pairs, as Traefik's default AllowQuerySemicolons does."""
        rule = compile_http_rule("Query(`b`, `2`)")
        self.assertTrue(rule.match(request("/?a=1;b=2")))

    def test_headerNamesAreCaseInsensitive(self) -> None:
        """Header names in rules and requests compare case-insensitively."""
        rule = compile_http_rule("Header(`x-foo`, `a`)")
        self.assertTrue(rule.match(request("/", ("X-FOO", "a"))))

    def test_v2PairsOfTwoPlainArguments(self) -> None:
        """v2 Query(`a`, `b`) pairs the two arguments into a=b, as gorilla does."""
        rule = compile_http_rule("Query(`a`, `b`)", "v2")
        self.assertTrue(rule.match(request("/?a=b")))

    def test_v2OddPairsRejected(self) -> None:
        """v2 Headers with an odd number of arguments is a RuleError."""
        self.assertRaises(RuleError, compile_http_rule, "Headers(`a`, `b`, `c`)", "v2")

    def test_v2HostRegexpWithPort(self) -> None:
        """A v2 host template that mentions a port is matched against host:port."""
        rule = compile_http_rule("HostRegexp(`{h:[a-z]+}.com:8080`)", "v2")
        self.assertTrue(rule.match(request("/", ("Host", "a.com:8080"))))
        self.assertFalse(rule.match(request("/", ("Host", "a.com"))))


class SyntaxTests(SynchronousTestCase):
    """Choosing between the v3 and v2 matcher sets."""

    def test_unknownSyntaxMeansV3(self) -> None:
        """An unknown per-route syntax value falls back to v3, as in Traefik."""
        self.assertEqual(compile_http_rule("Path(`/`)", "v9").syntax, "v3")

    def test_foreignMatcherNamed(self) -> None:
        """A v2-only matcher in a v3 rule says to use the v2 syntax."""
        with self.assertRaises(RuleError) as caught:
            compile_http_rule("HostHeader(`a`)")
        self.assertIn("v2", caught.exception.message)

    def test_priorityIsUTF8Length(self) -> None:
        """Default priority counts bytes, not characters."""
        self.assertEqual(compile_http_rule("Path(`/é`)").default_priority, 11)


class ParseDomainsTests(SynchronousTestCase):
    """parse_domains, with Traefik's TestParseDomains table from http-routing-misc.json."""


def _domain_cases() -> List[Tuple[str, str, Callable[[SynchronousTestCase], None]]]:
    cases = []
    for index, case in enumerate(load("http-routing-misc.json")):
        if case["kind"] != "parse_domains":
            continue
        key = "http-routing-misc.json#%d" % index

        def body(test: SynchronousTestCase, case: Dict[str, Any] = case, key: str = key) -> None:
            try:
                found: Any = list(parse_domains(case["rule"]))
            except RuleError:
                found = PARSE_ERROR
            check(test, key, found, PARSE_ERROR if case["error"] else case["expected_domains"])

        cases.append((key, "domains of %s" % case["rule"], body))
    return cases


add_case_tests(ParseDomainsTests, "domains", _domain_cases())


RULE_TEXT = st.text(
    st.sampled_from(list('HostPathQuery()`"\\!&|, \n\t*.{}[]:/abc0é')), max_size=40
) | st.text(max_size=40)


class CompileAnyTextTests(SynchronousTestCase):
    """compile_http_rule on arbitrary text."""

    @settings(max_examples=400, deadline=None)
    @given(RULE_TEXT, st.sampled_from(["v3", "v2"]))
    def test_ruleOrRuleError(self, text: str, syntax: str) -> None:
        """Any text compiles to a rule or raises RuleError, never anything else."""
        try:
            rule = compile_http_rule(text, syntax)
        except RuleError as err:
            self.assertTrue(err.column is None or 1 <= err.column <= len(text) + 1)
            self.assertTrue(str(err).endswith(err.message))
            return
        self.assertEqual(rule.text, text)
        self.assertIsInstance(rule.match(request("/a?b=c", ("Host", "a.com"))), bool)

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=20), st.text(max_size=20))
    def test_quotedHostRoundTrip(self, host: str, target_host: str) -> None:
        """Host(`x`) matches exactly when the request's Host equals x, ignoring case."""
        # Go drops carriage returns from raw strings: "\r" alone is an empty argument.
        host = host.replace("\r", "")
        if "`" in host or not host or not host.isascii():
            return
        rule = compile_http_rule("Host(`%s`)" % host)
        wanted = host.lower()
        got = request("/", ("Host", target_host)).traefik_host
        if wanted in (got, got + ".") or (wanted.endswith(".") and wanted[:-1] == got):
            self.assertEqual(rule.match(request("/", ("Host", target_host))), bool(got))
