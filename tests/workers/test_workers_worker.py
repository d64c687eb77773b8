"""A worker's internal endpoints when the supervisor gathers /metrics and the API counts:
answers that come on a later turn, in order on a pipelined connection, over real sockets."""

from __future__ import annotations

from typing import Any, List

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from tests.proxyfixture import ProxyTestCase, raw_exchange
from tsproxy.service import ProxyService

STATIC = """\
entryPoints:
  traefik:
    address: "127.0.0.1:0"
api:
  insecure: true
ping: {}
metrics:
  prometheus: {}
log:
  level: ERROR
"""


class SlowAggregate:
    """Answers a little later, as the supervisor does once every worker answered; fails
    when ``broken``."""

    def __init__(self) -> None:
        self.broken = False
        self.asked: List[str] = []

    def _later(self, what: str, value: Any) -> defer.Deferred[Any]:
        self.asked.append(what)
        if self.broken:
            return deferLater(reactor, 0.01, lambda: 1 / 0)
        return deferLater(reactor, 0.02, lambda: value)

    def metrics(self) -> defer.Deferred[Any]:
        return self._later("metrics", ("text/plain; version=0.0.4", b"merged 1\n"))

    def stats(self) -> defer.Deferred[Any]:
        return self._later("stats", {"services": {"x@kubernetescrd": {"requests": 7, "errors": 2}}})


class GatheredAnswerTests(ProxyTestCase):
    """The HTTP engine with an InternalEndpoints whose /metrics and /api are Deferreds."""

    timeout = 20

    def start(self) -> Any:
        self.write("tsproxy.yaml", STATIC)
        service = ProxyService(self.config_dir, reactor)
        service.aggregate = SlowAggregate()  # type: ignore[attr-defined]
        service.startService()
        self.addCleanup(service.stopService)
        return service

    @defer.inlineCallbacks
    def test_pipelined(self) -> None:
        """Pipelined /metrics, a POST with a small body to /api, then /ping: three answers
        in request order, the gathered ones from the aggregate."""
        service = self.start()
        payload = (
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /api/tsproxy/stats HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
            b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        # No half-close: the engine takes a client that ends its side as gone.
        received = yield raw_exchange(service.port_of("traefik"), payload, half_close=False)
        self.assertEqual(received.count(b"HTTP/1.1 "), 3, received)
        first, second, third = received.split(b"HTTP/1.1 ")[1:]
        self.assertTrue(first.startswith(b"200 OK"), first)
        self.assertTrue(first.endswith(b"\r\n\r\nmerged 1\n"), first)
        self.assertTrue(second.startswith(b"405 "), second)
        self.assertTrue(third.startswith(b"200 OK") and third.endswith(b"OK"), third)
        self.assertEqual(service.aggregate.asked, ["metrics", "stats"])

    @defer.inlineCallbacks
    def test_statsAndFailure(self) -> None:
        """The API shows the gathered counts; when gathering fails the answer is a 503 and
        the connection goes on."""
        service = self.start()
        port = service.port_of("traefik")
        ask = b"GET /api/tsproxy/stats HTTP/1.1\r\nHost: x\r\n\r\n"
        last = b"GET /api/tsproxy/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        received = yield raw_exchange(port, last, half_close=False)
        self.assertIn(b'"x@kubernetescrd":{"requests":7,"errors":2}', received)
        service.aggregate.broken = True
        received = yield raw_exchange(
            port, ask + b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", False
        )
        self.assertTrue(received.startswith(b"HTTP/1.1 503 "), received)
        self.assertIn(b"HTTP/1.1 200 OK", received)

    @defer.inlineCallbacks
    def test_clientLeaves(self) -> None:
        """A client gone before the gathered answer: nothing is written, nothing breaks."""
        service = self.start()
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        from tests.proxyfixture import RawClient

        client = RawClient()
        yield connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", service.port_of("traefik")), client
        )
        client.transport.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        yield deferLater(reactor, 0.005, lambda: None)
        client.transport.abortConnection()
        yield client.closed
        yield deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(service.aggregate.asked, ["metrics"])
