"""Traefik's circuitBreaker middleware: an expression over rolling metrics of the service's
answers trips the breaker; while tripped requests get responseCode without reaching the
service; then traffic ramps back during recoveryDuration (tsproxy.middlewares.breaker)."""

from __future__ import annotations

from typing import Any, Callable

import attrs

from tsproxy.config.schema import Fields
from tsproxy.middlewares.base import (
    Answer,
    BuildContext,
    BuildError,
    ExchangeEnd,
    MiddlewareKind,
    Request,
    StepResult,
)
from tsproxy.middlewares.breaker import Breaker, ExpressionError, parse_expression
from tsproxy.middlewares.ipallowlist import go_status_text

__all__ = ["KINDS", "CircuitBreaker", "CircuitBreakerSpec"]


@attrs.frozen
class CircuitBreakerSpec:
    expression: str
    check_period: float = 0.1
    fallback_duration: float = 10.0
    recovery_duration: float = 10.0
    response_code: int = 503


def parse(fields: Fields) -> CircuitBreakerSpec:
    expression = fields.string("expression", required=True)
    try:
        parse_expression(expression)
    except ExpressionError as error:
        raise fields.fail("expression", f"{error}: {expression!r}") from None
    response_code = fields.integer("responseCode", 0) or 503
    if not 100 <= response_code <= 999:
        raise fields.fail("responseCode", f"invalid HTTP status code {response_code}")
    spec = CircuitBreakerSpec(
        expression,
        fields.duration("checkPeriod", 0.1) or 0.1,
        fields.duration("fallbackDuration", 10.0) or 10.0,
        fields.duration("recoveryDuration", 10.0) or 10.0,
        response_code,
    )
    fields.done()
    return spec


@attrs.define(eq=False)
class CircuitBreaker:
    """One built circuitBreaker step around its Breaker."""

    name: str
    breaker: Breaker
    response_code: int

    def handle(self, request: Request) -> StepResult:
        if not self.breaker.allow():
            body = go_status_text(self.response_code).encode("ascii")
            return Answer(
                self.response_code, (("Content-Type", "text/plain; charset=utf-8"),), body
            )
        request.on_end(self._ended)
        return None

    def _ended(self, end: ExchangeEnd) -> None:
        # Traefik's proxy writes 499 for a client that left before the answer.
        self.breaker.record(end.status or 499, end.duration)


def make(spec: CircuitBreakerSpec, name: str, now: Callable[[], float]) -> CircuitBreaker:
    """The step with its own clock (`build` takes the reactor's)."""
    breaker = Breaker(
        parse_expression(spec.expression),
        now,
        spec.check_period,
        spec.fallback_duration,
        spec.recovery_duration,
    )
    return CircuitBreaker(name, breaker, spec.response_code)


def build(spec: CircuitBreakerSpec, name: str, context: BuildContext) -> CircuitBreaker:
    if not getattr(context, "traffic_hooks", False):
        raise BuildError("circuitBreaker needs the engine's end-of-exchange hook, not wired yet")
    clock: Any = context.reactor

    def now() -> float:
        if clock is None:  # built without one (tsproxy check): the running reactor
            from twisted.internet import reactor

            return float(reactor.seconds())
        return float(clock.seconds())

    return make(spec, name, now)


KINDS = (MiddlewareKind("circuitBreaker", parse, build),)
