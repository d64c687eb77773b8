"""The load-balancer strategies through real listeners: leasttime moves traffic to the fast
server, p2c away from the busy one, hrw keeps a client IP on one server, and the in-flight
counts they read come back to zero whichever way an exchange ends."""

from __future__ import annotations

import socket
import struct
from typing import Any, List

from h2.config import H2Configuration
from h2.connection import H2Connection
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol

from tests.hardeningfixture import Collector, request_end, wait_for
from tests.proxyfixture import STATIC, ProxyTestCase, free_port
from tsproxy.balance.hrw import hrw_choose

HEAD_100 = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
UPGRADE = "Connection: Upgrade\r\nUpgrade: websocket\r\n"


class Backend(Protocol):
    """One connection of a scripted backend; each request is answered by its path:
    ``/hold`` not at all (until `answer`), ``/ws`` with 101 and a silent tunnel,
    ``/partial`` with a head and 10 of 100 body bytes, ``/cut`` the same then a close,
    ``/reset`` with a TCP reset, anything else with the backend's name after its delay."""

    factory: Any

    def connectionMade(self) -> None:
        self.buf = b""
        self.factory.conns.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        end = request_end(self.buf)
        if end < 0:
            return
        request, self.buf = self.buf[:end], self.buf[end:]
        path = request.split(b" ", 2)[1]
        self.factory.seen.append(path)
        if self.factory.always:
            path = b"/"
        if path == b"/hold":
            self.factory.held.append(self)
        elif path == b"/ws":
            self.transport.write(SWITCHING)
            self.factory.held.append(self)
        elif path in (b"/partial", b"/cut"):
            self.transport.write(HEAD_100 + b"x" * 10)
            if path == b"/cut":
                self.transport.loseConnection()
        elif path == b"/reset":
            self.transport.socket.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            self.transport.abortConnection()
        else:
            self.factory.calls.append(reactor.callLater(self.factory.delay, self.answer))

    def answer(self) -> None:
        name = self.factory.name
        if self.transport.connected:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + name)

    def connectionLost(self, reason: Any = None) -> None:
        if self in self.factory.held:
            self.factory.held.remove(self)


class StrategyTestCase(ProxyTestCase):
    """Backends A and B (and C, which answers every path), the file provider's services
    ``s`` (A, B), ``one`` (a refused port) and ``mirrored`` (C, copied to ``s``), all of
    ``strategy`` except ``mirrored``'s main one; routers by Host."""

    def backend(self, name: bytes, delay: float = 0.0, always: bool = False) -> Any:
        factory = Factory.forProtocol(Backend)
        factory.name, factory.delay, factory.always = name, delay, always  # type: ignore[attr-defined]
        factory.conns, factory.seen, factory.held, factory.calls = [], [], [], []  # type: ignore[attr-defined]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)

        def clean() -> None:
            for call in factory.calls:  # type: ignore[attr-defined]
                if call.active():
                    call.cancel()
            for conn in factory.conns:  # type: ignore[attr-defined]
                conn.transport.abortConnection()

        self.addCleanup(clean)
        factory.url = "http://127.0.0.1:%d" % port.getHost().port  # type: ignore[attr-defined]
        return factory

    def configure(
        self, strategy: str, delay_a: float = 0.0, sticky: bool = False, weights: str = ""
    ) -> None:
        """``weights``: "x,y", the servers' written weights (A's, B's)."""
        self.a = self.backend(b"A", delay_a)
        self.b = self.backend(b"B")
        self.c = self.backend(b"C", always=True)
        cookie = "        sticky: {cookie: {name: lb}}\n" if sticky else ""
        weight_a, weight_b = (f", weight: {w}" for w in weights.split(",")) if weights else ("", "")
        dynamic = f"""\
http:
  routers:
    r: {{rule: Host(`s.test`), service: s, entryPoints: [web]}}
    one: {{rule: Host(`one.test`), service: one, entryPoints: [web]}}
    retry: {{rule: Host(`retry.test`), service: s, entryPoints: [web], middlewares: [retry]}}
    mirrored: {{rule: Host(`mirrored.test`), service: mirrored, entryPoints: [web]}}
  middlewares:
    retry: {{retry: {{attempts: 2}}}}
  services:
    s:
      loadBalancer:
        strategy: {strategy}
{cookie}        servers: [{{url: "{self.a.url}"{weight_a}}}, {{url: "{self.b.url}"{weight_b}}}]
    one:
      loadBalancer:
        strategy: {strategy}
        servers: [{{url: "http://127.0.0.1:{free_port()}"}}]
    main:
      loadBalancer: {{servers: [{{url: "{self.c.url}"}}]}}
    mirrored:
      mirroring: {{service: main, mirrors: [{{name: s, percent: 100}}]}}
"""
        self.write("tsproxy.yaml", STATIC + "providers:\n  file: {filename: dyn.yml}\n")
        self.write("dyn.yml", dynamic)
        self.start_proxy()

    def node(self, router: str = "r@file") -> Any:
        assert self.service is not None
        for candidate in self.service.current_table().routers:
            if candidate.name == router:
                return candidate.service
        raise AssertionError(router)

    def inflight(self, router: str = "r@file") -> List[int]:
        return list(self.node(router)._order.load.inflight)

    @defer.inlineCallbacks
    def raw(self, payload: bytes) -> Any:
        """A client connection to the web entrypoint that has sent ``payload``."""
        assert self.service is not None
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.service.port_of("web"))
        client = Collector()
        yield connectProtocol(endpoint, client)
        self.addCleanup(client.transport.abortConnection)
        client.transport.write(payload)
        return client

    @defer.inlineCallbacks
    def names(self, count: int, host: str = "s.test", **kwargs: Any) -> Any:
        """The backend names of ``count`` requests sent one after the other."""
        got = []
        for _ in range(count):
            response, body = yield self.get(host, **kwargs)
            self.assertEqual(response.code, 200)
            got.append(body)
        return got


