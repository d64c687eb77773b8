"""End-to-end tests of UDP entrypoints: real sockets on 127.0.0.1, sessions, drain, failures."""

from __future__ import annotations

try:
    import resource
except ImportError:  # not POSIX: FloodTests are skipped
    resource = None  # type: ignore[assignment]

import os
import socket
from typing import Any, Dict, List, Optional, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor
from twisted.internet.task import Clock, deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SkipTest

from tests.proxyfixture import ENDPOINTS, SERVICE, ProxyTestCase
from tests.udpfixture import UDP_VECTORS, UDPTestMixin, service, static, udp_route, unused_udp_port
from tsproxy import service as service_module
from tsproxy.service import ProxyService, StartupError
from tsproxy.udp.listener import UDPEntryPoint


class UDPProxyTestCase(ProxyTestCase, UDPTestMixin):
    """A proxy with one UDP entrypoint, ``dns``, routed by the files the test writes."""

    def start(self, *docs: str, clock: Any = None, **settings: Any) -> int:
        """Write tsproxy.yaml (``settings`` as in udpfixture.static) and the documents, start
        the proxy; returns the UDP entrypoint's port."""
        self.write("tsproxy.yaml", static(**settings))
        self.write("udp.yaml", "---\n".join(docs))
        return self.start_proxy(clock=clock).port_of("dns")

    @property
    def listener(self) -> UDPEntryPoint:
        assert self.service is not None
        return self.service.udp["dns"]

    @defer.inlineCallbacks
    def wait_for(self, condition: Any, what: str) -> Any:
        """Poll a condition on real sockets, at most 100 times 20 ms."""
        for _ in range(100):
            if condition():
                return
            yield deferLater(reactor, 0.02, lambda: None)
        self.fail("timed out waiting for " + what)


class SessionTests(UDPProxyTestCase):
    """Sessions through real sockets: weighted split, pinning, big datagrams."""

    @defer.inlineCallbacks
    def test_weightedSessionsAlternate(self) -> None:
        """Two echo backends weighted 1:1 take new sessions in turn; a session stays put."""
        port_a, echo_a = self.udp_echo("a", b"a:")
        port_b, echo_b = self.udp_echo("b", b"b:")
        proxy = self.start(
            service("a", [port_a]), service("b", [port_b]), udp_route(("a", 1), ("b", 1))
        )
        clients = [self.udp_client() for _ in range(4)]
        first = []
        for number, client in enumerate(clients):
            first.append((yield client.exchange(proxy, b"hello %d" % number)))
        self.assertEqual(first, [b"a:hello 0", b"b:hello 1", b"a:hello 2", b"b:hello 3"])
        for number, client in enumerate(clients):
            again = yield client.exchange(proxy, b"again")
            self.assertEqual(again, b"ab"[number % 2 : number % 2 + 1] + b":again")
        # One connected socket per session: each backend saw two source ports, each twice.
        for echo in (echo_a, echo_b):
            self.assertEqual(len(echo.peers), 4)
            self.assertEqual(len(set(echo.peers)), 2)
        self.assertEqual(len(self.listener.sessions), 4)

    @defer.inlineCallbacks
    def test_largeDatagrams(self) -> None:
        """Datagrams of 65,000 bytes and of the IPv4 maximum (65,507) round-trip intact."""
        port, _ = self.udp_echo("big")
        proxy = self.start(service("big", [port]), udp_route(("big", 1)))
        client = self.udp_client()
        largest = UDP_VECTORS["maximum payload relayed intact"]["inputs"]["payload_bytes"]
        for size in (65000, largest):
            payload = os.urandom(size)
            reply = yield client.exchange(proxy, payload)
            self.assertEqual((len(reply), reply == payload), (size, True))

    @defer.inlineCallbacks
    def test_sessionCap(self) -> None:
        """udp.maxSessions 2: a third client closes the least recently used session."""
        port, echo = self.udp_echo("e", b"e:")
        proxy = self.start(service("e", [port]), udp_route(("e", 1)), max_sessions=2)
        clients = [self.udp_client() for _ in range(3)]
        yield clients[0].exchange(proxy, b"1")
        yield clients[1].exchange(proxy, b"2")
        yield clients[0].exchange(proxy, b"1 again")
        yield clients[2].exchange(proxy, b"3")
        sessions = self.listener.sessions
        self.assertEqual(
            [sessions.get(c.address) is not None for c in clients], [True, False, True]
        )
        yield clients[1].exchange(proxy, b"2 again")  # a new session, closing client 0's
        self.assertEqual(len(set(echo.peers)), 4)


