"""TLS on TCP entrypoints through a running proxy, with Python's ssl client: passthrough by
SNI (the client sees each backend's own certificate), termination for TCP routers and for
HTTPS routers (IngressRoute with tls), the default certificate, TLSOption versions."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
from typing import Any, Callable, List, Optional, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st
from OpenSSL import crypto
from twisted.internet import defer, reactor, task, threads
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest
from zope.interface import implementer

from tests.certs import Issued, make_ca, make_leaf, secret_yaml
from tests.proxyfixture import ENDPOINTS, SERVICE
from tests.tcpfixture import TCP_STATIC, TCPProxyTestCase, route_tcp, run
from tests.tlsclient import HalfCloseClient, client_context, describe
from tsproxy.testing import GreeterFactory
from tsproxy.tls import DEFAULT_CERT_CN

CA = make_ca()
ALPHA = make_leaf(CA, "alpha.test", dns=["alpha.test"])
BETA = make_leaf(CA, "beta.test", dns=["beta.test"])
FRONT = make_leaf(CA, "front.test", dns=["front.test", "web.test"])


def tls_session(
    port: int,
    sni: Optional[str],
    send: bytes = b"",
    context: Optional[ssl.SSLContext] = None,
    until: bytes = b"",
) -> Tuple[str, str, bytes]:
    """Handshake with ``sni``, send, read until closed or ``until`` arrived: (certificate
    CN, ALPN, bytes read)."""
    context = context or client_context()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=sni) as sock:
            _, cn = describe(sock.getpeercert(binary_form=True))
            alpn = sock.selected_alpn_protocol() or ""
            got = b""
            if send:
                sock.sendall(send)
            else:
                got += sock.recv(65536)  # the greeting, then leave
                return cn, alpn, got
            while True:
                try:
                    chunk = sock.recv(65536)
                except ssl.SSLError:
                    break
                if not chunk:
                    break
                got += chunk
                if until and until in got:
                    break
            return cn, alpn, got


def backend_tls_options(issued: Issued) -> CertificateOptions:
    return CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(issued.key),
        certificate=crypto.X509.from_cryptography(issued.cert),
    )


class _TLSRoutes(TCPProxyTestCase):
    """Backends, Secrets and an HTTPS IngressRoute for the tests below."""

    def start_tls_greeter(self, name: str, issued: Issued) -> int:
        port = reactor.listenSSL(
            0, GreeterFactory(name), backend_tls_options(issued), interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        return int(port.getHost().port)

    def secret(self, name: str, issued: Issued) -> None:
        self.docs.append(secret_yaml(name, {"tls.crt": issued.cert_pem, "tls.key": issued.key_pem}))

    def web_route(self, tls: str) -> str:
        port = self.start_app("web-app")
        self.docs.append(SERVICE.format(name="web-app"))
        self.docs.append(ENDPOINTS.format(name="web-app", port=port))
        return (
            "apiVersion: traefik.io/v1alpha1\nkind: IngressRoute\nmetadata: {name: web}\n"
            "spec:\n  routes:\n    - match: Host(`web.test`)\n      services:\n"
            "        - {name: web-app, port: 80}\n" + (f"  tls: {tls}\n" if tls else "")
        )


class TLSRoutingTests(_TLSRoutes):
    @defer.inlineCallbacks
    def test_passthroughBySNI(self) -> None:
        """Each SNI reaches its own TLS backend untouched: the client sees that backend's
        certificate and greeting."""
        self.backend("alpha", self.start_tls_greeter("alpha", ALPHA))
        self.backend("beta", self.start_tls_greeter("beta", BETA))
        port = self.start_tcp_proxy(
            route_tcp("alpha", "HostSNI(`alpha.test`)", ["alpha"], tls="{passthrough: true}"),
            route_tcp("beta", "HostSNI(`beta.test`)", ["beta"], tls="{passthrough: true}"),
        )
        for sni in ("alpha.test", "beta.test", "alpha.test"):
            cn, _, got = yield threads.deferToThread(tls_session, port, sni)
            self.assertEqual(cn, sni)
            self.assertEqual(got, b"HELLO " + sni.split(".")[0].encode() + b"\r\n")

    @defer.inlineCallbacks
    def test_terminateForTCP(self) -> None:
        """tls.secretName: the proxy ends TLS with the Secret's certificate and relays the
        plaintext; an SNI no router takes gets the default certificate."""
        self.backend("plain", self.start_greeter("plain"))
        self.secret("front-cert", FRONT)
        port = self.start_tcp_proxy(
            route_tcp("front", "HostSNI(`front.test`)", ["plain"], tls="{secretName: front-cert}")
        )
        cn, _, got = yield threads.deferToThread(
            tls_session, port, "front.test", b"ping", None, b"ping"
        )
        self.assertEqual(cn, "front.test")
        self.assertTrue(got.startswith(b"HELLO plain\r\nping"), got)
        self.assertEqual(self.greeters["plain"].received, [b"ping"])
        cn, _, got = yield threads.deferToThread(
            tls_session,
            port,
            "other.test",
            b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n",
            None,
            b"not found",
        )
        self.assertEqual(cn, DEFAULT_CERT_CN)
        self.assertTrue(got.startswith(b"HTTP/1.1 404 "), got)

    @defer.inlineCallbacks
    def test_httpsRouter(self) -> None:
        """An IngressRoute with tls is served over TLS by the HTTP engine (ALPN http/1.1 for a
        client offering only it, X-Forwarded-Proto https) and not over plain HTTP."""
        self.secret("front-cert", FRONT)
        port = self.start_tcp_proxy(self.web_route("{secretName: front-cert}"))
        request = b"GET /headers HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n"
        context = client_context(alpn=["http/1.1"])
        cn, alpn, got = yield threads.deferToThread(tls_session, port, "web.test", request, context)
        self.assertEqual((cn, alpn), ("front.test", "http/1.1"))
        self.assertTrue(got.startswith(b"HTTP/1.1 200 OK\r\n"), got[:300])
        self.assertIn(b"x-forwarded-proto: https", got.lower())
        plain = yield threads.deferToThread(_plain_http, port, b"web.test")
        self.assertTrue(plain.startswith(b"HTTP/1.1 404 "), plain)

    @defer.inlineCallbacks
    def test_tlsOptionVersions(self) -> None:
        """tls.options names a TLSOption: minVersion TLS 1.3 refuses a TLS 1.2 client."""
        self.backend("plain", self.start_greeter("plain"))
        self.secret("front-cert", FRONT)
        self.docs.append(
            "apiVersion: traefik.io/v1alpha1\nkind: TLSOption\nmetadata: {name: modern}\n"
            "spec: {minVersion: VersionTLS13}\n"
        )
        port = self.start_tcp_proxy(
            route_tcp(
                "front",
                "HostSNI(`front.test`)",
                ["plain"],
                tls="{secretName: front-cert, options: {name: modern}}",
            )
        )
        old = client_context(maximum=ssl.TLSVersion.TLSv1_2)
        failure = yield self.assertFailure(
            threads.deferToThread(tls_session, port, "front.test", b"x", old),
            ssl.SSLError,
            ConnectionResetError,
        )
        self.assertTrue(failure)
        cn, _, got = yield threads.deferToThread(
            tls_session, port, "front.test", b"ping", None, b"ping"
        )
        self.assertEqual(cn, "front.test")
        self.assertTrue(got.startswith(b"HELLO plain\r\nping"), got)


def _plain_http(port: int, host: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
        got = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return got
            got += chunk


class SeedHTTPSTests(TCPProxyTestCase):
    """conf/websecure.yaml as shipped: the canary over HTTPS with the default certificate."""

    @defer.inlineCallbacks
    def test_canaryOverHTTPS(self) -> None:
        self.use_seed_config()
        service = self.start_proxy()
        port = service.port_of("websecure")
        host = "traefikservice-wrr.kubesre.lc"
        request = b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\nConnection: close\r\n\r\n"
        answers = []
        for _ in range(3):
            cn, alpn, got = yield threads.deferToThread(tls_session, port, host, request)
            self.assertEqual((cn, alpn), (DEFAULT_CERT_CN, ""))
            answers.append(got.rsplit(b"\r\n\r\n", 1)[1])
        self.assertEqual(answers, [b"Hello app-v2\n", b"Hello app-v1\n", b"Hello app-v2\n"])


@implementer(IHalfCloseableProtocol)
class _FinFirst(Protocol):
    """Says HELLO and half-closes at once, then records what it still receives."""

    greeting = b"HELLO\r\n"

    def connectionMade(self) -> None:
        self.factory.received = []
        if self.greeting:
            self.transport.write(self.greeting)
        self.transport.loseWriteConnection()

    def dataReceived(self, data: bytes) -> None:
        self.factory.received.append(data)

    def readConnectionLost(self) -> None:
        self.factory.received.append(b"<EOF>")
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


class _FinAtOnce(_FinFirst):
    """Half-closes at once without a word (a greeting would be held, and the backend
    paused, until the client's handshake is over)."""

    greeting = b""


@defer.inlineCallbacks
def _until(check: Callable[[], bool], what: str) -> Any:
    for _ in range(500):
        if check():
            return
        yield task.deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("never happened: " + what)


class TLSHalfCloseTests(TCPProxyTestCase):
    """Half-close where the proxy ends TLS, as Go's tls.Conn gives it to Traefik: the peer's
    close_notify (or a FIN after the handshake) ends one direction only, and a side that is
    done gets close_notify while the other may still send. Every relay ends."""

    def terminated(self, backend: str, delay: int = 10000) -> int:
        self.docs.append(
            secret_yaml("front-cert", {"tls.crt": FRONT.cert_pem, "tls.key": FRONT.key_pem})
        )
        return self.start_tcp_proxy(
            route_tcp(
                "front",
                "HostSNI(`front.test`)",
                [backend],
                tls="{secretName: front-cert}",
                extra=f", terminationDelay: {delay}",
            )
        )

    def listen(self, protocol: type) -> Any:
        factory = Factory.forProtocol(protocol)
        factory.received = []  # type: ignore[attr-defined]
        listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.backend(protocol.__name__.strip("_").lower(), listening.getHost().port)
        return factory

    @defer.inlineCallbacks
    def client_ends(self, end: str) -> Any:
        self.backend("echo", self.start_greeter("echo"))
        port = self.terminated("echo")

        def session() -> Tuple[bytes, str, bool]:
            client = HalfCloseClient(port, "front.test")
            try:
                client.read_until(b"HELLO echo\r\n")
                client.send(b"ping")
                client.read_until(b"ping")
                getattr(client, end)()
                got, how = client.read_to_end()
                return got, how, client.socket_closed()
            finally:
                client.close()

        got, how, closed = yield threads.deferToThread(session)
        self.assertEqual((got, how, closed), (b"HELLO echo\r\npingBYE\r\n", "close_notify", True))
        self.assertEqual(self.greeters["echo"].received, [b"ping"])
        yield self.wait_no_connections()

    def test_clientCloseNotify(self) -> Any:
        """The client sends close_notify and keeps reading: the backend gets the end of the
        stream (a FIN) and its answer still reaches the client, then close_notify."""
        return self.client_ends("close_notify")

    def test_clientFinAfterHandshake(self) -> Any:
        """A bare FIN from the client after the handshake ends its stream the same way."""
        return self.client_ends("fin")

    @defer.inlineCallbacks
    def test_backendFinishesFirst(self) -> None:
        """The backend half-closes first: the client reads close_notify, and what it sends
        after that still reaches the backend; the client's close_notify ends it all."""
        factory = self.listen(_FinFirst)
        port = self.terminated("finfirst")

        def session() -> Tuple[bytes, bytes]:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                sock = client_context().wrap_socket(raw, server_hostname="front.test")
                got = b""
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:  # close_notify
                        break
                    got += chunk
                sock.sendall(b"late data")
                plain = sock.unwrap()  # ours; the proxy's came already
                return got, plain.recv(100)

        got, after = yield threads.deferToThread(session)
        self.assertEqual((got, after), (b"HELLO\r\n", b""))
        yield _until(lambda: b"<EOF>" in factory.received, "the backend's EOF")
        self.assertEqual(b"".join(factory.received), b"late data<EOF>")
        yield self.wait_no_connections()

    @defer.inlineCallbacks
    def test_backendFinishesDuringHandshake(self) -> None:
        """The backend half-closes before the client's handshake is over: close_notify
        follows the handshake, and the client may still send."""
        factory = self.listen(_FinAtOnce)
        port = self.terminated("finatonce")

        def session() -> Tuple[bytes, str, bool]:
            client = HalfCloseClient(port, "front.test", hello_pause=0.3)
            try:
                got, how = client.read_to_end()
                client.send(b"late data")
                client.close_notify()
                return got, how, client.socket_closed()
            finally:
                client.close()

        got, how, closed = yield threads.deferToThread(session)
        self.assertEqual((got, how, closed), (b"", "close_notify", True))
        yield _until(lambda: b"<EOF>" in factory.received, "the backend's EOF")
        self.assertEqual(b"".join(factory.received), b"late data<EOF>")
        yield self.wait_no_connections()

    @defer.inlineCallbacks
    def test_terminationDelayAfterCloseNotify(self) -> None:
        """The backend finished and the client never does: terminationDelay closes both,
        without waiting for a close_notify from the client."""
        factory = self.listen(_FinFirst)
        port = self.terminated("finfirst", delay=50)

        def session() -> Tuple[bytes, str, bool]:
            client = HalfCloseClient(port, "front.test")
            try:
                got, how = client.read_to_end()
                return got, how, client.socket_closed()
            finally:
                client.close()

        got, how, closed = yield threads.deferToThread(session)
        self.assertEqual((got, how, closed), (b"HELLO\r\n", "close_notify", True))
        yield _until(lambda: b"<EOF>" in factory.received, "the backend's EOF")
        yield self.wait_no_connections()

    @defer.inlineCallbacks
    def test_opensslClient(self) -> None:
        """openssl s_client sends its input, then close_notify and a FIN at the end of it,
        and reads on for a while: the backend gets the data and the end, the relay ends."""
        if shutil.which("openssl") is None:
            raise SkipTest("openssl is not installed")
        self.backend("echo", self.start_greeter("echo"))
        port = self.terminated("echo")
        argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}"]
        argv += ["-servername", "front.test", "-quiet", "-no_ign_eof"]
        _, err, code = yield run(argv, stdin=b"ping\n")
        self.assertEqual(code, 0, err[-300:])
        self.assertEqual(b"".join(self.greeters["echo"].received), b"ping\n")
        yield self.wait_no_connections()


