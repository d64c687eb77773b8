"""Tests for tsproxy.balance.health: Traefik's health check vectors (request building, status
verdicts, up/down transitions, durations) and the passive failure window."""

from __future__ import annotations

import json
import os
import re
import textwrap
from typing import Any, Dict, List, Tuple

import attrs
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.balance.health import (
    HealthCheckSpec,
    PassiveHealthSpec,
    PassiveWindow,
    ServerStates,
    TargetError,
    check_request,
    grpc_verdict,
    healthy_status,
)
from tsproxy.config.load import load_files

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
STATIC = 'entryPoints:\n  web:\n    address: ":8000"\n'

with open(os.path.join(DATA, "services.json")) as _stream:
    _GROUP = next(g for g in json.load(_stream)["groups"] if g["id"] == "health-checks")
with open(os.path.join(DATA, "health-deviations.json")) as _stream:
    DEVIATIONS = {case["description"]: case["reason"] for case in json.load(_stream)["cases"]}


def cases(test: str) -> List[Dict[str, Any]]:
    """The vectors of one of Traefik's test functions, deliberate deviations left out."""
    found = [c for c in _GROUP["cases"] if c["source"].endswith("(%s)" % test)]
    assert found, test
    return [c for c in found if c["description"] not in DEVIATIONS]


def spec_of(options: Dict[str, Any]) -> HealthCheckSpec:
    """A HealthCheckSpec from the Go test's option names."""
    headers = tuple(sorted((options.get("Headers") or {}).items()))
    return HealthCheckSpec(
        path=options.get("Path", ""),
        port=options.get("Port", 0),
        scheme=options.get("Scheme", ""),
        hostname=options.get("Hostname", ""),
        headers=headers,
        method=options.get("Method", "") or "GET",
    )


def run_checks(start_up: bool, codes: List[int], expected: int = 0) -> Tuple[int, int, bool]:
    """(DOWN verdicts, UP verdicts, final state) of a server checked with ``codes``: Traefik
    v3 calls SetStatus once per check, whether or not the state changes."""
    states = ServerStates(("http://a",))
    if not start_up:
        states.set("http://a", False)
    down = up = 0
    for code in codes:
        verdict = healthy_status(code, expected)
        states.set("http://a", verdict)
        if verdict:
            up += 1
        else:
            down += 1
    return down, up, states.up("http://a")


def transitions(start_up: bool, codes: List[int]) -> Tuple[int, int, bool]:
    """(transitions to DOWN, transitions to UP, final state), as Traefik v2 counts them."""
    states = ServerStates(("http://a",))
    if not start_up:
        states.set("http://a", False)
    down = up = 0
    for code in codes:
        verdict = healthy_status(code, 0)
        if states.set("http://a", verdict):
            if verdict:
                up += 1
            else:
                down += 1
    return down, up, states.up("http://a")