class FailureTests(UDPProxyTestCase):
    """A backend that answers ICMP unreachable does not hurt the entrypoint."""

    @defer.inlineCallbacks
    def test_unreachableBackend(self) -> None:
        """The refused session closes; other clients, and the same client later, still work."""
        live, _ = self.udp_echo("live", b"live:")
        dead = unused_udp_port()
        proxy = self.start(service("mixed", [dead, live]), udp_route(("mixed", 1)))
        doomed, other = self.udp_client(), self.udp_client()
        sessions = self.listener.sessions
        for attempt in (b"to nobody", b"to nobody again"):
            doomed.send(proxy, attempt)
            # Servers go in turn: doomed's datagram, read first, took the dead one, so
            # other's (new or existing) session is on the live one.
            reply = yield other.exchange(proxy, b"hi")
            self.assertEqual(reply, b"live:hi")
            yield self.wait_for(
                lambda: sessions.get(doomed.address) is None, "ICMP unreachable to close it"
            )
        self.assertEqual(len(sessions), 1)
        third = self.udp_client()
        self.assertEqual((yield third.exchange(proxy, b"new")), b"live:new")


class ClockTests(UDPProxyTestCase):
    """Idle expiry and graceful stop through real sockets, with time on a Clock."""

    @defer.inlineCallbacks
    def test_idleSessionClosesItsSocket(self) -> None:
        """After udp.timeout idle the session and its backend socket close; the next datagram
        starts a new session, on the next server."""
        clock = Clock()
        port_a, _ = self.udp_echo("a", b"a:")
        port_b, _ = self.udp_echo("b", b"b:")
        proxy = self.start(
            service("a", [port_a]),
            service("b", [port_b]),
            udp_route(("a", 1), ("b", 1)),
            clock=clock,
        )
        client = self.udp_client()
        self.assertEqual((yield client.exchange(proxy, b"1")), b"a:1")
        backend = self.listener.sessions.get(client.address).backend  # type: ignore[union-attr]
        clock.advance(2.5)
        self.assertEqual((yield client.exchange(proxy, b"2")), b"a:2")  # refreshed: until 5.5
        clock.advance(2.5)
        self.assertEqual(len(self.listener.sessions), 1)
        clock.advance(0.5)
        self.assertEqual(len(self.listener.sessions), 0)
        self.assertEqual((backend.closed, backend.socket.fileno()), (True, -1))
        self.assertEqual((yield client.exchange(proxy, b"3")), b"b:3")

    @defer.inlineCallbacks
    def test_gracefulStop(self) -> None:
        """Stopping: the live session still relays, a new client gets nothing, and the stop
        completes as soon as the last session idles out (Traefik's TestShutdown)."""
        expected = UDP_VECTORS["graceful shutdown waits for live sessions up to graceTimeout"]
        clock = Clock()
        port, _ = self.udp_echo("e", b"e:")
        # The grace time runs on the reactor (real time) and is long: the session must end it.
        proxy = self.start(service("e", [port]), udp_route(("e", 1)), clock=clock, grace="60s")
        old, new = self.udp_client(), self.udp_client()
        yield old.exchange(proxy, b"before")
        listener = self.listener
        assert self.service is not None
        stopped = self.service.stopService()
        new.send(proxy, b"let me in")
        # Both go through the one entrypoint socket in order: once old's reply is back, new's
        # datagram has been read and refused.
        reply = yield old.exchange(proxy, b"during")
        self.assertTrue(expected["expected"]["existing_session_still_echoes_during_shutdown"])
        self.assertEqual(reply, b"e:during")
        self.assertTrue(expected["expected"]["new_sessions_refused"])
        self.assertEqual((len(listener.sessions), new.replies), (1, []))
        self.assertNoResult(stopped)
        clock.advance(3.0)
        yield stopped
        self.assertEqual((len(listener.sessions), listener.port), (0, None))

    @defer.inlineCallbacks
    def test_graceOverClosesSessions(self) -> None:
        """With graceTimeOut 0 a stop closes live sessions and every socket at once."""
        clock = Clock()
        port, _ = self.udp_echo("e", b"e:")
        proxy = self.start(service("e", [port]), udp_route(("e", 1)), clock=clock, timeout="1h")
        client = self.udp_client()
        yield client.exchange(proxy, b"hi")
        listener = self.listener
        backend = listener.sessions.get(client.address).backend  # type: ignore[union-attr]
        assert self.service is not None
        yield self.service.stopService()
        self.assertEqual((len(listener.sessions), listener.port), (0, None))
        self.assertEqual((backend.closed, backend.socket.fileno()), (True, -1))


