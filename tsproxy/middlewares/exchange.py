"""The engine's side of the exchange hooks (base.Request.wrap_response, on_end, retry), kept
apart from the connection code: the sink chain over the engine's own client sink, the end
hooks fired exactly once, and whether an attempt is dispatched again. No reactor import."""

from __future__ import annotations

from typing import Any, Optional

import attrs

from tsproxy.logs import get_logger
from tsproxy.middlewares.base import ExchangeEnd, Request, ResponseSink

__all__ = ["ExchangeHooks"]

log = get_logger(__name__)


@attrs.define(eq=False)
class ExchangeHooks:
    """The hooks of one exchange: `started` in the engine clock's seconds."""

    request: Request
    started: float
    attempts: int = 0
    finished: bool = False

    @property
    def wanted(self) -> bool:
        """Whether any step asked for more than head hooks (else the fast path is kept)."""
        request = self.request
        return bool(request.sink_wrappers or request.end_hooks or request.retry is not None)

    def sink(self, client: ResponseSink) -> ResponseSink:
        """Where the engine writes the response: the steps' wrappers over `client`, the
        first step's wrapper nearest the client."""
        sink = client
        for wrapper in self.request.sink_wrappers:
            sink = wrapper(sink)
        return sink

    def retry_delay(self, network_error: bool, status: int, now: float) -> Optional[float]:
        """After attempt number `attempts` failed or answered `status` (nothing sent to the
        client yet): seconds to wait before dispatching again, or None to deliver."""
        policy = self.request.retry
        if policy is None:
            return None
        try:
            delay: Any = policy.next_delay(self.attempts, network_error, status, now - self.started)
        except Exception:
            log.failure("retry policy failed")
            return None
        return None if delay is None else max(0.0, float(delay))

    def finish(self, status: int, now: float, network_error: bool = False, error: str = "") -> None:
        """Tell every end hook how the exchange ended (once; later calls do nothing)."""
        if self.finished:
            return
        self.finished = True
        end = ExchangeEnd(status, max(0.0, now - self.started), network_error, error)
        for hook in self.request.end_hooks:
            try:
                hook(end)
            except Exception:
                log.failure("end-of-exchange hook failed")