class HTTPSHalfCloseTests(_TLSRoutes):
    """The HTTP engine behind TLS: keep-alive, then the client's half-close."""

    @defer.inlineCallbacks
    def https_ends(self, end: str) -> Any:
        self.secret("front-cert", FRONT)
        port = self.start_tcp_proxy(self.web_route("{secretName: front-cert}"))
        request = b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n"
        answer = b"Hello web-app\n"

        def session() -> Tuple[bytes, str, bool]:
            client = HalfCloseClient(port, "web.test")
            try:
                client.send(request)
                client.read_until(answer)
                client.send(request)
                client.read_until(answer, 2)  # keep-alive
                getattr(client, end)()
                got, how = client.read_to_end()
                return got, how, client.socket_closed()
            finally:
                client.close()

        got, how, closed = yield threads.deferToThread(session)
        self.assertEqual((got.count(b"HTTP/1.1 200 OK\r\n"), got.count(answer)), (2, 2), got)
        self.assertEqual((how, closed), ("close_notify", True))
        self.assertEqual(len(self.apps["web-app"].requests), 2)
        yield self.wait_no_connections()

    @defer.inlineCallbacks
    def test_closeNotifyDuringBody(self) -> Any:
        """close_notify while the request body is unfinished and the backend still being
        dialled: the exchange is aborted, nothing is left open."""
        self.secret("front-cert", FRONT)
        port = self.start_tcp_proxy(self.web_route("{secretName: front-cert}"))
        head = b"POST /echo HTTP/1.1\r\nHost: web.test\r\nContent-Length: 100\r\n\r\n"

        def session() -> None:
            client = HalfCloseClient(port, "web.test")
            try:
                client.send(head + b"0123456789", flush=False)
                client.close_notify()
                client.read_to_end()
            except OSError:
                pass  # a reset is a fine answer to a request cut short
            finally:
                client.close()

        yield threads.deferToThread(session)
        yield self.wait_no_connections()

    @defer.inlineCallbacks
    def test_closeWithoutWaitingForThePeer(self) -> Any:
        """The proxy ends an HTTPS connection (Connection: close) while the client neither
        reads nor closes: the socket is closed after our close_notify, as Go does, not kept
        until the client's close_notify."""
        self.secret("front-cert", FRONT)
        port = self.start_tcp_proxy(self.web_route("{secretName: front-cert}"))
        request = b"GET / HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n"
        client = yield threads.deferToThread(HalfCloseClient, port, "web.test")
        self.addCleanup(client.close)
        yield threads.deferToThread(client.send, request)
        yield self.wait_no_connections()  # the client has not read a byte

    def test_keepAliveThenCloseNotify(self) -> Any:
        """Two exchanges on one connection, then close_notify while idle: the proxy's
        close_notify and the socket's end follow. (A request in progress when the client
        ends its side is aborted instead, as Go and nginx do: test_http_hardening.)"""
        return self.https_ends("close_notify")

    def test_keepAliveThenFin(self) -> Any:
        """The same, ending with a bare FIN."""
        return self.https_ends("fin")