class StartupTests(UDPProxyTestCase):
    """A UDP address already taken stops the start with a located message."""

    def test_addressInUse(self) -> None:
        """The error names tsproxy.yaml's line, the entrypoint and the /udp address."""
        taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        self.write("tsproxy.yaml", static().replace("127.0.0.1:0/udp", "127.0.0.1:%d/udp" % port))
        service = ProxyService(self.config_dir, reactor)
        error = self.assertRaises(StartupError, service.startService)
        self.assertTrue(
            str(error).startswith(
                "tsproxy.yaml:2: entrypoint dns: cannot listen on 127.0.0.1:%d/udp: " % port
            ),
            str(error),
        )
        self.assertEqual(service.udp, {})


class ReloadTests(UDPProxyTestCase):
    """A reload changes where new sessions go; live sessions keep their server."""

    @defer.inlineCallbacks
    def test_liveSessionKeepsServer(self) -> None:
        """After the route moves to another Service, the old client still reaches the old
        server and a new client reaches the new one."""
        port_a, _ = self.udp_echo("a", b"a:")
        port_b, _ = self.udp_echo("b", b"b:")
        proxy = self.start(service("a", [port_a]), service("b", [port_b]), udp_route(("a", 1)))
        old = self.udp_client()
        self.assertEqual((yield old.exchange(proxy, b"1")), b"a:1")
        docs = [service("a", [port_a]), service("b", [port_b]), udp_route(("b", 1))]
        self.write("udp.yaml", "---\n".join(docs))
        assert self.service is not None
        self.assertTrue(self.service.reload())
        self.assertEqual((yield old.exchange(proxy, b"2")), b"a:2")
        self.assertEqual((yield self.udp_client().exchange(proxy, b"3")), b"b:3")

    @defer.inlineCallbacks
    def test_addedEntrypoint(self) -> None:
        """A UDP entrypoint added to tsproxy.yaml opens on reload and serves its route."""
        port, _ = self.udp_echo("e", b"e:")
        self.start(service("e", [port]), udp_route(("e", 1)))
        more = '  more:\n    address: "127.0.0.1:0/udp"\n    transport: {lifeCycle: {graceTimeOut: 0s}}\n'
        self.write("tsproxy.yaml", static().replace("log:\n", more + "log:\n"))
        route = udp_route(("e", 1)).replace("metadata: {name: dns}", "metadata: {name: more}")
        self.write("more.yaml", route.replace("entryPoints: [dns]", "entryPoints: [more]"))
        assert self.service is not None
        self.assertTrue(self.service.reload())
        port_more = self.service.port_of("more")
        self.assertEqual((yield self.udp_client().exchange(port_more, b"hi")), b"e:hi")


class SeedConfigTests(UDPProxyTestCase):
    """conf/ as shipped: the udp entrypoint splits sessions 1:1 over echo-1 and echo-2."""

    @defer.inlineCallbacks
    def test_echoSplit(self) -> None:
        """Four clients are answered by echo-1, echo-2, echo-1, echo-2."""
        self.use_seed_config()
        proxy = self.start_proxy().port_of("udp")
        replies = []
        for _ in range(4):
            replies.append((yield self.udp_client().exchange(proxy, b"hello")))
        self.assertEqual(replies, [b"echo-1 hello", b"echo-2 hello"] * 2)


class DNSTests(UDPProxyTestCase):
    """A real resolver behind the proxy, asked by a real DNS client."""

    def setUp(self) -> None:
        super().setUp()
        from tests.dnstools import DIG, DNSMASQ

        if DNSMASQ is None or DIG is None:
            raise self.skipTest(
                "needs dnsmasq and dig (apt-get install dnsmasq bind9-dnsutils; .ci/run does)"
            )

    @defer.inlineCallbacks
    def test_digThroughProxy(self) -> None:
        """dig @proxy example.test gets dnsmasq's static answer 10.0.0.1."""
        from tests.dnstools import dig, start_dnsmasq

        dns_port: Optional[int] = yield start_dnsmasq(self)
        assert dns_port is not None
        proxy = self.start(service("resolver", [dns_port]), udp_route(("resolver", 1)))
        answers = []
        for _ in range(3):
            answers.append((yield dig(proxy, "example.test")))
        self.assertEqual(answers, ["10.0.0.1"] * 3)
        self.assertEqual((yield dig(proxy, "other.test")), "")  # NXDOMAIN: no address


FLOOD_STATIC = """\
entryPoints:
  web:
    address: "127.0.0.1:0"
  dns:
    address: "127.0.0.1:0/udp"
    udp: {maxSessions: 10000}
    transport: {lifeCycle: {graceTimeOut: 0s}}
log:
  level: WARN
"""

FLOOD_ROUTE = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: app}
spec:
  entryPoints: [web]
  routes:
    - match: Host(`app.test`)
      services: [{name: app, port: 80}]
