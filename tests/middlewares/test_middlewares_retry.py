"""Tests for tsproxy.middlewares.retry and statusrange: every case of Traefik's retry vectors,
played through the policy the step leaves as the engine must play it, and the backoff."""

from __future__ import annotations

from typing import Any, Dict, List

from twisted.trial.unittest import SynchronousTestCase

from tests.authfixture import FakeContext, fields_of, load_vectors, request_of
from tests.trafficfixture import HookedContext
from tsproxy.config.schema import FieldError, parse_duration
from tsproxy.middlewares import retry
from tsproxy.middlewares.base import BuildError
from tsproxy.middlewares.statusrange import parse_status_ranges, status_in

VECTORS = load_vectors("retry.json")


def request_body(case_request: Dict[str, Any]) -> bytes:
    if "bodySize" in case_request:
        return case_request["bodyByte"].encode() * case_request["bodySize"]
    return str(case_request.get("body", "")).encode()


def play(case: Dict[str, Any]) -> Dict[str, Any]:
    """The engine's part: dispatch, ask the policy after each attempt that has not reached
    the client, replay the body when it was kept, deliver the last outcome."""
    step = retry.build(retry.parse(fields_of(case["config"])), "r", HookedContext())
    request = request_of(case["request"])
    body = request_body(case["request"])
    step.handle(request)
    policy = request.retry
    elapsed = 0.0
    made = 0
    seen_bodies: List[bytes] = []
    for outcome in case["attempts"]:
        made += 1
        seen_bodies.append(body)
        elapsed += parse_duration(outcome.get("delay", "0s"))
        kind = outcome["kind"]
        status = outcome.get("status", 502 if kind == "noResponse" else 200)
        if policy is None or outcome.get("websocketUpgrade"):
            break
        network = kind in ("networkError", "noResponse")
        if not network and len(body) > policy.body_limit >= 0:
            break  # the body was not kept: a status retry cannot replay it
        if case["request"].get("bodyReadFails") and not network:
            break
        delay = policy.next_delay(made, network, status, elapsed)
        if delay is None:
            break
        elapsed += delay
    last = case["attempts"][made - 1]
    headers = {name.lower() for name in last.get("headers", {})}
    for item in last.get("sequence", ()):
        headers.update(name.lower() for name in item.get("addHeaders", {}))
    return {
        "status": last.get("status", 200),
        "retries": made - 1,
        "headers": headers,
        "bodies": seen_bodies,
    }


class VectorTests(SynchronousTestCase):
    """retry.json, every case."""

    def test_vectors(self) -> None:
        """Each case makes Traefik's attempts and delivers Traefik's outcome."""
        for index, case in enumerate(VECTORS["cases"]):
            expect = case["expect"]
            with self.subTest("%d %s" % (index, case["name"])):
                if "error" in expect:
                    if expect["error"] is None:
                        retry.parse(fields_of(case["config"]))
                    else:
                        with self.assertRaises(FieldError) as caught:
                            retry.parse(fields_of(case["config"]))
                        self.assertIn(expect["error"], str(caught.exception))
                    continue
                got = play(case)
                if "status" in expect:
                    self.assertEqual(got["status"], expect["status"])
                if "retries" in expect:
                    self.assertEqual(got["retries"], expect["retries"])
                for key in ("nextCalls", "backendCalls"):
                    if key in expect:
                        self.assertEqual(got["retries"] + 1, expect[key])
                for name, value in expect.get("headers", {}).items():
                    self.assertEqual(name.lower() in got["headers"], value is not None, name)
                if "backendSeesBodyEachAttempt" in expect:
                    want = expect["backendSeesBodyEachAttempt"].encode()
                    self.assertEqual(got["bodies"], [want] * (got["retries"] + 1))
                if "body" in expect:  # attempts: 1, the response passes as written
                    first = case["attempts"][0]
                    body = first.get("body") or [i.get("body", "") for i in first["sequence"]]
                    self.assertEqual("".join(p for p in body if p != "(flush)"), expect["body"])


class BackoffTests(SynchronousTestCase):
    """The schedule and the policy's limits."""

    def test_intervals(self) -> None:
        """Waits grow from initialInterval to at most twice it over the attempts."""
        self.assertEqual(retry.backoff_intervals(0.1, 1), [])
        self.assertEqual(retry.backoff_intervals(0, 4), [0.0, 0.0, 0.0])
        waits = retry.backoff_intervals(0.1, 5)
        self.assertEqual(len(waits), 4)
        self.assertAlmostEqual(waits[0], 0.1)
        self.assertTrue(all(a < b for a, b in zip(waits, waits[1:])))
        self.assertLessEqual(waits[-1], 0.2)

    def test_randomized(self) -> None:
        """Each wait is randomized within ±50% as cenkalti/backoff does."""
        spec = retry.parse(fields_of({"attempts": 3, "initialInterval": "100ms"}))
        low = retry.RetryPolicy(spec, "GET", retry.backoff_intervals(0.1, 3), lambda: 0.0)
        high = retry.RetryPolicy(spec, "GET", retry.backoff_intervals(0.1, 3), lambda: 0.999)
        self.assertAlmostEqual(low.next_delay(1, True, 502, 0) or 0, 0.05)
        self.assertAlmostEqual(high.next_delay(1, True, 502, 0) or 0, 0.1499, places=4)
        self.assertIsNone(low.next_delay(3, True, 502, 0))

    def test_status_ranges(self) -> None:
        """Codes and inclusive ranges; Go's Atoi text for a bad one."""
        ranges = parse_status_ranges(["404", "500-503"])
        self.assertEqual(
            [status_in(s, ranges) for s in (404, 405, 500, 503, 504)],
            [True, False, True, True, False],
        )
        with self.assertRaises(ValueError) as caught:
            parse_status_ranges(["5xx"])
        self.assertEqual(str(caught.exception), 'strconv.Atoi: parsing "5xx": invalid syntax')

    def test_needs_hooks(self) -> None:
        """Without the engine's re-dispatch the kind does not build."""
        spec = retry.parse(fields_of({"attempts": 2}))
        self.assertRaises(BuildError, retry.build, spec, "r", FakeContext())
