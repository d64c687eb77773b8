"""Traefik's inFlightReq middleware (oxy's connlimit): at most `amount` requests of one
source in flight at once; the slot is given back when the exchange ends, however it ends."""

from __future__ import annotations

from typing import Dict, List

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
from tsproxy.middlewares.source import (
    SourceCriterion,
    SourceError,
    parse_source_criterion,
    source_of,
)

__all__ = ["KINDS", "InFlightReq", "InFlightReqSpec"]


@attrs.frozen
class InFlightReqSpec:
    amount: int = 0
    source: SourceCriterion = SourceCriterion(host=True)


def parse(fields: Fields) -> InFlightReqSpec:
    amount = fields.integer("amount", 0, minimum=0)
    try:
        source = parse_source_criterion(fields, default_host=True)
    except SourceError as error:
        raise fields.fail("sourceCriterion", str(error)) from None
    fields.done()
    return InFlightReqSpec(amount, source)


@attrs.define(eq=False)
class InFlightReq:
    """One built inFlightReq step: counts by source, entries dropped at zero."""

    name: str
    amount: int
    source: SourceCriterion
    counts: Dict[str, int] = attrs.Factory(dict)

    def handle(self, request: Request) -> StepResult:
        key = source_of(self.source, request)
        held = self.counts.get(key, 0)
        if held >= self.amount:
            body = b"max connections reached: %d" % self.amount
            return Answer(429, (("Content-Type", "text/plain; charset=utf-8"),), body)
        self.counts[key] = held + 1
        released: List[bool] = []

        def release(end: ExchangeEnd) -> None:
            if released:
                return
            released.append(True)
            left = self.counts.get(key, 1) - 1
            if left > 0:
                self.counts[key] = left
            else:
                self.counts.pop(key, None)

        request.on_end(release)
        return None


def build(spec: InFlightReqSpec, name: str, context: BuildContext) -> InFlightReq:
    if not getattr(context, "traffic_hooks", False):
        raise BuildError("inFlightReq needs the engine's end-of-exchange hook, not wired yet")
    return InFlightReq(name, spec.amount, spec.source)


KINDS = (MiddlewareKind("inFlightReq", parse, build),)