"""


class FloodTests(UDPProxyTestCase):
    """A flood from many source ports while the open-files limit is below udp.maxSessions:
    sessions stay within what the process can open, HTTP goes on, errors are counted."""

    def lower_files_limit(self, spare: int) -> int:
        """Make the soft open-files limit ``spare`` above the highest descriptor open now
        (restored when the test ends); the proxy is told that is all it may have."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
        limit = highest + 1 + spare
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        self.patch(service_module, "raise_open_files_limit", lambda _: limit)
        return limit

    def warnings(self) -> List[str]:
        """Warnings from the UDP listener, formatted, from now until the test ends."""
        seen: List[str] = []

        def observe(event: Dict[str, Any]) -> None:
            if event.get("log_namespace") == "tsproxy.udp.listener":
                seen.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        return seen

    def clients(self, count: int) -> List[socket.socket]:
        made = []
        for _ in range(count):
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.addCleanup(client.close)
            client.bind(("127.0.0.1", 0))
            made.append(client)
        return made

    @defer.inlineCallbacks
    def test_floodWithinFilesLimit(self) -> None:
        """400 source ports with room for about 200 sockets: sessions are capped below the
        limit, every datagram is relayed, HTTP answers; out of descriptors, a socket error
        is logged once and then as a count, not once per datagram."""
        if not os.path.isdir("/proc/self/fd"):
            raise SkipTest("needs /proc/self/fd")
        echo_port, echo = self.udp_echo("e")
        self.write("tsproxy.yaml", FLOOD_STATIC)
        app = self.start_app("app")
        docs = [
            service("e", [echo_port]),
            udp_route(("e", 1)),
            SERVICE.format(name="app"),
            ENDPOINTS.format(name="app", port=app),
            FLOOD_ROUTE,
        ]
        self.write("routes.yaml", "---\n".join(docs))
        flood = self.clients(400)
        seen = self.warnings()
        self.lower_files_limit(200)
        clock = Clock()
        proxy = self.start_proxy(clock=clock).port_of("dns")
        budget = self.service.udp_budget  # type: ignore[union-attr]
        self.assertIsNotNone(budget)
        self.assertLess(budget, 200)
        for start in range(0, 400, 50):  # in bursts that no socket buffer drops
            for client in flood[start : start + 50]:
                client.sendto(b"x", ("127.0.0.1", proxy))
            yield self.wait_for(lambda n=start + 50: len(echo.peers) == n, "datagrams relayed")
        self.assertLessEqual(len(self.listener.sessions), budget)
        for _ in range(5):
            response, _ = yield self.get("app.test")
            self.assertEqual(response.code, 200)
        self.assertEqual([w for w in seen if "UDP socket" in w], [])
        # Now take every descriptor left: each new source's datagram fails to open a socket.
        fillers = []
        try:
            while True:
                fillers.append(open(os.devnull))
        except OSError:
            pass
        try:
            for client in flood[:50]:  # sessions long closed by the cap: new ones
                client.sendto(b"y", ("127.0.0.1", proxy))
            yield self.wait_for(lambda: self.listener.socket_errors.total == 50, "50 errors")
            clock.advance(10)
        finally:
            for filler in fillers:
                filler.close()
        errors = [w for w in seen if "UDP socket" in w]
        self.assertEqual(len(errors), 2, errors)
        self.assertIn("Too many open files", errors[0])
        self.assertIn("49 more times in 10 s", errors[1])


class DatagramFuzzTests(UDPProxyTestCase):
    """Whatever datagrams arrive from whatever sources (the entrypoint's own objects, real
    backend sockets): nothing raises, sessions stay within udp.maxSessions, and every one
    is closed, its socket with it, once udp.timeout is over."""

    def setUp(self) -> None:
        super().setUp()
        port, _ = self.udp_echo("e")
        self.clock = Clock()
        self.start(service("e", [port]), udp_route(("e", 1)), clock=self.clock, max_sessions=8)

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(
            st.tuples(st.integers(1, 20), st.binary(max_size=2000), st.floats(0, 2)),
            max_size=30,
        )
    )
    def test_datagrams(self, datagrams: List[Tuple[int, bytes, float]]) -> None:
        """Datagrams from up to 20 source ports, with time passing between them."""
        listener = self.listener
        sockets = []
        for source, data, later in datagrams:
            listener.datagramReceived(data, ("127.0.0.1", 50000 + source))
            self.assertLessEqual(len(listener.sessions), 8)
            sockets.extend(s.backend for s in listener.sessions._sessions.values())
            self.clock.advance(later)
        self.clock.advance(3)
        self.assertEqual(len(listener.sessions), 0)
        self.assertTrue(all(backend.closed for backend in sockets))
        self.assertEqual(self.clock.getDelayedCalls(), [])