class VectorTests(SynchronousTestCase):
    """Every non-deviating case of the services.json health-checks group."""

    def test_v2_transitions(self) -> None:
        """v2.10 TestSetBackendsConfiguration: removals and re-additions happen on changes."""
        for case in cases("TestSetBackendsConfiguration"):
            inputs, expected = case["inputs"], case["expected"]
            got = transitions(inputs["startHealthy"], inputs["healthSequence"])
            want = (
                expected["expectedNumRemovedServers"],
                expected["expectedNumUpsertedServers"],
                expected["expectedGaugeValue"] == 1,
            )
            self.assertEqual(got, want, case["description"])

    def test_v3_launch(self) -> None:
        """v3 TestServiceHealthChecker_Launch: one SetStatus per check, the final status."""
        for case in cases("TestServiceHealthChecker_Launch"):
            if case["inputs"].get("mode") == "grpc":
                continue  # run against a gRPC server in tests/http/test_http_healthcheck.py
            inputs, expected = case["inputs"], case["expected"]
            codes = inputs["server"]["httpServerReturnsStatusSequence"]
            got = run_checks(True, codes, inputs.get("status", 0))
            want = (
                expected["expNumRemovedServers"],
                expected["expNumUpsertedServers"],
                expected["targetStatus"] == "UP",
            )
            self.assertEqual(got, want, case["description"])
            self.assertEqual(expected["expGaugeValue"], 1 if got[2] else 0)

    def test_v2_new_request(self) -> None:
        """v2.10 TestNewRequest: the URL a check asks for, or an error."""
        for case in cases("TestNewRequest"):
            inputs, expected = case["inputs"], case["expected"]["expected"]
            spec = spec_of(inputs["options"])
            if expected["err"]:
                self.assertRaises(TargetError, check_request, inputs["serverURL"], spec)
                continue
            request = check_request(inputs["serverURL"], spec)
            self.assertEqual(request.url, expected["value"], case["description"])

    def test_v2_request_options(self) -> None:
        """v2.10 TestRequestOptions: Host, custom header and method of a check."""
        for case in cases("TestRequestOptions"):
            inputs, expected = case["inputs"], case["expected"]
            request = check_request(inputs["serverURL"], spec_of(inputs["options"]))
            headers = dict(request.headers)
            self.assertEqual(headers["Host"], expected["expectedHostname"], case["description"])
            self.assertEqual(headers.get("Custom-Header", ""), expected.get("expectedHeader", ""))
            self.assertEqual(request.method, expected["expectedMethod"])

    def test_v3_new_request(self) -> None:
        """v3 TestServiceHealthChecker_newRequest: URL, Host, header and method, or an error."""
        for case in cases("TestServiceHealthChecker_newRequest"):
            inputs, expected = case["inputs"], case["expected"]
            spec = spec_of(inputs["config"])
            if expected.get("expError"):
                self.assertRaises(TargetError, check_request, inputs["targetURL"], spec)
                continue
            request = check_request(inputs["targetURL"], spec)
            headers = dict(request.headers)
            self.assertEqual(request.url, expected["expTarget"], case["description"])
            self.assertEqual(headers["Host"], expected["expHostname"], case["description"])
            self.assertEqual(headers.get("Custom-Header", ""), expected.get("expHeader", ""))
            self.assertEqual(request.method, expected["expMethod"])

    def test_v3_durations(self) -> None:
        """v3 TestNewServiceHealthChecker_durations, through the YAML: defaults 30s and 5s."""
        for case in cases("TestNewServiceHealthChecker_durations"):
            config = case["inputs"]["config"]
            fields = "".join(
                ", %s: %ss" % (key.lower(), go_seconds(config[key]["$expr"]))
                for key in ("Interval", "Timeout")
                if key in config
            )
            spec = route_health("{path: /%s}" % fields)
            expected = case["expected"]
            self.assertEqual(
                (spec.interval, spec.timeout),
                (
                    go_seconds(expected["expInterval"]["$expr"]),
                    go_seconds(expected["expTimeout"]["$expr"]),
                ),
                case["description"],
            )

    def test_deviations_are_vectors(self) -> None:
        """Every recorded deviation names a case of the group."""
        names = {case["description"] for case in _GROUP["cases"]}
        self.assertEqual(set(DEVIATIONS) - names, set())


def go_seconds(expr: str) -> float:
    """Seconds of the Go duration expressions the durations vectors use."""
    if "DefaultHealthCheckInterval" in expr:
        return 30.0
    if "DefaultHealthCheckTimeout" in expr:
        return 5.0
    match = re.search(r"(-)? ?time\.Second(?: \* (\d+))?", expr)
    assert match is not None, expr
    value = float(match.group(2) or 1)
    return -value if match.group(1) else value


ROUTE = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: app}
spec:
  routes:
    - match: Host(`a`)
      services:
        - {name: a, port: 80, healthCheck: %s}
"""


def route_health(text: str) -> HealthCheckSpec:
    """The healthCheck read from a route's service written ``healthCheck: <text>``."""
    loaded = load_files(STATIC, [("h.yaml", textwrap.dedent(ROUTE % text))])
    assert not loaded.errors, [str(e) for e in loaded.errors]
    spec = loaded.resources[0].routes[0].services[0].health_check  # type: ignore[attr-defined]
    assert spec is not None
    return spec  # type: ignore[no-any-return]


class ReadingTests(SynchronousTestCase):
    """healthCheck fields as the YAML gives them."""

    def test_fields(self) -> None:
        """Every field of Traefik's healthCheck, and the defaults when it is empty."""
        table = [
            ("{}", HealthCheckSpec(path="")),
            ("{path: /h, interval: 0}", HealthCheckSpec(path="/h")),
            (
                "{path: /h, interval: 5s, unhealthyInterval: 1s, timeout: 2s, scheme: https,"
                " mode: http, hostname: x.example, port: 8443, headers: {X-A: b},"
                " followRedirects: false, method: HEAD, status: 204}",
                HealthCheckSpec(
                    path="/h",
                    interval=5.0,
                    unhealthy_interval=1.0,
                    timeout=2.0,
                    scheme="https",
                    hostname="x.example",
                    port=8443,
                    headers=(("X-A", "b"),),
                    follow_redirects=False,
                    method="HEAD",
                    status=204,
                ),
            ),
            (
                "{path: /h, interval: 7s}",
                HealthCheckSpec(path="/h", interval=7.0, unhealthy_interval=7.0),
            ),
        ]
        for text, expected in table:
            self.assertEqual(route_health(text), expected, text)


