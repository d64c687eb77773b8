"""Tests for tsproxy.middlewares.breaker and circuitbreaker: every case of Traefik's
circuitBreaker vectors (parse, evaluate, behaviour on a Clock), located expression errors."""

from __future__ import annotations

import re
from typing import Any, Dict, List

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.authfixture import FakeContext, fields_of, load_vectors, request_of
from tests.trafficfixture import HookedContext
from tsproxy.config.schema import FieldError, parse_duration
from tsproxy.middlewares import circuitbreaker
from tsproxy.middlewares.base import Answer, BuildError, ExchangeEnd
from tsproxy.middlewares.breaker import Metrics, parse_expression

VECTORS = load_vectors("circuitBreaker.json")


def metrics_of(clock: Clock, recorded: Dict[str, int], latencies: Any = None) -> Metrics:
    metrics = Metrics(clock.seconds)
    extra = list(latencies) if isinstance(latencies, list) else []
    for code, count in recorded.items():
        for _ in range(count):
            metrics.record(int(code), extra.pop(0) / 1000 if extra else 0.0)
    return metrics


_RECORDED = re.compile(r"(\d+) x (\d{3})")


def recorded_of(action: str) -> Dict[str, int]:
    if "network error ratio 0.6" in action:
        return {"504": 60, "200": 40}
    return {code: int(count) for count, code in _RECORDED.findall(action)}


class Exchange:
    """Plays the engine for one step: the chain, the service's status, the end hook."""

    def __init__(self, step: circuitbreaker.CircuitBreaker) -> None:
        self.step = step

    def get(self, status: int = 200, body: str = "hello") -> Any:
        request = request_of({})
        answer = self.step.handle(request)
        if isinstance(answer, Answer):
            for hook in request.end_hooks:
                hook(ExchangeEnd(answer.status, 0.0))
            return answer.status, answer.body.decode()
        for hook in request.end_hooks:
            hook(ExchangeEnd(status, 0.0))
        return status, body


class VectorTests(SynchronousTestCase):
    """circuitBreaker.json, every case."""

    def test_vectors(self) -> None:
        """Each case holds for its harness."""
        seen = set()
        for case in VECTORS["cases"]:
            seen.add(case["harness"])
            with self.subTest(case["name"]):
                getattr(self, "run_" + case["harness"])(case)
        self.assertEqual(seen, {"parse", "evaluate", "behaviour"})

    def run_parse(self, case: Dict[str, Any]) -> None:
        fields = fields_of(case["config"])
        if case["expect"]["valid"]:
            circuitbreaker.parse(fields)
        else:
            self.assertRaises(FieldError, circuitbreaker.parse, fields)

    def run_evaluate(self, case: Dict[str, Any]) -> None:
        clock = Clock()
        metrics = case["metrics"]
        recorded = metrics_of(clock, metrics["recorded"], metrics.get("latenciesMs"))
        condition = parse_expression(case["config"]["expression"])
        self.assertEqual(condition(recorded), case["expect"]["tripped"])

    def run_behaviour(self, case: Dict[str, Any]) -> None:
        clock = Clock()
        spec = circuitbreaker.parse(fields_of(case["config"]))
        step = circuitbreaker.make(spec, "cb", clock.seconds)
        exchange = Exchange(step)
        breaker = step.breaker
        for item in case["steps"]:
            action = item["action"]
            if "t" in item:
                clock.advance(parse_duration(item["t"]) - clock.seconds())
            if "while tripped" in action:
                breaker.state, breaker.until = "tripped", clock.seconds() + 10
            if "metrics" in action:
                breaker.metrics = metrics_of(clock, recorded_of(action))
            backend = item.get("backend", {})
            results: List[Any] = []
            count = 100 if "100 x GET" in action else (1 if "GET" in action else 0)
            for _ in range(count):
                results.append(exchange.get(backend.get("status", 200), backend.get("body", "")))
            expect = item.get("expect", {})
            if "status" in expect:
                self.assertEqual(results[-1][0], expect["status"], action)
            if "body" in expect:
                self.assertEqual(results[-1][1], expect["body"], action)
            if "state" in expect:
                self.assertEqual(breaker.state, expect["state"], item)
            if expect.get("some200"):
                statuses = [status for status, _ in results]
                self.assertIn(200, statuses)
                self.assertIn(spec.response_code, statuses)


class ExpressionTests(SynchronousTestCase):
    """Expression errors say where; the step is refused without the engine's hooks."""

    def test_located(self) -> None:
        """A bad expression is an error on the expression key, with the column."""
        table = [
            ("NetworkErrorRatio() > 1", "column 23"),
            ("Foo() > 0.5", "unknown function Foo"),
            ("NetworkErrorRatio() >", "column 22"),
            ("NetworkErrorRatio() > 0.5 &&", "expected a metric"),
            ("NetworkErrorRatio() > 0.5 % 2", "unexpected '%'"),
        ]
        for text, message in table:
            with self.subTest(text):
                with self.assertRaises(FieldError) as caught:
                    circuitbreaker.parse(fields_of({"expression": text}))
                self.assertIn("expression", str(caught.exception))
                self.assertIn(message, str(caught.exception))

    def test_latency_quantile(self) -> None:
        """Latency quantiles follow the recorded distribution; old buckets roll out."""
        clock = Clock()
        metrics = Metrics(clock.seconds)
        for ms in range(1, 101):
            metrics.record(200, ms / 1000)
        self.assertEqual(metrics.latency_at_quantile_ms(50.0), 50)
        self.assertEqual(metrics.latency_at_quantile_ms(99.0), 99)
        self.assertEqual(metrics.total(), 100)
        clock.advance(11)
        self.assertEqual(metrics.total(), 0)
        self.assertEqual(metrics.latency_at_quantile_ms(50.0), 50)
        clock.advance(60)
        self.assertEqual(metrics.latency_at_quantile_ms(50.0), 0)

    def test_needs_hooks(self) -> None:
        """Without the engine's end hook the kind does not build (fail closed)."""
        spec = circuitbreaker.parse(fields_of({"expression": "NetworkErrorRatio() > 0.5"}))
        self.assertRaises(BuildError, circuitbreaker.build, spec, "cb", FakeContext(Clock()))
        self.assertIsNotNone(circuitbreaker.build(spec, "cb", HookedContext(Clock())))