def request(path: str, host: str = "s.test", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


class LeastTimeTests(StrategyTestCase):
    @defer.inlineCallbacks
    def test_fast_server_takes_over(self) -> None:
        """A answers after 0.2 s, B at once: the first request (a tie, no samples) goes to A
        by EDF, the second to B (no samples: average 0), and every later one to B, whose
        average stays far below A's 200 ms."""
        self.configure("leasttime", delay_a=0.2)
        got = yield self.names(12)
        self.assertEqual(got, [b"A"] + [b"B"] * 11)
        load = self.node()._order.load
        self.assertGreaterEqual(load.times[0].average(), 200.0)
        self.assertLess(load.times[1].average(), 200.0)
        self.assertEqual((load.times[0].count, load.times[1].count), (1, 11))
        self.assertEqual(load.inflight, [0, 0])


class PowerOfTwoTests(StrategyTestCase):
    @defer.inlineCallbacks
    def test_busy_server_avoided(self) -> None:
        """While one server holds a request open, every new request goes to the other (two
        servers: both are always drawn, the one with fewer in flight wins)."""
        self.configure("p2c")
        client = yield self.raw(request("/hold"))
        yield wait_for(lambda: len(self.a.held) + len(self.b.held) == 1)
        busy = b"A" if self.a.held else b"B"
        self.assertEqual(sorted(self.inflight()), [0, 1])
        got = yield self.names(6)
        self.assertEqual(set(got), {b"B" if busy == b"A" else b"A"})
        client.transport.abortConnection()
        yield wait_for(lambda: self.inflight() == [0, 0])

    @defer.inlineCallbacks
    def test_concurrent_requests_to_idle_server(self) -> None:
        """Three requests held on A through its sticky cookie (sticky requests count in
        flight, as in Traefik); three concurrent new requests all go to B."""
        self.configure("p2c", sticky=True)
        cookie = f"Cookie: lb={self.a.url}\r\n"
        clients = []
        for _ in range(3):
            clients.append((yield self.raw(request("/hold", extra=cookie))))
        yield wait_for(lambda: len(self.a.held) == 3)
        self.assertEqual(self.inflight(), [3, 0])
        answers = yield defer.gatherResults([self.get("s.test") for _ in range(3)])
        self.assertEqual([body for _, body in answers], [b"B"] * 3)
        for conn in list(self.a.held):
            conn.answer()
        for client in clients:
            yield wait_for(lambda client=client: client.received.endswith(b"A"))
        self.assertEqual(self.inflight(), [0, 0])


class ServerWeightTests(StrategyTestCase):
    """Server weights of a file load balancer, through a real listener."""

    @defer.inlineCallbacks
    def test_edf_split(self) -> None:
        """wrr over A (weight 1) and B (weight 3): eight requests give Traefik's EDF order,
        two to A and six to B."""
        self.configure("wrr", weights="1,3")
        got = yield self.names(8)
        self.assertEqual(b"".join(got), b"BBABBBAB")

    @defer.inlineCallbacks
    def zero_never_picked(self, strategy: str) -> Any:
        self.configure(strategy, sticky=True, weights="0,1")
        got = yield self.names(4, headers={"Cookie": [f"lb={self.a.url}"]})
        self.assertEqual(got, [b"B"] * 4)
        self.assertEqual(self.a.seen, [])

    def test_weight_zero_wrr(self) -> Any:
        """wrr never sends a request to a server of weight 0, even when a sticky cookie
        names it (Traefik never adds it to the balancer)."""
        return self.zero_never_picked("wrr")

    def test_weight_zero_hrw(self) -> Any:
        """hrw never sends a request to a server of weight 0, even with its cookie."""
        return self.zero_never_picked("hrw")


class HighestRandomWeightTests(StrategyTestCase):
    @defer.inlineCallbacks
    def test_one_ip_one_server(self) -> None:
        """Every request of client 127.0.0.1 goes to the server its rendezvous hash picks
        over the server URLs."""
        self.configure("hrw")
        expected = hrw_choose("127.0.0.1", [self.a.url, self.b.url], [1, 1])
        got = yield self.names(10)
        self.assertEqual(got, [[b"A", b"B"][expected]] * 10)  # type: ignore[index]


class InFlightTests(StrategyTestCase):
    """Whatever ends an exchange, its server's in-flight count comes back to zero."""

    @defer.inlineCallbacks
    def check(self, strategy: str) -> Any:
        self.configure(strategy)
        # (what happens, the request, the router whose service counts it).
        for what, payload, router in [
            ("answered", request("/"), "r@file"),
            ("backend resets before answering", request("/reset"), "r@file"),
            ("backend closes mid-body", request("/cut"), "r@file"),
            ("two attempts, both reset", request("/reset", "retry.test"), "retry@file"),
            ("connection refused", request("/", "one.test"), "one@file"),
        ]:
            client = yield self.raw(payload)
            yield wait_for(lambda client=client: bool(client.received))
            yield wait_for(lambda router=router: self.inflight(router) in ([0, 0], [0]))
            client.transport.abortConnection()
            self.assertEqual(self.inflight(router), [0] * len(self.inflight(router)), what)
        for what, path, extra in [
            ("client leaves before the head", "/hold", ""),
            ("client leaves mid-body", "/partial", ""),
            ("client closes a WebSocket tunnel", "/ws", UPGRADE),
        ]:
            client = yield self.raw(request(path, extra=extra))
            yield wait_for(lambda: sum(self.inflight()) == 1)
            self.assertEqual(len(self.a.held) + len(self.b.held), int(path != "/partial"), what)
            if path != "/hold":
                yield wait_for(lambda client=client: len(client.received) > 12)
            client.transport.abortConnection()
            yield wait_for(lambda: self.inflight() == [0, 0])
            yield wait_for(lambda: not self.a.held and not self.b.held)  # the backend saw it
        # An HTTP/2 stream reset by its client while its server has not answered.
        h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        h2.initiate_connection()
        head = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"s.test")]
        h2.send_headers(1, head + [(b":path", b"/hold")], end_stream=True)
        client = yield self.raw(h2.data_to_send())
        yield wait_for(lambda: sum(self.inflight()) == 1)
        h2.reset_stream(1)
        client.transport.write(h2.data_to_send())
        yield wait_for(lambda: self.inflight() == [0, 0])
        yield wait_for(lambda: not self.a.held and not self.b.held)
        # Mirror copies are not counted: the copy held at A or B leaves the counts at 0.
        response, body = yield self.get("mirrored.test", "/hold")
        self.assertEqual((response.code, body), (200, b"C"))
        yield wait_for(lambda: len(self.a.held) + len(self.b.held) == 1)
        self.assertEqual(self.inflight(), [0, 0])
        return self.node()._order.load

    @defer.inlineCallbacks
    def test_p2c(self) -> None:
        """p2c: answered, reset, cut, retried, refused, client gone before or mid-body or
        out of a WebSocket tunnel, an HTTP/2 stream reset, and a mirror copy: no count left
        behind."""
        yield self.check("p2c")

    @defer.inlineCallbacks
    def test_leasttime(self) -> None:
        """leasttime: the same paths; only exchanges whose server answered (a first byte)
        left a TTFB sample: answered, cut, partial and the 101, not reset or held."""
        load = yield self.check("leasttime")
        self.assertEqual(sum(times.count for times in load.times), 4)