def client_hello(sni: str) -> bytes:
    """The ClientHello Python's ssl client sends for ``sni`` (made in memory, no socket)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context().wrap_bio(incoming, outgoing, server_hostname=sni)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


#: A handshake record announcing a ClientHello larger than the peek takes (16 KiB), cut
#: short: the peek gives up at once, and OpenSSL waits for the rest of the record.
OVERSIZED_HELLO = b"\x16\x03\x01\x40\x00" + b"\x01\x00\x50\x00" + b"\x03\x03" + b"\x00" * 32


def stalled_session(port: int, send: bytes) -> Any:
    """A client in a thread that sends ``send`` and then nothing; fires with what it read
    once the proxy closes (a FIN or a reset)."""

    def session() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(send)
            got = b""
            while True:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    return got
                if not chunk:
                    return got
                got += chunk

    return threads.deferToThread(session)


class HandshakeDeadlineTests(_TLSRoutes):
    """Where TLS ends here, the handshake must be over within the entrypoint's readTimeout
    of the accept, and a TCP router's backend is dialled only after it."""

    def proxy(self, kind: str, clock: task.Clock) -> int:
        self.backend("plain", self.start_greeter("plain"))
        self.secret("front-cert", FRONT)
        tls = "{secretName: front-cert}"
        routes = {
            "tcp": route_tcp("front", "HostSNI(`front.test`)", ["plain"], tls=tls),
            "tcp-any": route_tcp("front", "HostSNI(`*`)", ["plain"], tls=tls),
            "https": self.web_route(tls),
        }
        return self.start_tcp_proxy(routes[kind], read_timeout="5s", clock=clock)

    @defer.inlineCallbacks
    def stalled(self, kind: str, hello: bytes) -> Any:
        """The client stops after ``hello``: it holds no backend connection, and is closed
        at readTimeout (5 s on the test's clock), not before."""
        clock = task.Clock()
        port = self.proxy(kind, clock)
        done = stalled_session(port, hello)
        yield task.deferLater(reactor, 0.2, lambda: None)
        clock.advance(4.9)
        yield task.deferLater(reactor, 0.1, lambda: None)
        self.assertFalse(done.called)
        self.assertEqual(self.greeters["plain"].connections, [])
        clock.advance(0.1)
        yield done
        yield self.wait_no_connections()
        self.assertEqual(self.greeters["plain"].connections, [])

    def test_stalledHelloTCP(self) -> Any:
        """A bare ClientHello to a TCP router ending TLS: no backend dial, closed in time."""
        return self.stalled("tcp", client_hello("front.test"))

    def test_stalledOversizedHello(self) -> Any:
        """A cut-short oversized hello (the peek gives up, OpenSSL waits): closed in time."""
        return self.stalled("tcp-any", OVERSIZED_HELLO)

    def test_stalledHelloHTTPS(self) -> Any:
        """A bare ClientHello to an HTTPS router: closed at readTimeout, not idleTimeout."""
        return self.stalled("https", client_hello("web.test"))

    @defer.inlineCallbacks
    def test_finishedHandshakeOutlivesDeadline(self) -> None:
        """Once the handshake is over, readTimeout no longer applies: the relay goes on."""
        clock = task.Clock()
        port = self.proxy("tcp", clock)

        def session() -> bytes:
            client = HalfCloseClient(port, "front.test")
            try:
                client.read_until(b"HELLO plain\r\n")
                threads.blockingCallFromThread(reactor, clock.advance, 60)
                client.send(b"ping")
                return client.read_until(b"ping")
            finally:
                client.close()

        got = yield threads.deferToThread(session)
        self.assertTrue(got.endswith(b"ping"), got)