class StatusTests(SynchronousTestCase):
    """healthy_status and ServerStates."""

    def test_status_table(self) -> None:
        """0 accepts 2xx and 3xx; a set status must match exactly."""
        table = [
            (200, 0, True),
            (204, 0, True),
            (308, 0, True),
            (399, 0, True),
            (199, 0, False),
            (404, 0, False),
            (500, 0, False),
            (404, 404, True),
            (200, 503, False),
        ]
        for code, expected, verdict in table:
            self.assertEqual(healthy_status(code, expected), verdict, (code, expected))

    def test_states(self) -> None:
        """Servers start UP; set reports transitions only; unknown keys are ignored."""
        states = ServerStates(("a", "b"))
        self.assertEqual(states.status(), {"a": "UP", "b": "UP"})
        steps = [("a", False, True), ("a", False, False), ("b", False, True), ("x", False, False)]
        for key, up, changed in steps:
            self.assertEqual(states.set(key, up), changed, (key, up))
        self.assertEqual((states.any_up(), states.down_keys()), (False, ("a", "b")))
        self.assertTrue(states.set("b", True))
        self.assertEqual((states.any_up(), states.up_keys()), (True, ("b",)))


class PassiveWindowTests(SynchronousTestCase):
    """Failures within the window take a server out; a success forgets them."""

    def test_table(self) -> None:
        """(failure window, max attempts, events (time, ok)) -> the events that take it out."""
        table = [
            (10.0, 1, [(0.0, False)], [0]),
            (10.0, 3, [(0.0, False), (1.0, False), (2.0, False)], [2]),
            (10.0, 3, [(0.0, False), (1.0, False), (11.0, False)], []),
            (10.0, 2, [(0.0, False), (1.0, True), (2.0, False)], []),
            (10.0, 2, [(0.0, False), (5.0, False), (6.0, False), (7.0, False)], [1, 3]),
        ]
        for window, attempts, events, expected in table:
            passive = PassiveWindow(PassiveHealthSpec(window, attempts))
            out = []
            for index, (now, ok) in enumerate(events):
                if ok:
                    passive.success("s")
                elif passive.failure("s", now):
                    out.append(index)
            self.assertEqual(out, expected, (window, attempts, events))

    def test_spec_is_a_value(self) -> None:
        """Equal settings are equal values (a reload with the same settings keeps the node)."""
        self.assertEqual(
            PassiveHealthSpec(10.0, 2), attrs.evolve(PassiveHealthSpec(), max_failed_attempts=2)
        )


class GRPCVerdictTests(SynchronousTestCase):
    """The verdict on a grpc.health.v1 Check answer."""

    def test_table(self) -> None:
        """(HTTP status, grpc-status, body) -> (healthy, why)."""
        serving = b"\x00\x00\x00\x00\x02\x08\x01"
        table = [
            (200, "0", serving, (True, "gRPC health check: SERVING")),
            (
                200,
                "0",
                b"\x00\x00\x00\x00\x02\x08\x02",
                (False, "received gRPC status code: NOT_SERVING"),
            ),
            (
                200,
                "0",
                b"\x00\x00\x00\x00\x02\x08\x03",
                (False, "received gRPC status code: SERVICE_UNKNOWN"),
            ),
            (200, "0", b"\x00\x00\x00\x00\x00", (False, "received gRPC status code: UNKNOWN")),
            # Unknown fields (a string, a fixed64) are skipped.
            (
                200,
                "0",
                b"\x00\x00\x00\x00\x0f\x12\x02hi\x19" + b"\x00" * 8 + b"\x08\x01",
                (True, "gRPC health check: SERVING"),
            ),
            (200, "12", b"", (False, "gRPC health check failed: grpc-status 12")),
            (200, "", serving, (False, "gRPC health check failed: grpc-status missing")),
            (503, "0", serving, (False, "gRPC health check answered HTTP 503")),
            (
                200,
                "0",
                b"\x01\x00\x00\x00\x02\x08\x01",
                (False, "gRPC health check: no uncompressed response message"),
            ),
            (
                200,
                "0",
                b"\x00\x00\x00\x00\x03\x08\x01",
                (False, "gRPC health check: malformed response message"),
            ),
            (
                200,
                "0",
                b"\x00\x00\x00\x00\x02\x08\x81",
                (False, "gRPC health check: malformed response message"),
            ),
            (
                200,
                "0",
                b"\x00\x00\x00\x00\x02\x0b\x01",
                (False, "gRPC health check: malformed response message"),
            ),
        ]
        for status, grpc_status, body, expected in table:
            self.assertEqual(grpc_verdict(status, grpc_status, body), expected, body)
