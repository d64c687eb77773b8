"""Tests for tsproxy.rules.table: evaluation order, priorities and the host index."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.rulevectors import add_case_tests, check, load, request_from_vector
from tsproxy.rules import (
    HTTPRequestInfo,
    RouterSet,
    TCPConnectionInfo,
    TCPRouterSet,
    compile_http_rule,
    compile_tcp_rule,
)


def winner(case: Dict[str, Any]) -> Any:
    """The router a RouterSet picks for a http-priority.json case (priority 0 = computed)."""
    entries = []
    for route in case["routes"]:
        rule = compile_http_rule(route["rule"], case["syntax"])
        entries.append((route["name"], rule, route["priority"] or rule.default_priority, route))
    found = RouterSet(entries).match(request_from_vector(case["request"]))
    return found["name"] if found else None  # type: ignore[index]


def priority_cases() -> List[Tuple[str, str, Callable[[SynchronousTestCase], None]]]:
    cases = []
    for index, case in enumerate(load("http-priority.json")):
        key = "http-priority.json#%d" % index
        if case["kind"] == "priority":

            def body(test: SynchronousTestCase, case: Any = case, key: str = key) -> None:
                check(test, key, winner(case), case["expected_winner"])

            description = "%s wins (%s)" % (case["expected_winner"], case["source"].split("::")[-1])
        else:

            def body(test: SynchronousTestCase, case: Any = case, key: str = key) -> None:
                rule = compile_http_rule(case["rule"])
                check(test, key, rule.default_priority, case["expected_priority"])

            description = "%s has priority %d" % (case["rule"], case["expected_priority"])
        cases.append((key, description, body))
    return cases


class PriorityTableTests(SynchronousTestCase):
    """Every case of http-priority.json."""


add_case_tests(PriorityTableTests, "priority", priority_cases())


def request(host: str, path: str = "/") -> HTTPRequestInfo:
    return HTTPRequestInfo.from_request("GET", path, [("Host", host)], "10.0.0.1")


class RouterSetTests(SynchronousTestCase):
    """RouterSet ordering, lookups and explanations."""

    def test_tiesBrokenByName(self) -> None:
        """Equal priorities are tried by router name ascending, whatever the input order."""
        rule = compile_http_rule("PathPrefix(`/`)")
        routers = RouterSet([("b", rule, 5, "B"), ("a", rule, 5, "A"), ("c", rule, 6, "C")])
        self.assertEqual([e[0] for e in routers.ordered()], ["c", "a", "b"])
        self.assertEqual(routers.match(request("x")), "C")

    def test_hostRouteBeatenByHigherFallback(self) -> None:
        """An unindexed router of higher priority wins over the host's own router."""
        routers = RouterSet(
            [
                ("host", compile_http_rule("Host(`a.com`)"), 10, "host"),
                ("catch", compile_http_rule("PathPrefix(`/`)"), 20, "catch"),
                ("low", compile_http_rule("Path(`/x`)"), 1, "low"),
            ]
        )
        self.assertEqual(routers.match(request("a.com")), "catch")
        self.assertEqual(
            routers.explain(request("a.com", "/x")),
            (("catch", 20, True), ("host", 10, True), ("low", 1, True)),
        )

    def test_noMatch(self) -> None:
        """None when no router matches."""
        routers = RouterSet([("a", compile_http_rule("Host(`a.com`)"), 1, "a")])
        self.assertIsNone(routers.match(request("b.com")))
        self.assertEqual(len(routers), 1)

    def test_trailingDotHostFindsBucket(self) -> None:
        """A request for `a.com.` finds the router indexed under a.com."""
        routers = RouterSet([("a", compile_http_rule("Host(`a.com`)"), 1, "a")])
        self.assertEqual(routers.match(request("A.COM.:80")), "a")

    def test_pathPrefixIndex(self) -> None:
        """Routers indexed by path prefix are tried only for paths that start with it."""
        routers = RouterSet(
            [
                ("api", compile_http_rule("PathPrefix(`/api`) && Method(`GET`)"), 30, "api"),
                ("exact", compile_http_rule("Path(`/api/x`)"), 40, "exact"),
                ("any", compile_http_rule("Method(`GET`)"), 1, "any"),
            ]
        )
        self.assertEqual(routers.match(request("a", "/api/x")), "exact")
        self.assertEqual(routers.match(request("a", "/api/y")), "api")
        self.assertEqual(routers.match(request("a", "/ap")), "any")

    def test_tcpRouterSet(self) -> None:
        """TCPRouterSet orders and indexes TCP rules the same way."""
        routers = TCPRouterSet(
            [
                ("all", compile_tcp_rule("HostSNI(`*`)"), -1, "all"),
                ("a", compile_tcp_rule("HostSNI(`a.com`)"), 19, "a"),
            ]
        )
        self.assertEqual(routers.match(TCPConnectionInfo(sni="A.com")), "a")
        self.assertEqual(routers.match(TCPConnectionInfo(sni="b.com")), "all")


HOSTS = ["a.com", "b.com", "c.com", "A.com.", "*.a.com", "*"]
LEAVES = ["Host(`%s`)" % host for host in HOSTS] + [
    "PathPrefix(`/x`)",
    "Path(`/`)",
    "HostRegexp(`^b`)",
    "Method(`GET`)",
]


@st.composite
def rule_texts(draw: Any, depth: int = 2) -> str:
    if depth == 0 or draw(st.booleans()):
        return draw(st.sampled_from(LEAVES))
    operator = draw(st.sampled_from([" && ", " || "]))
    left = draw(rule_texts(depth - 1))
    right = draw(rule_texts(depth - 1))
    text = "(%s%s%s)" % (left, operator, right)
    return "!" + text if draw(st.booleans()) else text


class IndexEquivalenceTests(SynchronousTestCase):
    """The host index never changes which router wins."""

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.tuples(rule_texts(), st.integers(-2, 3)), min_size=1, max_size=12),
        st.sampled_from(["a.com", "b.com", "x.a.com", "A.COM.", "c.com:8080", ""]),
        st.sampled_from(["/", "/x", "/y", "/xy", "/xyz", ""]),
    )
    def test_sameAsLinearScan(self, specs: List[Tuple[str, int]], host: str, path: str) -> None:
        """RouterSet.match returns what trying every router in evaluation order returns."""
        entries = [
            ("r%02d" % i, compile_http_rule(text), priority, i)
            for i, (text, priority) in enumerate(specs)
        ]
        routers = RouterSet(entries)
        req = request(host, path)
        linear = next((e[3] for e in routers.ordered() if e[1].match(req)), None)
        self.assertEqual(routers.match(req), linear)
        matched = [name for name, _, hit in routers.explain(req) if hit]
        self.assertEqual(matched[:1], ["r%02d" % linear] if linear is not None else [])
