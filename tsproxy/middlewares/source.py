"""Traefik's sourceCriterion (rateLimit, inFlightReq): which requests share one limit — the
client IP under an ipStrategy, a request header's value, or the Host."""

from __future__ import annotations

from typing import Optional

import attrs

from tsproxy.config.schema import Fields
from tsproxy.middlewares.base import Request
from tsproxy.middlewares.ipallowlist import IPStrategy, client_ip, parse_ip_strategy, split_host

__all__ = ["SourceCriterion", "parse_source_criterion", "source_of"]


@attrs.frozen
class SourceCriterion:
    """Exactly one of: an IP strategy, a header name, the Host."""

    strategy: Optional[IPStrategy] = None
    header: str = ""
    host: bool = False


class SourceError(ValueError):
    """Two criteria at once (Traefik's GetSourceExtractor text)."""


def parse_source_criterion(fields: Fields, default_host: bool) -> SourceCriterion:
    """The optional ``sourceCriterion`` section; none set means the client IP (rateLimit) or
    the Host (inFlightReq, ``default_host``). Two criteria raise `SourceError`."""
    section = fields.mapping("sourceCriterion")
    strategy: Optional[IPStrategy] = None
    has_strategy = False
    header = ""
    host = False
    if section is not None:
        has_strategy = section.has("ipStrategy")
        strategy = parse_ip_strategy(section)
        if has_strategy and strategy is None:
            strategy = IPStrategy()
        header = section.string("requestHeaderName")
        host = section.boolean("requestHost", False)
        section.done()
    if not has_strategy and not header and not host:
        return SourceCriterion(host=True) if default_host else SourceCriterion(IPStrategy())
    if has_strategy and header:
        raise SourceError("iPStrategy and RequestHeaderName are mutually exclusive")
    if has_strategy and host:
        raise SourceError("iPStrategy and RequestHost are mutually exclusive")
    if header and host:
        raise SourceError("requestHost and requestHeaderName are mutually exclusive")
    return SourceCriterion(strategy, header, host)


def source_of(criterion: SourceCriterion, request: Request) -> str:
    """The source key of `request` (Go's req.Host keeps the port; header absent is "")."""
    if criterion.header:
        return request.headers.get(criterion.header) or ""
    if criterion.host:
        return request.host
    return split_host(client_ip(criterion.strategy, request))
