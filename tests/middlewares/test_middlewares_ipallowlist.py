"""Tests for tsproxy.middlewares.ipallowlist: every harness of Traefik's ipAllowList vectors."""

from __future__ import annotations

import ipaddress
from typing import Any, Dict

from twisted.trial.unittest import SynchronousTestCase

from tests.authfixture import (
    FakeContext,
    deviations,
    fields_of,
    fields_yaml,
    load_vectors,
    request_of,
    run_step,
)
from tsproxy.config.schema import FieldError
from tsproxy.middlewares import ipallowlist
from tsproxy.middlewares.base import Answer
from tsproxy.rules.ipcheck import build_checker

VECTORS = load_vectors("ipAllowList.json")
DEVIATIONS = deviations("ipAllowList.json")


def strategy_of(config: Dict[str, Any]) -> ipallowlist.IPStrategy:
    """The strategy object itself, as the Go strategy tests build it (no config checks)."""
    section = config.get("ipStrategy") or {}
    excluded = section.get("excludedIPs") or []
    return ipallowlist.IPStrategy(
        section.get("depth", 0),
        build_checker(excluded)[0] if excluded else None,
        section.get("ipv6Subnet"),
    )


def network_text(value: str) -> str:
    return str(ipaddress.ip_network(value, strict=False))


class VectorTests(SynchronousTestCase):
    """Every case of ipAllowList.json, by harness."""

    def test_vectors(self) -> None:
        """Each case gives Traefik's result for its harness."""
        seen = set()
        for case in VECTORS["cases"]:
            harness = case["harness"]
            seen.add(harness)
            with self.subTest(case["name"]):
                getattr(self, "run_" + harness.lower())(case)
        self.assertEqual(seen, {"middleware", "ipStrategy", "ipStrategyConfig", "checker"})

    def run_middleware(self, case: Dict[str, Any]) -> None:
        expect = case["expect"]
        fields = fields_of(case["config"])
        if expect.get("error"):
            self.check_error(case, lambda: ipallowlist.parse(fields))
            return
        step = ipallowlist.build(ipallowlist.parse(fields), "ip@test", FakeContext())
        if "request" not in case:
            return
        result = run_step(step, request_of(case["request"]))
        if expect["status"] == 200:
            self.assertIsNone(result)
        else:
            self.assertIsInstance(result, Answer)
            self.assertEqual(result.status, expect["status"])
            self.assertEqual(result.body.decode(), expect["body"])

    def check_error(self, case: Dict[str, Any], parse: Any) -> None:
        """The build fails; with Traefik's text unless the case is a listed deviation."""
        with self.assertRaises(FieldError) as caught:
            parse()
        message = caught.exception.message
        expect = case["expect"]
        listed = DEVIATIONS.get(case["name"])
        if listed is not None:
            self.assertEqual(listed["traefik"], expect["error"])
            self.assertIn(listed["tsproxy"], message)
            self.assertNotIn(listed["traefik"], message)
        elif expect.get("errorExact"):
            self.assertEqual(message, expect["error"])
        elif expect.get("errorContains"):
            self.assertIn(expect["error"], message)

    def test_deviations_are_cases(self) -> None:
        """Every listed deviation names a case of the file."""
        names = {case["name"] for case in VECTORS["cases"]}
        self.assertEqual(set(DEVIATIONS) - names, set())

    def run_ipstrategy(self, case: Dict[str, Any]) -> None:
        request = request_of(case["request"])
        got = ipallowlist.client_ip(strategy_of(case["config"]), request)
        self.assertEqual(got, case["expect"]["clientIP"])

    def run_ipstrategyconfig(self, case: Dict[str, Any]) -> None:
        fields = fields_of(case["config"])
        if case["expect"]["error"]:
            with self.assertRaises(FieldError) as caught:
                ipallowlist.parse_ip_strategy(fields)
            self.assertEqual(caught.exception.message, case["expect"]["error"])
        else:
            ipallowlist.parse_ip_strategy(fields)

    def run_checker(self, case: Dict[str, Any]) -> None:
        expect = case["expect"]
        if "error" in expect and expect["error"]:
            fields = fields_of({"sourceRange": case["config"]["sourceRange"]})
            self.check_error(case, lambda: ipallowlist.parse(fields))
            return
        spec = ipallowlist.parse(fields_of(case["config"]))
        step = ipallowlist.build(spec, "ip@test", FakeContext())
        if "normalized" in expect:
            self.assertEqual(
                [network_text(value) for value in spec.source_range], expect["normalized"]
            )
        if "authorized" in expect:
            host = ipallowlist.split_host(case["request"]["remoteAddr"])
            address = ipallowlist.parse_client_address(host)
            self.assertEqual(step.checker.contains(address), expect["authorized"])
        for value in expect.get("contains", []):
            self.assertTrue(step.checker.contains(ipallowlist.parse_client_address(value)), value)
        for value in expect.get("notContains", []):
            address = ipallowlist.parse_client_address(value)
            self.assertFalse(step.checker.contains(address), value)
        for value in expect.get("parseError", []):
            self.assertIsNone(ipallowlist.parse_client_address(value), value)


