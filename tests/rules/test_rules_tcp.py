"""Tests for tsproxy.rules.tcp: Traefik's TCP matcher tables (tcp-rules.json), v3 and v2."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.rulevectors import add_case_tests, check, go_value, ip_of, load
from tsproxy.rules import (
    RuleError,
    TCPConnectionInfo,
    TCPRouterSet,
    compile_tcp_rule,
    parse_host_sni,
)

ERROR = "error"
Body = Callable[[SynchronousTestCase], None]


def syntax_of(group: str) -> str:
    """v2.10 groups and v3's v2-syntax groups run with syntax v2."""
    return "v2" if group.startswith("v2.10") or "v2syntax" in group else "v3"


def backtick_args(values: List[str]) -> str:
    return ", ".join("`%s`" % value for value in values)


def compiled_or_error(rule: str, syntax: str) -> Any:
    try:
        return compile_tcp_rule(rule, syntax)
    except RuleError:
        return ERROR


def route_outcome(inputs: Dict[str, Any], syntax: str) -> Any:
    """addTCPRoute: ERROR, or whether the connection matches."""
    rule = compiled_or_error(go_value(inputs.get("rule", "")), syntax)
    if rule == ERROR:
        return ERROR
    conn = TCPConnectionInfo(
        sni=inputs.get("serverName", ""),
        alpn=tuple(go_value(inputs.get("protos", []))),
        client_ip=ip_of(inputs.get("remoteAddr") or "0.0.0.0:0"),
    )
    return rule.match(conn)


def builder_rule(group: str, inputs: Dict[str, Any]) -> str:
    """The rule equivalent to a direct call of a v2 matcher builder."""
    if group.endswith("-HostSNIRegexp"):
        return "HostSNIRegexp(`%s`)" % inputs["pattern"]
    for field, matcher in (("ruleHosts", "HostSNI"), ("ruleCIDRs", "ClientIP")):
        if field in inputs or group.endswith("-" + matcher):
            return "%s(%s)" % (matcher, backtick_args(inputs.get(field, [])))
    return "ALPN(%s)" % backtick_args(go_value(inputs.get("ruleALPNProtos", [])))


def case_body(group: str, case: Dict[str, Any]) -> Tuple[Any, Any]:
    """(tsproxy's outcome, the vector's expectation) for one case of one group."""
    inputs, wanted = case["inputs"], case["expected"]
    syntax = syntax_of(group)
    kind = group.split("-")[-1]
    if kind == "addTCPRoute":
        expected = ERROR if wanted["routeErr"] else not wanted["matchErr"]
        return route_outcome(inputs, syntax), expected
    if kind == "ParseHostSNI":
        try:
            found: Any = list(parse_host_sni(inputs["expression"]))
        except RuleError:
            found = ERROR
        return found, ERROR if wanted["errorExpected"] else wanted.get("domain") or []
    if kind == "HostSNICatchAll":
        rule = compile_tcp_rule(inputs["rule"], syntax)
        sni = "example.com" if syntax == "v3" else "foobar"
        return (rule.match(TCPConnectionInfo(sni=sni)), rule.is_catch_all), (
            True,
            wanted["isCatchAll"],
        )
    if kind == "GetRulePriority":
        return compile_tcp_rule(inputs["rule"]).default_priority, wanted["expected"]
    if kind == "Priority":
        return priority_winner(inputs, syntax), (
            wanted["expectedRule"],
            wanted.get("expectedProvider"),
        )
    return matcher_outcome(group, inputs, wanted, syntax)


def matcher_outcome(group: str, inputs: Dict[str, Any], wanted: Dict[str, Any], syntax: str) -> Any:
    """The per-matcher tables: build errors, then subject -> match."""
    if "rule" in inputs or syntax == "v3":
        text = go_value(inputs.get("rule", ""))
    else:
        text = builder_rule(group, inputs)
    rule = compiled_or_error(text, syntax)
    if wanted.get("buildErr"):
        return rule, ERROR
    if rule == ERROR:
        return ERROR, "a rule"
    table = wanted.get("expected") if isinstance(wanted.get("expected"), dict) else None
    table = table or wanted.get("serverNames")
    kind = group.split("-")[-1]
    if table is not None:
        got = {subject: rule.match(connection(kind, subject)) for subject in table}
        return got, table
    subject = inputs.get("serverName", inputs.get("remoteIP", inputs.get("connProto", "")))
    expected = wanted["match"] if "match" in wanted else not wanted["matchErr"]
    return rule.match(connection(kind, subject, "connProto" in inputs)), expected


def connection(kind: str, subject: str, offered: bool = True) -> TCPConnectionInfo:
    if kind == "ClientIP":
        return TCPConnectionInfo(client_ip=subject)
    if kind == "ALPN":
        return TCPConnectionInfo(alpn=(subject,) if offered else ())
    return TCPConnectionInfo(sni=subject)


