"""Tests for tsproxy.middlewares.inflight: Traefik's inFlightReq vectors (oxy's connlimit
scenarios), the source criteria, and the slot given back however the exchange ends."""

from __future__ import annotations

from typing import Any, Dict, List

from twisted.trial.unittest import SynchronousTestCase

from tests.authfixture import FakeContext, fields_of, load_vectors, request_of
from tests.trafficfixture import HookedContext, deliver
from tsproxy.config.schema import FieldError
from tsproxy.middlewares import inflight
from tsproxy.middlewares.base import Answer, BuildError, ExchangeEnd, Request

VECTORS = load_vectors("inFlightReq.json")


def build(config: Dict[str, Any]) -> inflight.InFlightReq:
    return inflight.build(inflight.parse(fields_of(config)), "ifr", HookedContext())


class VectorTests(SynchronousTestCase):
    """inFlightReq.json, every case and step."""

    def test_vectors(self) -> None:
        """Each scenario gives oxy's answers in order on one instance."""
        for case in VECTORS["cases"]:
            step = build(case["config"])
            held: List[Request] = []
            single = [{"request": case.get("request"), "expect": case.get("expect")}]
            for item in case.get("steps", single):
                expect = item["expect"]
                with self.subTest(case["name"] + ": " + item.get("action", "")):
                    if "statusOfA" in expect:
                        client = deliver(held.pop(0), 200, writes=(b"ok",))
                        self.assertEqual(client.status, expect["statusOfA"])
                        continue
                    request = request_of(item["request"])
                    result = step.handle(request)
                    called = not isinstance(result, Answer)
                    if "backend" in expect:
                        self.assertEqual(called, expect["backend"]["called"])
                    if isinstance(result, Answer):
                        self.assertEqual(result.status, expect["status"])
                        self.assertEqual(result.body.decode(), expect["body"])
                    elif "action" in item and "holds" in item["action"]:
                        held.append(request)
                    else:
                        self.assertEqual(deliver(request, 200).status, expect["status"])


class SourceTests(SynchronousTestCase):
    """Sources and releases."""

    def test_default_host(self) -> None:
        """Without a criterion requests are grouped by Host, not by IP."""
        step = build({"amount": 1})
        first = request_of({"host": "a.example", "remoteAddr": "10.0.0.1:1"})
        self.assertIsNone(step.handle(first))
        other_ip = request_of({"host": "a.example", "remoteAddr": "10.0.0.2:1"})
        self.assertIsInstance(step.handle(other_ip), Answer)
        self.assertIsNone(step.handle(request_of({"host": "b.example"})))

    def test_ip_strategy(self) -> None:
        """ipStrategy depth picks the X-Forwarded-For entry."""
        step = build({"amount": 1, "sourceCriterion": {"ipStrategy": {"depth": 1}}})
        self.assertIsNone(step.handle(request_of({"headers": {"X-Forwarded-For": "1.1.1.1"}})))
        self.assertIsNone(step.handle(request_of({"headers": {"X-Forwarded-For": "2.2.2.2"}})))
        refused = step.handle(request_of({"headers": {"X-Forwarded-For": "1.1.1.1"}}))
        self.assertIsInstance(refused, Answer)

    def test_released_once_however_it_ends(self) -> None:
        """A failed or abandoned exchange gives its slot back, once; the table empties."""
        step = build({"amount": 2})
        request = request_of({})
        self.assertIsNone(step.handle(request))
        for hook in request.end_hooks * 2:  # ended twice by mistake: released once
            hook(ExchangeEnd(0, 1.0, error="client closed"))
        self.assertEqual(step.counts, {})
        a, b = request_of({}), request_of({})
        step.handle(a)
        step.handle(b)
        self.assertIsInstance(step.handle(request_of({})), Answer)
        a.end_hooks[0](ExchangeEnd(502, 0.1, network_error=True))
        self.assertIsNone(step.handle(request_of({})))

    def test_config(self) -> None:
        """Criteria are exclusive; without the engine's end hook the kind does not build."""
        config = {"amount": 1, "sourceCriterion": {"ipStrategy": {}, "requestHost": True}}
        with self.assertRaises(FieldError) as caught:
            inflight.parse(fields_of(config))
        self.assertIn("iPStrategy and RequestHost are mutually exclusive", str(caught.exception))
        spec = inflight.parse(fields_of({"amount": 3}))
        self.assertRaises(BuildError, inflight.build, spec, "ifr", FakeContext())
        self.assertRaises(FieldError, inflight.parse, fields_of({"amount": -1}))