class StepTests(SynchronousTestCase):
    """The step over requests as the engine gives them (a bare peer IP)."""

    def step(self, section: Dict[str, Any]) -> Any:
        return ipallowlist.build(ipallowlist.parse(fields_of(section)), "ip", FakeContext())

    def test_table(self) -> None:
        """Peer, depth, excluded and subnet strategies decide as Traefik's would."""
        table = [
            ({"sourceRange": ["10.0.0.0/8"]}, "10.1.2.3", None, True),
            ({"sourceRange": ["10.0.0.0/8"]}, "::ffff:10.1.2.3", None, True),
            ({"sourceRange": ["10.0.0.0/8"]}, "11.1.2.3", None, False),
            ({"sourceRange": ["2001:db8::/64"]}, "2001:db8::5", None, True),
            (
                {"sourceRange": ["2001:db8::/64"], "ipStrategy": {"ipv6Subnet": 64}},
                "2001:db8::5",
                None,
                True,
            ),
            ({"sourceRange": ["1.1.1.1"], "ipStrategy": {"depth": 1}}, "9.9.9.9", "1.1.1.1", True),
            ({"sourceRange": ["1.1.1.1"], "ipStrategy": {"depth": 2}}, "9.9.9.9", "1.1.1.1", False),
            (
                {"sourceRange": ["1.1.1.1"], "ipStrategy": {"excludedIPs": ["2.2.2.0/24"]}},
                "9.9.9.9",
                "1.1.1.1, 2.2.2.2",
                True,
            ),
            (
                {"sourceRange": ["1.1.1.1"], "ipStrategy": {"excludedIPs": ["2.2.2.0/24"]}},
                "9.9.9.9",
                "garbage, 2.2.2.2",
                False,
            ),
        ]
        for section, peer, xff, allowed in table:
            with self.subTest((section, peer, xff)):
                request = request_of({"remoteAddr": peer})
                if xff is not None:
                    request.headers.add("X-Forwarded-For", xff)
                result = self.step(section).handle(request)
                self.assertEqual(result is None, allowed)

    def test_white_list_alias(self) -> None:
        """ipWhiteList reads the same section without rejectStatusCode."""
        kinds = {kind.name: kind for kind in ipallowlist.KINDS}
        spec = kinds["ipWhiteList"].parse(fields_of({"sourceRange": ["1.2.3.4"]}))
        self.assertEqual(spec.reject_status, 403)
        with self.assertRaises(FieldError):
            kinds["ipWhiteList"].parse(
                fields_of({"sourceRange": ["1.2.3.4"], "rejectStatusCode": 404})
            )

    def test_errors(self) -> None:
        """Each bad section names the line and field path."""
        table = [
            ("sourceRange: []\n", 1, "spec.kind.sourceRange", "at least one"),
            ("rejectStatusCode: 404\n", 1, "spec.kind.sourceRange", "at least one"),
            ("sourceRange:\n  - 1.2.3.4\n  - 1.2.3.4/33\n", 3, "spec.kind.sourceRange[1]", "CIDR"),
            ("sourceRange: [1.2.3.4]\nrejectStatusCode: 299\n", 2, "spec.kind.rejectStatusCode",
             "invalid HTTP status code 299"),
            ("sourceRange: [1.2.3.4]\nipStrategy:\n  excludedIPs: [x]\n", 3,
             "spec.kind.ipStrategy.excludedIPs[0]", "CIDR"),
            ("sourceRange: [1.2.3.4]\nipStrategy:\n  depth: 1\n  deep: 2\n", 4,
             "spec.kind.ipStrategy.deep", "unknown field"),
            ("sourceRange: [1.2.3.4]\nipStrategy:\n  ipv6Subnet: 0\n", 3,
             "spec.kind.ipStrategy.ipv6Subnet", "invalid IPv6 subnet 0"),
        ]  # fmt: skip
        for text, line, path, message in table:
            with self.subTest(text):
                with self.assertRaises(FieldError) as caught:
                    ipallowlist.parse(fields_yaml(text))
                self.assertEqual((caught.exception.line, caught.exception.path), (line, path))
                self.assertIn(message, caught.exception.message)


class RegistryTests(SynchronousTestCase):
    """The kinds are listed in the registry."""

    def test_registered(self) -> None:
        """http_kinds() gives this module's kinds by their Traefik key."""
        from tsproxy.middlewares.registry import http_kinds

        kinds = http_kinds()
        for kind in ipallowlist.KINDS:
            self.assertIs(kinds[kind.name], kind)
        self.assertEqual({kind.name for kind in ipallowlist.KINDS}, {"ipAllowList", "ipWhiteList"})