def priority_winner(inputs: Dict[str, Any], syntax: str) -> Tuple[str, Optional[str]]:
    """Build a TCPRouterSet as the Priority tests do and return (rule, provider) that wins."""
    rules = inputs["rules"]
    if isinstance(rules, dict):
        rules = [{"rule": text, "priority": priority} for text, priority in rules.items()]
    entries = []
    for spec in rules:
        rule = compile_tcp_rule(spec["rule"], syntax)
        priority = spec.get("priority", 0)
        if syntax == "v2" and priority == 0:
            priority = rule.default_priority  # v2.10's AddRoute computes it; v3's test does not
        provider = spec.get("provider")
        name = spec["rule"] + ("@" + provider if provider else "")
        entries.append((name, rule, priority, (spec["rule"], provider)))
    winner = TCPRouterSet(entries).match(TCPConnectionInfo(sni=inputs["serverName"]))
    return winner  # type: ignore[return-value]


def group_cases() -> List[Tuple[str, str, Body]]:
    cases = []
    for group in load("tcp-rules.json")["groups"]:
        if group["id"].endswith("-entrypoint-routing"):
            continue  # decided by EntryPointTCP: tests/runtime/test_runtime_tcp.py
        for index, case in enumerate(group["cases"]):
            key = "tcp-rules.json#%s#%d" % (group["id"], index)

            def body(
                test: SynchronousTestCase, case: Any = case, group: Any = group, key: str = key
            ) -> None:
                actual, expected = case_body(group["id"], case)
                check(test, key, actual, expected)

            cases.append((key, case["description"], body))
    return cases


class TraefikTCPTableTests(SynchronousTestCase):
    """Every case of tcp-rules.json except the entrypoint-routing matrices (those are in
    tests/runtime/test_runtime_tcp.py)."""


add_case_tests(TraefikTCPTableTests, "vector", group_cases())


class TCPRuleTests(SynchronousTestCase):
    """Properties of compiled TCP rules beyond the vector tables."""

    def test_catchAllWithSpaces(self) -> None:
        """HostSNI(`*`) with blanks and parentheses is still the catch-all, priority -1."""
        rule = compile_tcp_rule("  ( HostSNI ( `*` ) ) ")
        self.assertTrue(rule.is_catch_all)
        self.assertEqual(rule.default_priority, -1)

    def test_negatedStarIsNotCatchAll(self) -> None:
        """!HostSNI(`*`) is not a catch-all and matches nothing."""
        rule = compile_tcp_rule("!HostSNI(`*`)")
        self.assertFalse(rule.is_catch_all)
        self.assertFalse(rule.match(TCPConnectionInfo(sni="a")))

    def test_usesSni(self) -> None:
        """uses_sni is set by any HostSNI other than `*` and by HostSNIRegexp."""
        self.assertFalse(compile_tcp_rule("HostSNI(`*`) && ClientIP(`::1`)").uses_sni)
        self.assertTrue(compile_tcp_rule("!HostSNI(`a`)").uses_sni)
        self.assertTrue(compile_tcp_rule("HostSNIRegexp(`.*`)").uses_sni)

    def test_sniIsCanonicalised(self) -> None:
        """The connection's SNI is trimmed and lower-cased, as Traefik's NewConnData does."""
        self.assertEqual(TCPConnectionInfo(sni=" Example.COM ").sni, "example.com")

    def test_wildcardOneLabel(self) -> None:
        """v3.7 HostSNI(`*.example.com`) matches exactly one extra label."""
        rule = compile_tcp_rule("HostSNI(`*.example.com`)")
        self.assertTrue(rule.match(TCPConnectionInfo(sni="a.example.com")))
        self.assertFalse(rule.match(TCPConnectionInfo(sni="a.b.example.com")))
        self.assertFalse(rule.match(TCPConnectionInfo(sni="example.com")))

    def test_requiredHosts(self) -> None:
        """Literal SNIs are reported for indexing; wildcards and regexps are not."""
        self.assertEqual(
            compile_tcp_rule("HostSNI(`A.com.`) && ALPN(`h2`)").required_hosts,
            frozenset(["a.com"]),
        )
        self.assertIsNone(compile_tcp_rule("HostSNI(`*.a.com`)").required_hosts)


class CompileAnyTextTests(SynchronousTestCase):
    """compile_tcp_rule on arbitrary text."""

    @settings(max_examples=300, deadline=None)
    @given(
        st.text(st.sampled_from(list('HostSNIRegexpALPNClientIP()`"!&|, *.:{}/19')), max_size=40)
        | st.text(max_size=40),
        st.sampled_from(["v3", "v2"]),
    )
    def test_ruleOrRuleError(self, text: str, syntax: str) -> None:
        """Any text compiles to a rule or raises RuleError, never anything else."""
        try:
            rule = compile_tcp_rule(text, syntax)
        except RuleError:
            return
        conn = TCPConnectionInfo(sni="a.b", alpn=("h2",), client_ip="10.0.0.1")
        self.assertIsInstance(rule.match(conn), bool)
