"""Graceful shutdown: in-flight requests finish, new connections are refused, the grace
timeout cuts what is left; and the installed twistd on SIGHUP and SIGTERM."""

from __future__ import annotations

import signal
from typing import Any, List

import treq
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError, ConnectionRefusedError, ProcessDone
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.web import server
from twisted.web.resource import Resource

from tests.proxyfixture import ENDPOINTS, SERVICE, ProxyTestCase, free_port
from tests.service.test_tap import _Collect, spawn_proxy

ROUTE = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: slow}
spec:
  routes:
    - match: Host(`slow.test`)
      services: [{name: slow, port: 80}]
"""


class HeldApp(Resource):
    """Holds every request until ``release()``; ``arrival()`` fires when one comes in."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.held: List[Any] = []
        self._waiting: List[defer.Deferred[None]] = []

    def render(self, request: Any) -> Any:
        self.held.append(request)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)
        return server.NOT_DONE_YET

    def arrival(self) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        self._waiting.append(d)
        return d

    def release(self) -> None:
        held, self.held = self.held, []
        for request in held:
            request.setHeader(b"Content-Length", b"5")
            request.write(b"done\n")
            request.finish()


class ShutdownTestCase(ProxyTestCase):
    def held_backend(self, static: str) -> HeldApp:
        """A configuration routing Host slow.test to a HeldApp, with ``static`` as tsproxy.yaml."""
        app = HeldApp()
        site = server.Site(app)
        site.noisy = False
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(app.release)
        self.write("tsproxy.yaml", static)
        backend = ENDPOINTS.format(name="slow", port=port.getHost().port)
        self.write("slow.yaml", SERVICE.format(name="slow") + "---\n" + backend + "---\n" + ROUTE)
        return app


def connect(port: int) -> defer.Deferred[Protocol]:
    return connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), Protocol())


class DrainTests(ShutdownTestCase):
    """ProxyService.stopService in process, on real sockets."""

    timeout = 20

    @defer.inlineCallbacks
    def test_inFlightFinishes(self) -> None:
        """A request in flight at stop gets its whole answer; meanwhile a new connection is
        refused; the stop completes once the answer is out."""
        app = self.held_backend('entryPoints:\n  web:\n    address: "127.0.0.1:0"\n')
        service = self.start_proxy()
        port = service.port_of("web")
        arrived = app.arrival()
        request = self.get("slow.test")
        yield arrived
        stopping = service.stopService()
        yield self.assertFailure(connect(port), ConnectionRefusedError)
        self.assertNoResult(stopping)
        app.release()
        response, body = yield request
        self.assertEqual((response.code, body), (200, b"done\n"))
        yield stopping

    @defer.inlineCallbacks
    def test_graceTimeoutCuts(self) -> None:
        """A request still running at the grace timeout is cut and the stop completes."""
        app = self.held_backend(
            'entryPoints:\n  web:\n    address: "127.0.0.1:0"\n'
            "    transport: {lifeCycle: {graceTimeOut: 200ms}}\n"
        )
        service = self.start_proxy()
        arrived = app.arrival()
        request = self.get("slow.test")
        yield arrived
        started = reactor.seconds()
        yield service.stopService()
        self.assertGreaterEqual(reactor.seconds() - started, 0.2)
        yield self.assertFailure(request, Exception)


class TwistdSignalTests(ShutdownTestCase):
    """The installed `twistd -n --pidfile= tsproxy -c DIR`, driven by signals."""

    timeout = 60

    @defer.inlineCallbacks
    def wait_output(self, proc: _Collect, part: bytes) -> Any:
        """Until ``part`` shows in the process output (bounded: ~10 s)."""
        for _ in range(200):
            if part in b"".join(proc.output):
                return
            if proc.ended.called:
                break
            yield deferLater(reactor, 0.05, lambda: None)
        self.fail("no %r in:\n%s" % (part, b"".join(proc.output).decode(errors="replace")))

    @defer.inlineCallbacks
    def test_hangupThenTerminate(self) -> None:
        """SIGHUP reloads; SIGTERM during a slow request: new connections are refused, the
        request completes, the process exits 0."""
        port = free_port()
        app = self.held_backend('entryPoints:\n  web:\n    address: "127.0.0.1:%d"\n' % (port,))
        # Answering means the reactor runs, so the signal handlers are in place.
        transport, proc, response, _ = yield spawn_proxy(
            self,
            ["twistd", "-n", "--pidfile=", "tsproxy"],
            "http://127.0.0.1:%d/" % (port,),
            "nothing.test",
        )
        self.assertEqual(response.code, 404)

        transport.signalProcess(signal.SIGHUP)
        yield self.wait_output(proc, b"configuration applied: 1 router (1 HTTP)")

        arrived = app.arrival()
        request = treq.get(
            "http://127.0.0.1:%d/" % (port,), headers={"Host": ["slow.test"]}, agent=self.agent
        )
        yield arrived
        transport.signalProcess(signal.SIGTERM)
        for _ in range(200):  # until the listener is closed (bounded: ~10 s)
            try:
                conn = yield connect(port)
            except ConnectError:
                # Refused, or reset: accepted into the backlog of a listener that then closed.
                break
            conn.transport.loseConnection()
            yield deferLater(reactor, 0.05, lambda: None)
        else:
            self.fail("still accepting connections after SIGTERM")
        self.assertFalse(proc.ended.called, b"".join(proc.output))
        app.release()
        response = yield request
        body = yield treq.content(response)
        self.assertEqual((response.code, body), (200, b"done\n"))
        reason = yield proc.ended
        self.assertIsInstance(reason, ProcessDone, b"".join(proc.output))
