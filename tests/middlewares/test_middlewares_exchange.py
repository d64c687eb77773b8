"""Tests for tsproxy.middlewares.exchange: the sink chain order, end hooks fired once with the
duration, and retry decisions, as the engine uses them."""

from __future__ import annotations

from typing import Any, List

from twisted.trial.unittest import SynchronousTestCase

from tests.authfixture import request_of
from tests.trafficfixture import Collected
from tsproxy.middlewares.base import ExchangeEnd, HeaderList, Response
from tsproxy.middlewares.exchange import ExchangeHooks


class Tagging:
    """A sink that tags the body with its name, to see the order."""

    def __init__(self, name: str, downstream: Any) -> None:
        self.name, self.downstream = name, downstream

    def head(self, response: Response) -> None:
        self.downstream.head(response)

    def data(self, chunk: bytes) -> None:
        self.downstream.data(chunk + self.name.encode())

    def flush(self) -> None:
        self.downstream.flush()

    def end(self) -> None:
        self.downstream.end()


class ExchangeHooksTests(SynchronousTestCase):
    """The engine's helper."""

    def test_sink_order(self) -> None:
        """The first step's wrapper is nearest the client: it sees what later ones wrote."""
        request = request_of({})
        request.wrap_response(lambda down: Tagging("A", down))
        request.wrap_response(lambda down: Tagging("B", down))
        hooks = ExchangeHooks(request, 0.0)
        self.assertTrue(hooks.wanted)
        client = Collected()
        sink = hooks.sink(client)
        sink.head(Response(200, HeaderList(), request))
        sink.data(b"x")
        sink.end()
        self.assertEqual(client.body, b"xBA")

    def test_finish_once(self) -> None:
        """End hooks get status and duration once; a failing hook does not stop others."""
        request = request_of({})
        seen: List[ExchangeEnd] = []
        request.on_end(lambda end: 1 / 0)
        request.on_end(seen.append)
        hooks = ExchangeHooks(request, 10.0)
        hooks.finish(502, 10.25, network_error=True)
        hooks.finish(200, 11.0)
        self.assertEqual(seen, [ExchangeEnd(502, 0.25, True, "")])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_fast_path(self) -> None:
        """A request no step hooked keeps the engine's plain path."""
        self.assertFalse(ExchangeHooks(request_of({}), 0.0).wanted)

    def test_retry_delay(self) -> None:
        """The policy's answer, with the time elapsed since the start."""

        class Policy:
            body_limit = 10

            def __init__(self) -> None:
                self.calls: List[Any] = []

            def next_delay(self, attempt: int, network: bool, status: int, elapsed: float) -> Any:
                self.calls.append((attempt, network, status, elapsed))
                return 0.5 if attempt < 2 else None

        request = request_of({})
        policy = request.retry = Policy()
        hooks = ExchangeHooks(request, 1.0)
        hooks.attempts = 1
        self.assertEqual(hooks.retry_delay(True, 502, 1.5), 0.5)
        hooks.attempts = 2
        self.assertIsNone(hooks.retry_delay(False, 503, 2.0))
        self.assertEqual(policy.calls, [(1, True, 502, 0.5), (2, False, 503, 1.0)])