HELLO = client_hello("front.test")


@st.composite
def peeked_bytes(draw: Any) -> List[bytes]:
    """What a client may send first, in the chunks it arrives in: random bytes, bytes that
    start like a TLS record, or a real ClientHello cut short or with bytes changed."""
    kind = draw(st.sampled_from(["random", "record", "mutated", "cut"]))
    if kind == "random":
        data = draw(st.binary(min_size=1, max_size=300))
    elif kind == "record":
        data = draw(st.sampled_from([b"\x16\x03\x01", b"\x16\x03\x03", b"\x80"]))
        data += draw(st.binary(max_size=300))
    elif kind == "cut":
        data = HELLO[: draw(st.integers(1, len(HELLO)))]
    else:
        data = bytearray(HELLO)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        data = bytes(data)
    cuts = sorted(draw(st.lists(st.integers(1, len(data)), max_size=4)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


class PeekFuzzTests(_TLSRoutes):
    """The peek and the TLS hand-over on whatever a client sends first (the entrypoint's
    own protocol objects on an in-memory transport): nothing raises, and every connection is
    closed once readTimeout is over."""

    def setUp(self) -> None:
        super().setUp()
        self.backend("plain", self.start_greeter("plain"))
        self.secret("front-cert", FRONT)
        tls = "{secretName: front-cert}"
        self.clock = task.Clock()
        self.start_tcp_proxy(
            route_tcp("front", "HostSNI(`*`)", ["plain"], tls=tls),
            self.web_route(tls),
            read_timeout="5s",
            clock=self.clock,
        )
        assert self.service is not None
        self.factory = self.service.factories[0]

    @settings(max_examples=150, deadline=None)
    @given(peeked_bytes())
    def test_firstBytes(self, chunks: List[bytes]) -> None:
        """Any first bytes: no exception, closed within readTimeout, nothing left behind."""
        peer = IPv4Address("TCP", "127.0.0.1", 40000)
        transport = StringTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 443), peerAddress=peer
        )
        protocol = self.factory.buildProtocol(peer)
        transport.protocol = protocol  # type: ignore[attr-defined]
        protocol.makeConnection(transport)
        for chunk in chunks:
            if transport.disconnecting:
                break
            transport.protocol.dataReceived(chunk)  # type: ignore[attr-defined]
        self.clock.advance(5)
        self.assertTrue(transport.disconnecting, chunks)
        transport.protocol.connectionLost(Failure(ConnectionDone()))  # type: ignore[attr-defined]
        self.assertEqual(len(self.factory.connections), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.greeters["plain"].connections, [])


