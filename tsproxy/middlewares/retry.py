"""Traefik's retry middleware: the request is sent again after a network error (nothing
sent or nothing answered) or a listed status, while attempts, timeout and the replayable
body allow, with Traefik's exponential backoff. The step only leaves a policy on the
Request (`base.RetryPolicy`); the engine dispatches again before any byte reached the
client."""

from __future__ import annotations

import random
from typing import Callable, List, Optional

import attrs

from tsproxy.config.schema import Fields
from tsproxy.middlewares.base import (
    BuildContext,
    BuildError,
    MiddlewareKind,
    Request,
    StepResult,
)
from tsproxy.middlewares.statusrange import StatusRanges, parse_status_ranges, status_in

__all__ = ["KINDS", "Retry", "RetryPolicy", "RetrySpec", "backoff_intervals"]

#: Methods whose status retry needs retryNonIdempotentMethod (Traefik's list).
NON_IDEMPOTENT = ("POST", "PATCH", "LOCK")


@attrs.frozen
class RetrySpec:
    attempts: int
    initial_interval: float = 0.0
    timeout: float = 0.0
    max_request_body_bytes: int = 2097152
    status: StatusRanges = ()
    disable_retry_on_network_error: bool = False
    retry_non_idempotent_method: bool = False


def parse(fields: Fields) -> RetrySpec:
    attempts = fields.integer("attempts", 0)
    if attempts <= 0:
        raise fields.fail("attempts", f"incorrect (or empty) value for attempt ({attempts})")
    texts = fields.strings("status")
    try:
        status = parse_status_ranges(texts)
    except ValueError as error:
        raise fields.fail("status", f"creating HTTP code ranges: {error}") from None
    disable = fields.boolean("disableRetryOnNetworkError", False)
    if disable and not status:
        raise fields.fail(
            "disableRetryOnNetworkError",
            "retry middleware requires at least HTTP status codes or retry on TCP",
        )
    spec = RetrySpec(
        attempts,
        fields.duration("initialInterval", 0.0),
        fields.duration("timeout", 0.0),
        fields.integer("maxRequestBodyBytes", 2097152, minimum=-1),
        status,
        disable,
        fields.boolean("retryNonIdempotentMethod", False),
    )
    fields.done()
    return spec


def backoff_intervals(initial: float, attempts: int) -> List[float]:
    """The un-randomized waits before retries 1..attempts-1: cenkalti/backoff's exponential
    schedule with Traefik's multiplier 2**(1/(attempts-1)) (the last wait is at most twice
    the first); all zero without an initialInterval."""
    if attempts < 2 or initial <= 0:
        return [0.0] * max(0, attempts - 1)
    multiplier = 2 ** (1 / (attempts - 1))
    return [initial * multiplier**index for index in range(attempts - 1)]


@attrs.define(eq=False)
class RetryPolicy:
    """The policy for one request (`base.RetryPolicy`)."""

    spec: RetrySpec
    method: str
    intervals: List[float]
    random: Callable[[], float] = random.random

    @property
    def body_limit(self) -> int:
        return self.spec.max_request_body_bytes

    def status_retry_allowed(self) -> bool:
        """Status retries apply to this method (the engine also needs the body replayable)."""
        return bool(self.spec.status) and (
            self.spec.retry_non_idempotent_method or self.method not in NON_IDEMPOTENT
        )

    def next_delay(
        self, attempt: int, network_error: bool, status: int, elapsed: float
    ) -> Optional[float]:
        if attempt >= self.spec.attempts:
            return None
        if self.spec.timeout and elapsed >= self.spec.timeout:
            return None
        if network_error:
            if self.spec.disable_retry_on_network_error:
                return None
        elif not (self.status_retry_allowed() and status_in(status, self.spec.status)):
            return None
        base = self.intervals[attempt - 1]
        # cenkalti/backoff's RandomizationFactor 0.5: uniform in [0.5, 1.5) × the interval.
        return base * (0.5 + self.random()) if base else 0.0


@attrs.define(eq=False)
class Retry:
    """One built retry step."""

    name: str
    spec: RetrySpec
    intervals: List[float]

    def handle(self, request: Request) -> StepResult:
        if self.spec.attempts > 1:
            request.retry = RetryPolicy(self.spec, request.method, self.intervals)
        return None


def build(spec: RetrySpec, name: str, context: BuildContext) -> Retry:
    if not getattr(context, "traffic_hooks", False):
        raise BuildError("retry needs the engine to dispatch a request again, not wired yet")
    return Retry(name, spec, backoff_intervals(spec.initial_interval, spec.attempts))


KINDS = (MiddlewareKind("retry", parse, build),)
