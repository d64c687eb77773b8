"""IngressRouteTCP through a running proxy, with real clients: server-first protocols, redis,
PROXY protocol, weights, half-close, refused backends, the peek and its timeout, and HTTP
sharing the entrypoint; how tsproxy.tcp.relay dials (timeout, keep-alive)."""

from __future__ import annotations

import socket

from twisted.internet import defer, task, threads
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from tests.proxyfixture import ENDPOINTS, SERVICE, free_port
from tests.tcpfixture import TCPProxyTestCase, route_tcp, run, socket_session
from tsproxy.runtime.tcp import TCPServer
from tsproxy.tcp import proxyproto
from tsproxy.tcp.relay import TCPRelay, keep_alive

CATCH_ALL = "HostSNI(`*`)"


class PlainTCPTests(TCPProxyTestCase):
    """Non-TLS TCP routers: routed at accept, relayed both ways."""

    @defer.inlineCallbacks
    def test_serverFirstGreeting(self) -> None:
        """With only plain HostSNI(`*`) routers the backend is dialled at accept, so its
        greeting reaches a client that has sent nothing."""
        self.backend("smtp", self.start_greeter("smtp"))
        port = self.start_tcp_proxy(route_tcp("mail", CATCH_ALL, ["smtp"]))
        got = yield socket_session(port, first_read=True, half_close=True)
        self.assertEqual(got, b"HELLO smtp\r\nBYE\r\n")

    @defer.inlineCallbacks
    def test_halfClose(self) -> None:
        """The client's FIN reaches the backend, which still answers before closing."""
        self.backend("echo", self.start_greeter("echo"))
        port = self.start_tcp_proxy(
            route_tcp("echo", CATCH_ALL, ["echo"], extra=", terminationDelay: 5000")
        )
        got = yield socket_session(port, send=b"ping", half_close=True)
        self.assertEqual(got, b"HELLO echo\r\npingBYE\r\n")

    @defer.inlineCallbacks
    def test_largeBothWays(self) -> None:
        """8 MiB up and back through the relay arrive intact (backpressure, no loss)."""
        self.backend("echo", self.start_greeter("echo"))
        port = self.start_tcp_proxy(
            route_tcp("echo", CATCH_ALL, ["echo"], extra=", terminationDelay: 10000")
        )
        payload = bytes(range(256)) * (8 * 4096)
        got = yield socket_session(port, send=payload, half_close=True, timeout=30)
        self.assertEqual(len(got), len(b"HELLO echo\r\n") + len(payload) + len(b"BYE\r\n"))
        self.assertEqual(got[12:-5], payload)

    @defer.inlineCallbacks
    def test_weighted(self) -> None:
        """Two services at weights 1:2 share connections earliest-deadline-first."""
        self.backend("a", self.start_greeter("a"))
        self.backend("b", self.start_greeter("b"))
        port = self.start_tcp_proxy(route_tcp("split", CATCH_ALL, ["a", "b"], weights=[1, 2]))
        seen = []
        for _ in range(6):
            got = yield socket_session(port, first_read=True, half_close=True)
            seen.append(got.split(b"\r\n")[0].split(b" ")[1].decode())
        self.assertEqual(seen, ["b", "a", "b", "b", "a", "b"])

    @defer.inlineCallbacks
    def test_proxyProtocol(self) -> None:
        """proxyProtocol version 1 or 2: the backend reads the client's address and the
        proxy's own address before the first byte of the stream."""
        for version in (1, 2):
            self.docs = []
            name = f"pp{version}"
            self.backend(name, self.start_greeter(name))
            port = self.start_tcp_proxy(
                route_tcp(name, CATCH_ALL, [name], extra=f", proxyProtocol: {{version: {version}}}")
            )

            def session(port: int = port) -> tuple[int, bytes]:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                    local_port = sock.getsockname()[1]
                    sock.sendall(b"data")
                    sock.shutdown(socket.SHUT_WR)
                    while sock.recv(65536):
                        pass
                    return local_port, b""

            client_port, _ = yield threads.deferToThread(session)
            received = b"".join(self.greeters[name].received)
            parsed = proxyproto.parse(received)
            assert parsed is not None
            header, used = parsed
            self.assertEqual(header.source, ("127.0.0.1", client_port))
            self.assertEqual(header.destination, ("127.0.0.1", port))
            self.assertEqual(received[used:], b"data")
            yield self.service.stopService()  # type: ignore[union-attr]

    @defer.inlineCallbacks
    def test_backendRefuses(self) -> None:
        """A backend that refuses the connection: the client is closed, with nothing sent."""
        self.backend("gone", free_port())
        port = self.start_tcp_proxy(route_tcp("gone", CATCH_ALL, ["gone"]))
        got = yield socket_session(port, send=b"hello")
        self.assertEqual(got, b"")

    def listen(self, protocol: type) -> int:
        from twisted.internet import reactor
        from twisted.internet.protocol import Factory

        factory = Factory.forProtocol(protocol)
        listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.factories = getattr(self, "factories", {})
        self.factories[protocol] = factory
        return int(listening.getHost().port)

    @defer.inlineCallbacks
    def test_backendFinishesFirst(self) -> None:
        """The backend half-closes first: the client gets its FIN, and what the client sends
        after that still reaches the backend (within terminationDelay)."""
        self.backend("fin", self.listen(_FinFirst))
        port = self.start_tcp_proxy(
            route_tcp("fin", CATCH_ALL, ["fin"], extra=", terminationDelay: 10000")
        )

        def session() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                got = b""
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                sock.sendall(b"late data")
                sock.shutdown(socket.SHUT_WR)
                sock.recv(10)
                return got

        got = yield threads.deferToThread(session)
        self.assertEqual(got, b"HELLO\r\n")
        received = self.factories[_FinFirst].received
        for _ in range(500):
            if b"<EOF>" in received:
                break
            yield task.deferLater(_reactor(), 0.01, lambda: None)
        self.assertEqual(b"".join(received), b"late data<EOF>")
        yield self.wait_no_connections()

    @defer.inlineCallbacks
    def test_slowClientAfterHalfClose(self) -> None:
        """terminationDelay ends a relay even while the client is too slow to take the
        backend's answer (a paused producer must not keep the connection open forever)."""
        self.backend("big", self.listen(_BigAnswer))
        port = self.start_tcp_proxy(
            route_tcp("big", CATCH_ALL, ["big"], extra=", terminationDelay: 50")
        )

        def session() -> int:
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
                sock.settimeout(10)
                sock.connect(("127.0.0.1", port))
                sock.sendall(b"GET")
                sock.shutdown(socket.SHUT_WR)
                import time

                time.sleep(0.5)  # not reading: the relay's producer pauses
                total = 0
                while True:
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        return total
                    total += len(chunk)

        total = yield threads.deferToThread(session)  # ends: the EOF came
        self.assertLess(total, 8 << 20)
        yield self.wait_no_connections()

    @defer.inlineCallbacks
    def test_backendResets(self) -> None:
        """A backend that resets the connection: the client is closed cleanly (a FIN)."""
        from twisted.internet import reactor
        from twisted.internet.protocol import Factory

        listening = reactor.listenTCP(0, Factory.forProtocol(_Reset), interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.backend("reset", listening.getHost().port)
        port = self.start_tcp_proxy(route_tcp("reset", CATCH_ALL, ["reset"]))
        got = yield socket_session(port, send=b"hello")
        self.assertEqual(got, b"")

    @defer.inlineCallbacks
    def test_terminationDelay(self) -> None:
        """After the client's FIN, a backend that never closes is cut after terminationDelay."""
        clock = task.Clock()
        port_number, received = self.start_half_open()
        self.backend("mute", port_number)
        port = self.start_tcp_proxy(
            route_tcp("mute", CATCH_ALL, ["mute"], extra=", terminationDelay: 250"), clock=clock
        )
        done = socket_session(port, send=b"x", half_close=True)
        for _ in range(500):
            if b"<EOF>" in received:
                break
            yield task.deferLater(_reactor(), 0.01, lambda: None)
        self.assertEqual(received, [b"x", b"<EOF>"])
        # The FIN went through and armed the delay; nothing closes before it is over.
        yield task.deferLater(_reactor(), 0.05, lambda: None)
        self.assertFalse(done.called)
        clock.advance(0.25)
        got = yield done
        self.assertEqual(got, b"")

    @defer.inlineCallbacks
    def test_redis(self) -> None:
        """redis-server behind HostSNI(`*`): redis-cli SET/GET, and a 1 MiB value."""
        redis_port = yield self.start_redis()
        self.backend("redis", redis_port)
        port = self.start_tcp_proxy(route_tcp("redis", CATCH_ALL, ["redis"]))
        cli = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
        out, err, code = yield run(cli + ["SET", "greeting", "hello"])
        self.assertEqual((out.strip(), code), (b"OK", 0), err)
        out, err, code = yield run(cli + ["GET", "greeting"])
        self.assertEqual((out.strip(), code), (b"hello", 0), err)
        big = (b"0123456789abcdef" * 65536)[: 1 << 20]
        out, err, code = yield run(cli + ["-x", "SET", "big"], stdin=big)
        self.assertEqual((out.strip(), code), (b"OK", 0), err)
        out, err, code = yield run(cli + ["--raw", "STRLEN", "big"])
        self.assertEqual(out.strip(), b"1048576")
        out, err, code = yield run(cli + ["--raw", "GET", "big"])
        self.assertEqual(out.rstrip(b"\n"), big)


def _reactor():  # type: ignore[no-untyped-def]
    from twisted.internet import reactor

    return reactor


class PeekTests(TCPProxyTestCase):
    """Entrypoints where the proxy reads first: plain bytes to HTTP or TCP routers."""

    def http_route(self) -> str:
        port = self.start_app("web-app")
        self.docs.append(SERVICE.format(name="web-app"))
        self.docs.append(ENDPOINTS.format(name="web-app", port=port))
        return (
            "apiVersion: traefik.io/v1alpha1\nkind: IngressRoute\nmetadata: {name: web}\n"
            "spec:\n  routes:\n    - match: Host(`web.test`)\n      services:\n"
            "        - {name: web-app, port: 80}\n"
        )

    @defer.inlineCallbacks
    def test_httpAlongsideTLSPassthrough(self) -> None:
        """Plain HTTP on an entrypoint that also has a TLS TCP router goes to the HTTP
        routers."""
        self.backend("tls", self.start_greeter("tls"))
        port = self.start_tcp_proxy(
            self.http_route(), route_tcp("tls", CATCH_ALL, ["tls"], tls="{passthrough: true}")
        )
        request = b"GET / HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n"
        got = yield socket_session(port, send=request)
        self.assertTrue(got.startswith(b"HTTP/1.1 200 OK\r\n"), got[:200])
        self.assertIn(b"web-app", got)

    @defer.inlineCallbacks
    def test_plainBytesToTCPWithoutHTTPRouters(self) -> None:
        """Without HTTP routers, non-TLS bytes go to the plain TCP routers (after the peek:
        here the client speaks first)."""
        self.backend("tls", self.start_greeter("tls"))
        self.backend("plain", self.start_greeter("plain"))
        port = self.start_tcp_proxy(
            route_tcp("tls", CATCH_ALL, ["tls"], tls="{passthrough: true}"),
            route_tcp("plain", CATCH_ALL, ["plain"]),
        )
        got = yield socket_session(port, send=b"ping", half_close=True)
        self.assertEqual(got, b"HELLO plain\r\npingBYE\r\n")

    @defer.inlineCallbacks
    def test_handshakeByteIsTLS(self) -> None:
        """A first byte of 0x16 is TLS even when the rest is not a valid record (Traefik):
        it goes to the TLS routers with an empty SNI, not to the plain ones."""
        self.backend("tls", self.start_greeter("tls"))
        self.backend("plain", self.start_greeter("plain"))
        port = self.start_tcp_proxy(
            route_tcp("tls", CATCH_ALL, ["tls"], tls="{passthrough: true}"),
            route_tcp("plain", CATCH_ALL, ["plain"]),
        )
        odd = b"\x16\x09\x09\x00\x05abcde"
        got = yield socket_session(port, send=odd, half_close=True)
        self.assertEqual(got, b"HELLO tls\r\n" + odd + b"BYE\r\n")
        self.assertEqual(self.greeters["plain"].connections, [])

    @defer.inlineCallbacks
    def test_peekTimeout(self) -> None:
        """A client that sends nothing is closed after the entrypoint's readTimeout."""
        clock = task.Clock()
        self.backend("tls", self.start_greeter("tls"))
        port = self.start_tcp_proxy(
            route_tcp("tls", CATCH_ALL, ["tls"], tls="{passthrough: true}"),
            read_timeout="5s",
            clock=clock,
        )
        done = socket_session(port)
        yield task.deferLater(_reactor(), 0.1, lambda: None)
        self.assertFalse(done.called)
        clock.advance(5)
        got = yield done
        self.assertEqual(got, b"")
        self.assertEqual(self.greeters["tls"].connections, [])


@implementer(IHalfCloseableProtocol)
class _FinFirst(Protocol):
    """Says HELLO and half-closes at once, then records what it still receives."""

    def connectionMade(self) -> None:
        self.factory.received = []
        self.transport.write(b"HELLO\r\n")
        self.transport.loseWriteConnection()

    def dataReceived(self, data: bytes) -> None:
        self.factory.received.append(data)

    def readConnectionLost(self) -> None:
        self.factory.received.append(b"<EOF>")
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


@implementer(IHalfCloseableProtocol)
class _BigAnswer(Protocol):
    """Answers the client's FIN with 8 MiB, then closes."""

    def readConnectionLost(self) -> None:
        self.transport.write(b"y" * (8 << 20))
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


class _Reset(Protocol):
    """Resets the connection as soon as the client's first bytes arrive."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.abortConnection()


@implementer(IPushProducer)
class _Flood(Protocol):
    """Writes as fast as its transport lets it, up to ``LIMIT`` bytes; counts what it wrote.
    It stops while its transport says the peer is not reading (producer paused)."""

    LIMIT = 128 * 1024 * 1024
    CHUNK = b"x" * 65536

    def connectionMade(self) -> None:
        self.factory.floods.append(self)
        self.written = 0
        self.paused = False
        self.transport.registerProducer(self, True)
        self.resumeProducing()

    def resumeProducing(self) -> None:
        self.paused = False
        while not self.paused and self.written < self.LIMIT:
            self.transport.write(self.CHUNK)
            self.written += len(self.CHUNK)

    def pauseProducing(self) -> None:
        self.paused = True

    def stopProducing(self) -> None:
        self.paused = True


class BackpressureTests(TCPProxyTestCase):
    @defer.inlineCallbacks
    def test_slowClientPausesBackend(self) -> None:
        """A client that does not read: the relay stops reading the backend, so what the
        backend manages to write stays bounded by socket buffers (not 128 MiB in memory);
        once the client reads, everything arrives."""
        from twisted.internet import reactor
        from twisted.internet.protocol import Factory

        factory = Factory.forProtocol(_Flood)
        factory.floods = []  # type: ignore[attr-defined]
        listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.backend("flood", listening.getHost().port)
        port = self.start_tcp_proxy(route_tcp("flood", CATCH_ALL, ["flood"]))
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        client.connect(("127.0.0.1", port))
        self.addCleanup(client.close)
        floods = factory.floods  # type: ignore[attr-defined]
        steady = 0
        for _ in range(1000):  # until the backend has been held back for 20 turns in a row
            yield task.deferLater(reactor, 0.01, lambda: None)
            steady = steady + 1 if floods and floods[0].paused else 0
            if steady >= 20:
                break
        self.assertGreaterEqual(steady, 20, "the backend was never held back")
        written = floods[0].written
        self.assertLess(written, 32 * 1024 * 1024)
        # Reading now lets the rest through: the stream is intact, nothing was dropped.
        client.setblocking(False)
        total = 0
        for _ in range(20000):
            try:
                chunk = client.recv(1 << 20)
            except BlockingIOError:
                yield task.deferLater(reactor, 0.001, lambda: None)
                continue
            total += len(chunk)
            if total >= _Flood.LIMIT:
                break
        self.assertEqual(total, _Flood.LIMIT)


class RelayDialTests(SynchronousTestCase):
    """How tsproxy.tcp.relay dials a server: its transport's dial timeout and keep-alive."""

    def test_dialTimeout(self) -> None:
        """(dialTimeout) → a timer on the relay's clock that stops the connect once over:
        seconds as given, 0 none at all (the connect itself has no timeout of its own)."""
        for seconds, expected in ((30.0, [30.0]), (2.5, [2.5]), (0.0, [])):
            with self.subTest(seconds=seconds):
                reactor = MemoryReactorClock()
                server = TCPServer("127.0.0.1", 7000, dial_timeout=seconds)
                relay = TCPRelay(None, server, reactor, reactor, set())  # type: ignore[arg-type]
                relay.makeConnection(StringTransport())
                (connect,) = reactor.tcpClients
                self.assertEqual((connect[0], connect[1], connect[3]), ("127.0.0.1", 7000, None))
                self.assertEqual([c.getTime() for c in reactor.getDelayedCalls()], expected)
                reactor.advance(max(seconds - 0.01, 0.0))
                self.assertFalse(relay.connector.stoppedConnecting)
                reactor.advance(0.01)
                self.assertEqual(relay.connector.stoppedConnecting, bool(seconds))

    def test_keepAlive(self) -> None:
        """(dialKeepAlive) → the socket's SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL as Go
        sets them: both periods the value, 0 is 15 s, negative leaves probes off."""
        for seconds, expected in ((7.0, (1, 7, 7)), (0.0, (1, 15, 15)), (-1.0, (0, None, None))):
            with self.subTest(seconds=seconds):
                sock = socket.socket()
                self.addCleanup(sock.close)
                transport = StringTransport()
                transport.getHandle = lambda sock=sock: sock  # type: ignore[attr-defined]
                keep_alive(transport, seconds)
                on = sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
                periods = (
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                )
                self.assertEqual((on,) + (periods if on else (None, None)), expected)