class _Collect(Protocol):
    """A client keeping what it receives."""

    def __init__(self) -> None:
        self.got = b""

    def dataReceived(self, data: bytes) -> None:
        self.got += data


def _exchange(port: int, send: bytes, until: bytes) -> bytes:
    """A blocking client: connect, send, read until ``until`` arrived or the server closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(send)
        got = b""
        while until not in got:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


class ServerTLSTests(_TLSRoutes):
    """``tls: true`` on a TCP service (CRD) or server (file provider): the proxy dials the
    backend with TLS as the static tcpServersTransport says, with its dial settings."""

    SKIP = "tcpServersTransport:\n  dialKeepAlive: 7s\n  tls: {insecureSkipVerify: true}\n"

    def start_with(self, section: str, *routes: str, providers: str = "") -> int:
        static = TCP_STATIC.format(read_timeout="60s") + providers + section
        self.write("tsproxy.yaml", static)
        self.write("routes.yaml", "---\n".join(self.docs + list(routes)))
        return self.start_proxy().port_of("tcp")

    def relays(self) -> List[Any]:
        assert self.service is not None
        return [c for f in self.service.factories for c in f.connections if hasattr(c, "backend")]

    @defer.inlineCallbacks
    def test_insecureSkipVerify(self) -> None:
        """With insecureSkipVerify the backend (a certificate no one trusts) is reached over
        TLS: its greeting and the echo come back; the proxy's socket to it has the
        transport's keep-alive (7 s)."""
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        from tests.http.test_http_healthcheck import until

        self.backend("alpha", self.start_tls_greeter("alpha", ALPHA))
        port = self.start_with(
            self.SKIP, route_tcp("alpha", "HostSNI(`*`)", ["alpha"], extra=", tls: true")
        )
        got = yield threads.deferToThread(_exchange, port, b"ping", b"ping")
        self.assertEqual(got, b"HELLO alpha\r\nping")
        client = _Collect()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
        self.addCleanup(client.transport.abortConnection)
        yield until(lambda: client.got == b"HELLO alpha\r\n")
        (relay,) = self.relays()
        sock = relay.backend.transport.transport.getHandle()  # the socket under TLS
        options = (
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        )
        self.assertEqual(options, (1, 7, 7))

    @defer.inlineCallbacks
    def test_fileServer(self) -> None:
        """The file provider's ``servers: [{address, tls: true}]`` goes the same way."""
        backend = self.start_tls_greeter("beta", BETA)
        dynamic = (
            "tcp:\n  routers:\n    r: {entryPoints: [tcp], rule: HostSNI(`*`), service: s}\n"
            "  services:\n    s:\n      loadBalancer:\n"
            "        servers: [{address: '127.0.0.1:%d', tls: true}]\n" % backend
        )
        self.write("dynamic.yml", dynamic)
        port = self.start_with(self.SKIP, providers="providers:\n  file: {filename: dynamic.yml}\n")
        got = yield threads.deferToThread(_exchange, port, b"pong", b"pong")
        self.assertEqual(got, b"HELLO beta\r\npong")

    @defer.inlineCallbacks
    def test_withoutSkip(self) -> None:
        """Without insecureSkipVerify (rootCAs only: no serverName to verify by) the route
        is disabled: the entrypoint has no TCP router left (its bytes are HTTP, answered
        404) and the backend is never dialled."""
        factory = GreeterFactory("alpha")
        listening = reactor.listenSSL(0, factory, backend_tls_options(ALPHA), interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.backend("alpha", listening.getHost().port)
        with open(os.path.join(self.config_dir, "ca.pem"), "wb") as f:
            f.write(CA.cert_pem)
        port = self.start_with(
            "tcpServersTransport:\n  tls: {rootCAs: [ca.pem]}\n",
            route_tcp("alpha", "HostSNI(`*`)", ["alpha"], extra=", tls: true"),
        )
        request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        got = yield threads.deferToThread(_exchange, port, request, b"\r\n\r\n")
        self.assertEqual((got[:12], factory.connections), (b"HTTP/1.1 404", []))

    @defer.inlineCallbacks
    def test_proxyProtocolBeforeTLS(self) -> None:
        """A PROXY protocol header goes first, in clear, then the TLS handshake (as Traefik
        writes it before its handshake)."""
        import ssl as pyssl

        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(10)
        self.addCleanup(listener.close)
        with open(self.mktemp(), "wb") as f:
            cert_file = f.name
            f.write(ALPHA.cert_pem + ALPHA.key_pem)

        def serve() -> bytes:
            conn, _ = listener.accept()
            with conn:
                header = b""
                while not header.endswith(b"\r\n"):
                    header += conn.recv(1)  # byte by byte: what follows is TLS
                context = pyssl.SSLContext(pyssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(cert_file)
                with context.wrap_socket(conn, server_side=True) as tls:
                    data = tls.recv(100)
                    tls.sendall(b"got " + data)
                    tls.unwrap()
            return header

        served = threads.deferToThread(serve)
        self.backend("pp", listener.getsockname()[1])
        port = self.start_with(
            self.SKIP,
            route_tcp(
                "pp", "HostSNI(`*`)", ["pp"], extra=", tls: true, proxyProtocol: {version: 1}"
            ),
        )
        got = yield threads.deferToThread(_exchange, port, b"ping", b"got ping")
        header = yield served
        self.assertEqual(got, b"got ping")
        self.assertTrue(header.startswith(b"PROXY TCP4 127.0.0.1 127.0.0.1 "), header)

    @defer.inlineCallbacks
    def test_handshakeFails(self) -> None:
        """A server that does not speak TLS fails the handshake: the client's connection is
        closed without a byte of the server's (never relayed in clear)."""
        self.backend("plain", self.start_greeter("plain"))
        port = self.start_with(
            self.SKIP, route_tcp("plain", "HostSNI(`*`)", ["plain"], extra=", tls: true")
        )
        got = yield threads.deferToThread(_exchange, port, b"ping", b"ping")
        self.assertEqual(got, b"")
        yield self.wait_no_connections()


def _tls_server(listener: socket.socket, cert_file: str, handle: Any) -> Any:
    """Accept one connection, do the TLS handshake (server side), run ``handle(tls)``."""
    import ssl as pyssl

    conn, _ = listener.accept()
    context = pyssl.SSLContext(pyssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file)
    with context.wrap_socket(conn, server_side=True) as tls:
        tls.settimeout(10)
        return handle(tls)


class ServerTLSReviewTests(_TLSRoutes):
    """Review: half-close and backpressure through a TLS-dialled TCP server."""

    SKIP = ServerTLSTests.SKIP

    def _listener(self) -> Any:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(10)
        self.addCleanup(listener.close)
        with open(self.mktemp(), "wb") as f:
            f.write(ALPHA.cert_pem + ALPHA.key_pem)
        return listener, f.name

    def _start(self, port: int) -> int:
        self.backend("s", port)
        static = TCP_STATIC.format(read_timeout="60s") + self.SKIP
        self.write("tsproxy.yaml", static)
        route = route_tcp("s", "HostSNI(`*`)", ["s"], extra=", tls: true, terminationDelay: 2000")
        self.write("routes.yaml", "---\n".join(self.docs + [route]))
        return self.start_proxy().port_of("tcp")

    @defer.inlineCallbacks
    def test_clientHalfCloseReachesServer(self) -> None:
        """The client's FIN reaches the server as close_notify; the server's answer after
        it still reaches the client, then its end."""
        listener, cert = self._listener()

        def handle(tls: Any) -> bytes:
            got = b""
            while True:
                chunk = tls.recv(100)
                if not chunk:
                    break
                got += chunk
            tls.sendall(b"pong:" + got)
            tls.unwrap()
            return got

        served = threads.deferToThread(_tls_server, listener, cert, handle)
        port = self._start(listener.getsockname()[1])

        def client() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"ping")
                sock.shutdown(socket.SHUT_WR)
                got = b""
                while True:
                    chunk = sock.recv(100)
                    if not chunk:
                        return got
                    got += chunk

        got = yield threads.deferToThread(client)
        server_got = yield served
        self.assertEqual((server_got, got), (b"ping", b"pong:ping"))

    @defer.inlineCallbacks
    def test_slowClientPausesServer(self) -> None:
        """A client that does not read: the proxy stops reading the TLS server instead of
        buffering what it sends (bounded), and all of it arrives once the client reads."""
        from tests.http.test_http_healthcheck import until

        listener, cert = self._listener()
        total = 32 * 1024 * 1024

        def handle(tls: Any) -> int:
            block = b"x" * 65536
            sent = 0
            tls.settimeout(30)
            while sent < total:
                tls.sendall(block)
                sent += len(block)
            tls.unwrap()
            return sent

        served = threads.deferToThread(_tls_server, listener, cert, handle)
        port = self._start(listener.getsockname()[1])
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        yield until(lambda: bool(self.relays()))
        from twisted.internet.task import deferLater

        yield deferLater(reactor, 1.0, lambda: None)
        (relay,) = self.relays()
        buffered = len(relay.transport.dataBuffer) + sum(map(len, relay.transport._tempDataBuffer))
        self.assertLess(buffered, 4 * 1024 * 1024)

        def drain() -> int:
            n = 0
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    return n
                n += len(chunk)

        got = yield threads.deferToThread(drain)
        sent = yield served
        self.assertEqual(got, sent)

    def relays(self) -> List[Any]:
        assert self.service is not None
        return [c for f in self.service.factories for c in f.connections if hasattr(c, "backend")]
