"""Observability: Prometheus metrics and the access log, fed one record per HTTP exchange.

``Observer`` is what an entrypoint holds: one callable for exchanges (the metrics', the
access log's, or both) and the connection gauge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

from tsproxy.observe.record import Exchange

if TYPE_CHECKING:
    from tsproxy.observe.accesslog import AccessLog
    from tsproxy.observe.metrics import Metrics

__all__ = ["Exchange", "Observer"]


class Observer:
    """Fans an entrypoint's records out to the metrics and the access log (either may be
    None, not both)."""

    def __init__(self, metrics: Optional[Metrics], access_log: Optional[AccessLog]) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.exchange: Callable[[Exchange], None]
        if metrics is not None and access_log is not None:
            count, write = metrics.exchange, access_log.log

            def both(rec: Exchange) -> None:
                count(rec)
                write(rec)

            self.exchange = both
        elif metrics is not None:
            self.exchange = metrics.exchange
        elif access_log is not None:
            self.exchange = access_log.log
        else:
            raise ValueError("an Observer needs metrics or an access log")

    def connection_opened(self, entrypoint: str, protocol: str) -> None:
        if self.metrics is not None:
            self.metrics.connection_opened(entrypoint, protocol)

    def connection_closed(self, entrypoint: str, protocol: str) -> None:
        if self.metrics is not None:
            self.metrics.connection_closed(entrypoint, protocol)
