"""Traefik's rateLimit middleware: a token bucket per source (sourceCriterion), requests
delayed up to maxDelay for their token or refused with 429; in memory per middleware, or
shared through Redis (Traefik 3.4+ ``redis``) by every proxy that names the same middleware."""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import attrs

from tsproxy.config.schema import FieldError, Fields
from tsproxy.logs import get_logger
from tsproxy.middlewares.base import (
    Answer,
    BuildContext,
    MiddlewareKind,
    Request,
    StepResult,
)
from tsproxy.middlewares.source import (
    SourceCriterion,
    SourceError,
    parse_source_criterion,
    source_of,
)
from tsproxy.middlewares.tokenbucket import BucketTable, max_delay, retry_headers

__all__ = ["KINDS", "RateLimit", "RateLimitSpec", "RedisSpec", "limits_of"]

log = get_logger(__name__)

_TEXT = (("Content-Type", "text/plain; charset=utf-8"),)
TOO_MANY = b"Too Many Requests"


@attrs.frozen
class RedisTLSSpec:
    ca_secret: str = ""
    cert_secret: str = ""
    insecure_skip_verify: bool = False


@attrs.frozen
class RedisSpec:
    """Traefik's ``redis`` section (defaults as Traefik's)."""

    endpoints: Tuple[str, ...] = ("localhost:6379",)
    username: str = ""
    password: str = ""
    secret: str = ""
    db: int = 0
    pool_size: int = 0
    min_idle_conns: int = 0
    max_active_conns: int = 0
    read_timeout: float = 3.0
    write_timeout: float = 3.0
    dial_timeout: float = 5.0
    tls: Optional[RedisTLSSpec] = None


@attrs.frozen
class RateLimitSpec:
    average: int = 0
    period: float = 1.0
    burst: int = 1
    source: SourceCriterion = SourceCriterion()
    redis: Optional[RedisSpec] = None


def limits_of(spec: RateLimitSpec) -> Tuple[float, int, float]:
    """(rate in tokens per second — inf when average is 0 —, burst, maxDelay seconds)."""
    burst = max(1, spec.burst)
    if spec.average == 0:
        return math.inf, burst, 0.0
    rate = spec.average / (spec.period or 1.0)
    return rate, burst, max_delay(rate)


def _endpoint(value: object, path: str, line: int) -> str:
    if not isinstance(value, str) or not value:
        raise FieldError(line, path, "must be a host:port string")
    host, colon, port = value.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise FieldError(line, path, f"must be host:port, not {value!r}")
    return value


def _redis(fields: Fields) -> Optional[RedisSpec]:
    present, section = fields.section("redis")
    if not present:
        return None
    if section is None:
        return RedisSpec()
    items = section.items("endpoints")
    endpoints = tuple(_endpoint(value, path, line) for value, path, line in items)
    if len(endpoints) > 1:
        raise section.fail(
            "endpoints",
            "several endpoints make a Redis Cluster client in Traefik; tsproxy talks to one "
            "Redis server (or a proxy in front of a cluster): give one endpoint",
        )
    tls: Optional[RedisTLSSpec] = None
    tls_section = section.mapping("tls")
    if tls_section is not None:
        for key in ("ca", "cert", "key"):
            if tls_section.has(key):
                raise tls_section.fail(
                    key, "names a file in Traefik's file provider; use caSecret / certSecret"
                )
        tls = RedisTLSSpec(
            tls_section.string("caSecret"),
            tls_section.string("certSecret"),
            tls_section.boolean("insecureSkipVerify", False),
        )
        tls_section.done()
    spec = RedisSpec(
        endpoints=endpoints or ("localhost:6379",),
        username=section.string("username"),
        password=section.string("password"),
        secret=section.string("secret"),
        db=section.integer("db", 0, minimum=0),
        pool_size=section.integer("poolSize", 0, minimum=0),
        min_idle_conns=section.integer("minIdleConns", 0, minimum=0),
        max_active_conns=section.integer("maxActiveConns", 0, minimum=0),
        read_timeout=section.duration("readTimeout", 3.0) or 3.0,
        write_timeout=section.duration("writeTimeout", 3.0) or 3.0,
        dial_timeout=section.duration("dialTimeout", 5.0) or 5.0,
        tls=tls,
    )
    section.done()
    return spec


def parse(fields: Fields) -> RateLimitSpec:
    average = fields.integer("average", 0, minimum=0)
    period = fields.duration("period", 1.0)
    burst = fields.integer("burst", 1)
    try:
        source = parse_source_criterion(fields, default_host=False)
    except SourceError as error:
        raise fields.fail("sourceCriterion", f"getting source extractor: {error}") from None
    redis = _redis(fields)
    fields.done()
    return RateLimitSpec(average, period, burst, source, redis)


@attrs.define(eq=False)
class RateLimit:
    """One built rateLimit step: a bucket table in memory, or a shared Redis limiter."""

    name: str
    source: SourceCriterion
    rate: float
    burst: int
    max_delay: float
    clock: Any
    table: Optional[BucketTable] = None
    #: The Redis limiter (tsproxy.middlewares.redislimit.RedisLimiter) when shared.
    shared: Any = None

    def handle(self, request: Request) -> StepResult:
        if self.rate == math.inf:
            return None
        if self.clock is None:  # built without one (tsproxy check): the running reactor
            from twisted.internet import reactor

            self.clock = reactor
        source = source_of(self.source, request)
        if self.shared is not None:
            return self.shared.take(source).addCallbacks(self._decided, self._failed)
        assert self.table is not None
        return self._decided(self.table.take(source, self.clock.seconds()))

    def _decided(self, result: Tuple[bool, float]) -> StepResult:
        allowed, wait = result
        if not allowed:
            return Answer(429, retry_headers(wait) + _TEXT, TOO_MANY)
        if wait <= 0:
            return None
        from twisted.internet.task import deferLater

        return deferLater(self.clock, wait, lambda: None)

    def _failed(self, failure: Any) -> Answer:
        log.error(
            "rateLimit {name}: Redis: {error}", name=self.name, error=failure.getErrorMessage()
        )
        return Answer(500, _TEXT, b"Internal Server Error")

    def stop(self) -> None:
        """Close the Redis connections (the engine calls it when the step is replaced)."""
        if self.shared is not None:
            self.shared.stop()


def build(spec: RateLimitSpec, name: str, context: BuildContext) -> RateLimit:
    rate, burst, delay = limits_of(spec)
    step = RateLimit(name, spec.source, rate, burst, delay, context.reactor)
    if rate == math.inf:
        return step
    if spec.redis is None:
        step.table = BucketTable(rate, burst, delay)
        return step
    from tsproxy.middlewares.redislimit import RedisLimiter, connection_settings

    settings = connection_settings(spec.redis, context)
    step.shared = RedisLimiter(name, rate, burst, delay, settings, reactor=context.reactor)
    return step


KINDS = (MiddlewareKind("rateLimit", parse, build),)
