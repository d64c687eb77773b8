"""https backends through a running proxy: ALPN h2 chosen per connection after the TLS
handshake (a real grpcio server on TLS: unary, server streaming, grpc-status in the
metrics), HTTP/1.1-only servers, ``disableHTTP2``, upgrades, the pool keys and offers."""

from __future__ import annotations

import socket
from typing import Any, List, Optional, Tuple

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import StreamEnded
from twisted.internet import defer, reactor, task, threads
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLServerConnectionCreator
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, TestCase
from zope.interface import implementer

from tests.certs import make_ca, make_leaf
from tests.grpcfixture import grpc_codes, start_echo
from tests.http.test_http_healthcheck import _Table, until
from tests.proxyfixture import STATIC, ProxyTestCase
from tsproxy.balance.health import HealthCheckSpec
from tsproxy.config.resources import TransportSettings
from tsproxy.http.backend import BackendPool
from tsproxy.http.backend_tls import OFFER_H2, OFFER_HTTP1, client_options, offers_h2, pool_key
from tsproxy.http.healthcheck import HealthMonitor
from tsproxy.http.relay import PendingConnect
from tsproxy.runtime.services import LoadBalancer, LoadBalancerDef, Server

try:
    import grpc
except ImportError:  # pragma: no cover - absent on PyPy
    grpc = None

CA = make_ca()
LEAF = make_leaf(CA, "backend.test", dns=["backend.test"], ips=["127.0.0.1"])

ROUTE = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: secure
spec:
  entryPoints: [web]
  routes:
    - match: Host(`secure.test`)
      kind: Rule
      services:
        - name: secure
          port: 443
          scheme: https
          serversTransport: {transport}
---
apiVersion: traefik.io/v1alpha1
kind: ServersTransport
metadata:
  name: skip
spec:
  insecureSkipVerify: true
---
apiVersion: traefik.io/v1alpha1
kind: ServersTransport
metadata:
  name: skip-h1
spec:
  insecureSkipVerify: true
  disableHTTP2: true
---
apiVersion: traefik.io/v1alpha1
kind: ServersTransport
metadata:
  name: verify
spec:
  serverName: backend.test
---
apiVersion: v1
kind: Service
metadata:
  name: secure
spec:
  ports:
    - name: https
      port: 443
---
apiVersion: v1
kind: Endpoints
metadata:
  name: secure
subsets:
  - addresses:
      - ip: 127.0.0.1
    ports:
      - name: https
        port: {port}
"""

TRAEFIK = 'entryPoints:\n  traefik:\n    address: "127.0.0.1:0"\n'
METRICS = "metrics:\n  prometheus: {}\n"


def backend_options(protocols: Tuple[bytes, ...]) -> Any:
    """A TLS server context with the test leaf, selecting among ``protocols`` by ALPN (no
    ALPN at all when empty: Twisted's options would refuse clients offering any)."""
    from OpenSSL import SSL, crypto

    key = crypto.load_privatekey(crypto.FILETYPE_PEM, LEAF.key_pem)
    cert = crypto.load_certificate(crypto.FILETYPE_PEM, LEAF.cert_pem)
    if protocols:
        return CertificateOptions(
            privateKey=key, certificate=cert, acceptableProtocols=list(protocols)
        )
    context = SSL.Context(SSL.TLS_METHOD)
    context.use_certificate(cert)
    context.use_privatekey(key)

    @implementer(IOpenSSLServerConnectionCreator)
    class _Plain:
        def serverConnectionForTLS(self, protocol: Any) -> Any:
            connection = SSL.Connection(context, None)
            connection.set_app_data(protocol)
            connection.set_accept_state()
            return connection

    return _Plain()


@implementer(IHandshakeListener)
class _DualBackend(Protocol):
    """A TLS backend speaking whichever protocol the handshake chose (h2, else HTTP/1.1);
    every answer's body is the HTTP version the request came in."""

    def __init__(self) -> None:
        self.h2: Any = None
        self.buf = b""

    def connectionMade(self) -> None:
        self.factory.conns.append(self)  # type: ignore[attr-defined]

    def handshakeCompleted(self) -> None:
        chosen = self.transport.negotiatedProtocol  # type: ignore[union-attr]
        self.factory.chosen.append(chosen)  # type: ignore[attr-defined]
        if chosen == b"h2":
            self.h2 = H2Connection(H2Configuration(client_side=False))
            self.h2.initiate_connection()
            self.transport.write(self.h2.data_to_send())  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self.h2 is not None:
            for event in self.h2.receive_data(data):
                if isinstance(event, StreamEnded):
                    headers = [(b":status", b"200"), (b"content-length", b"6")]
                    self.h2.send_headers(event.stream_id, headers)
                    self.h2.send_data(event.stream_id, b"HTTP/2", end_stream=True)
            self.transport.write(self.h2.data_to_send())  # type: ignore[union-attr]
            return
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.transport.write(  # type: ignore[union-attr]
                b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nHTTP/1.1"
            )

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.conns.remove(self)  # type: ignore[attr-defined]
        if not self.factory.conns and self.factory.gone is not None:  # type: ignore[attr-defined]
            self.factory.gone.callback(None)  # type: ignore[attr-defined]


def raw_get(port: int, head: bytes) -> bytes:
    """Send one HTTP/1.1 request head and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        got = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return got
            got += data


class BackendTLSTests(ProxyTestCase):
    """HTTP clients → proxy → a TLS backend offering h2 and/or http/1.1 by ALPN."""

    def serve_tls(self, transport: str, protocols: Tuple[bytes, ...]) -> None:
        factory = self.backend = Factory.forProtocol(_DualBackend)
        factory.conns, factory.chosen, factory.gone = [], [], None  # type: ignore[attr-defined]
        port = reactor.listenSSL(0, factory, backend_options(protocols), interface="127.0.0.1")
        self.addCleanup(self._backend_closed)
        self.addCleanup(port.stopListening)
        self.use_seed_config()
        self.write("secure.yaml", ROUTE.format(transport=transport, port=port.getHost().port))
        self.start_proxy()

    def _backend_closed(self) -> Any:
        """Wait for the proxy's connections to the backend to be closed (at its stop)."""
        factory = self.backend
        if not factory.conns:  # type: ignore[attr-defined]
            return None
        factory.gone = defer.Deferred()  # type: ignore[attr-defined]
        for conn in list(factory.conns):  # type: ignore[attr-defined]
            conn.transport.loseConnection()
        return factory.gone  # type: ignore[attr-defined]

    def get(self, path: str = "/") -> defer.Deferred[Tuple[int, bytes]]:
        assert self.service is not None
        port = self.service.port_of("web")
        head = b"GET %s HTTP/1.1\r\nHost: secure.test\r\nConnection: close\r\n\r\n" % (
            path.encode(),
        )
        d = threads.deferToThread(raw_get, port, head)
        return d.addCallback(_status_body)

    def h2_conns(self) -> List[Any]:
        assert self.service is not None
        pools = {id(f.pool): f.pool for f in self.service.factories if getattr(f, "pool", None)}
        return [
            c for p in pools.values() if p.h2 is not None for cs in p.h2.conns.values() for c in cs
        ]

    @defer.inlineCallbacks
    def test_h2Chosen(self) -> None:
        """A backend selecting h2 is spoken to over HTTP/2; many requests at once share one
        connection (the ones waiting on the first dial join it)."""
        self.serve_tls("skip", (b"h2", b"http/1.1"))
        answers = yield defer.gatherResults([self.get("/%d" % i) for i in range(8)])
        self.assertEqual(answers, [(200, b"HTTP/2")] * 8)
        self.assertEqual(len(self.h2_conns()), 1)
        self.assertEqual(self.backend.chosen, [b"h2"])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_http1Only(self) -> None:
        """A backend that only speaks http/1.1 is dialled with HTTP/1.1, concurrent requests
        too (each on a connection of its own); nothing joins the HTTP/2 pool."""
        self.serve_tls("skip", (b"http/1.1",))
        answers = yield defer.gatherResults([self.get("/%d" % i) for i in range(6)])
        self.assertEqual(answers, [(200, b"HTTP/1.1")] * 6)
        self.assertEqual(self.h2_conns(), [])
        chosen = self.backend.chosen  # type: ignore[attr-defined]
        self.assertEqual(set(chosen), {b"http/1.1"})

    @defer.inlineCallbacks
    def test_noALPN(self) -> None:
        """A backend without ALPN at all is HTTP/1.1."""
        self.serve_tls("skip", ())
        answer = yield self.get()
        self.assertEqual(answer, (200, b"HTTP/1.1"))
        self.assertEqual(self.backend.chosen, [None])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_disableHTTP2(self) -> None:
        """disableHTTP2: only http/1.1 is offered, so a backend preferring h2 speaks 1.1."""
        self.serve_tls("skip-h1", (b"h2", b"http/1.1"))
        answer = yield self.get()
        self.assertEqual(answer, (200, b"HTTP/1.1"))
        self.assertEqual(self.h2_conns(), [])
        self.assertEqual(self.backend.chosen, [b"http/1.1"])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_upgradeIsHTTP1(self) -> None:
        """A request asking for a protocol upgrade goes over HTTP/1.1 even to an h2 backend."""
        self.serve_tls("skip", (b"h2", b"http/1.1"))
        assert self.service is not None
        head = (
            b"GET / HTTP/1.1\r\nHost: secure.test\r\nConnection: Upgrade, close\r\n"
            b"Upgrade: example\r\n\r\n"
        )
        got = yield threads.deferToThread(raw_get, self.service.port_of("web"), head)
        self.assertEqual(_status_body(got), (200, b"HTTP/1.1"))
        self.assertEqual(self.backend.chosen, [b"http/1.1"])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_verified(self) -> None:
        """Without insecureSkipVerify the certificate is checked: the test CA is not trusted,
        so the handshake fails and the client gets 502."""
        self.serve_tls("verify", (b"h2", b"http/1.1"))
        answer = yield self.get()
        self.assertEqual(answer[0], 502)


def _status_body(raw: bytes) -> Tuple[int, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


class GRPCOverTLSTests(ProxyTestCase):
    """grpcio client (h2c) → proxy → grpcio server on TLS behind an https service."""

    def setUp(self) -> None:
        if grpc is None:
            raise SkipTest("grpcio is not installed")
        super().setUp()
        credentials = grpc.ssl_server_credentials(((LEAF.key_pem, LEAF.cert_pem),))
        port = start_echo(self, credentials=credentials)
        self.use_seed_config()
        self.write("tsproxy.yaml", STATIC.replace("entryPoints:\n", TRAEFIK) + METRICS)
        self.write("grpc.yaml", ROUTE.format(transport="skip", port=port))
        self.start_proxy()
        assert self.service is not None
        self.channel = grpc.insecure_channel(
            "127.0.0.1:%d" % self.service.port_of("web"),
            options=[("grpc.default_authority", "secure.test")],
        )
        self.addCleanup(self.channel.close)

    @defer.inlineCallbacks
    def test_unary(self) -> None:
        """A unary call over TLS+h2 is answered; its trailing metadata crosses the proxy."""

        def run() -> Any:
            stub = self.channel.unary_unary("/t.Echo/Unary")
            return stub.with_call(b"hello", timeout=10)

        answer, call = yield threads.deferToThread(run)
        self.assertEqual(answer, b"olleh")
        self.assertIn(("x-trailer", "t1"), tuple(call.trailing_metadata()))

    @defer.inlineCallbacks
    def test_serverStreaming(self) -> None:
        """A server stream larger than every flow-control window arrives whole."""

        def run() -> List[bytes]:
            stub = self.channel.unary_stream("/t.Echo/Many")
            return list(stub(b"200", timeout=20))

        got = yield threads.deferToThread(run)
        self.assertEqual(len(got), 200)
        self.assertEqual(got[199], b"199:" + b"x" * 20000)

    @defer.inlineCallbacks
    def test_status(self) -> None:
        """An error status reaches the client; the metrics' code label is the grpc-status
        read from the answer (trailers-only for the error, trailers for OK)."""

        def call(method: str, request: bytes) -> Any:
            stub = self.channel.unary_unary("/t.Echo/" + method)
            return threads.deferToThread(lambda: stub(request, timeout=10))

        try:
            yield call("Fail", b"abc")
        except grpc.RpcError as e:
            self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND)
            self.assertEqual(e.details(), "no such thing: abc")
        else:
            self.fail("no error")
        answer = yield call("Unary", b"x")
        self.assertEqual(answer, b"x")
        codes = grpc_codes(self.service)
        self.assertEqual(sorted(codes), ["0", "5"])


class HealthOverTLSTests(TestCase):
    """Active health checks of https servers go through their ServersTransport's TLS."""

    def setUp(self) -> None:
        factory = self.backend = Factory.forProtocol(_DualBackend)
        factory.conns, factory.chosen, factory.gone = [], [], None  # type: ignore[attr-defined]
        listening = reactor.listenSSL(
            0, factory, backend_options((b"http/1.1",)), interface="127.0.0.1"
        )
        self.addCleanup(listening.stopListening)
        self.port = listening.getHost().port
        self.clock = task.Clock()
        self.monitor = HealthMonitor(reactor, self.clock, lambda *change: None)
        self.addCleanup(self.monitor.stop)

    @defer.inlineCallbacks
    def test_transport(self) -> None:
        """insecureSkipVerify: the check reaches the server (UP); verifying against a CA the
        proxy does not trust: DOWN."""
        table = [
            (TransportSettings(insecure_skip_verify=True), True),
            (TransportSettings(server_name="backend.test"), False),
        ]
        for settings, expected in table:
            spec = HealthCheckSpec("/ok")
            servers = (Server.at("https", "127.0.0.1", self.port, settings),)
            node = LoadBalancer.build(LoadBalancerDef("svc", servers, health_check=spec))
            self.monitor.update(_Table(node))
            checker = self.monitor.checkers[node]
            self.clock.advance(spec.interval)
            yield until(lambda checker=checker: not checker.in_flight)  # type: ignore[misc]
            self.assertEqual(node.states.up(servers[0].url), expected, settings)
            self.monitor.update(_Table())
        self.assertEqual(self.backend.chosen, [b"http/1.1"])  # type: ignore[attr-defined]


class _Handshaken(StringTransport):
    """A transport whose TLS handshake chose ``negotiatedProtocol``."""

    def __init__(self, chosen: Optional[bytes]) -> None:
        super().__init__()
        self.negotiatedProtocol = chosen


class PoolDialTests(TestCase):
    """The pool's https dials on a memory reactor: who waits on which dial, and what each
    exchange gets once the handshake has chosen a protocol."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.pool = BackendPool(self.reactor, self.reactor, tls_options=self.options)
        self.server = _server("https", insecure_skip_verify=True)
        self.got: List[Tuple[str, Any]] = []
        self.offers: List[Tuple[bytes, ...]] = []

    def options(self, host: str, settings: TransportSettings, offer: Tuple[bytes, ...]) -> Any:
        self.offers.append(offer)
        return object()

    def connect(self, name: str, upgrade: bool = False) -> Any:
        return self.pool.connect(
            self.server,
            lambda conn: self.got.append((name, conn)),
            lambda status, reason: self.got.append((name, status)),
            upgrade=upgrade,
        )

    def handshake(self, index: int, chosen: Optional[bytes]) -> _Handshaken:
        """Complete the ``index``-th dial's TCP connection and TLS handshake."""
        factory = self.reactor.sslClients[index][2]
        protocol = factory.buildProtocol(None)
        transport = _Handshaken(chosen)
        protocol.makeConnection(transport)
        protocol.handshakeCompleted()
        return transport

    def kinds(self) -> List[Tuple[str, Any]]:
        return [
            (name, type(got).__name__ if not isinstance(got, int) else got)
            for name, got in self.got
        ]

    def test_shared_dial_h2(self) -> None:
        """Exchanges arriving while the first dial is in flight wait on it; h2 gives each a
        stream of the one connection, and the next exchange a stream at once."""
        for name in "abc":
            self.connect(name)
        self.assertEqual(len(self.reactor.sslClients), 1)
        self.handshake(0, b"h2")
        self.assertEqual(self.kinds(), [(n, "H2BackendStream") for n in "abc"])
        self.connect("d")
        self.reactor.advance(0)
        self.assertEqual(self.kinds()[-1], ("d", "H2BackendStream"))
        self.assertEqual((len(self.reactor.sslClients), self.offers), (1, [OFFER_H2]))

    def test_shared_dial_http1(self) -> None:
        """HTTP/1.1 chosen: the first exchange gets the connection, the others dial their
        own (still offering h2); later exchanges do not wait on each other."""
        for name in "abc":
            self.connect(name)
        self.handshake(0, b"http/1.1")
        self.assertEqual(self.kinds(), [("a", "BackendConnection")])
        self.assertEqual(len(self.reactor.sslClients), 3)
        self.handshake(1, b"http/1.1")
        self.handshake(2, None)
        self.assertEqual([name for name, _ in self.got], ["a", "b", "c"])
        self.connect("d")
        self.connect("e")
        self.assertEqual(len(self.reactor.sslClients), 5)
        self.assertEqual(self.offers, [OFFER_H2] * 5)

    def test_failed_dial(self) -> None:
        """A dial that fails fails every exchange waiting on it, once; a cancelled one
        hears nothing."""
        self.connect("a")
        self.connect("b").cancel()
        self.connect("c")
        factory = self.reactor.sslClients[0][2]
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(self.got, [("a", 502), ("c", 502)])

    def test_handshake_failure(self) -> None:
        """A handshake that fails (certificate refused) is a 502 for the waiting exchanges."""
        self.connect("a")
        factory = self.reactor.sslClients[0][2]
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(_Handshaken(None))
        protocol.connectionLost(Failure(ConnectionLost("certificate verify failed")))
        self.assertEqual(self.got, [("a", 502)])

    def test_handshake_timeout(self) -> None:
        """A handshake that does not end in 10 s is a 504 and the connection is dropped."""
        self.connect("a")
        protocol = self.reactor.sslClients[0][2].buildProtocol(None)
        transport = _Handshaken(None)
        protocol.makeConnection(transport)
        self.reactor.advance(10)
        self.assertEqual((self.got, transport.disconnecting), ([("a", 504)], True))

    def test_waiters_served_once(self) -> None:
        """An h2 connection made by another dial serves the exchanges waiting on a shared
        dial; that dial's own connection, when it comes, serves nobody twice."""
        self.connect("a")
        self.connect("b")
        self.pool._dial_tls(
            self.server,
            pool_key(self.server),
            [
                (
                    self.server,
                    PendingConnect(),
                    lambda conn: self.got.append(("c", conn)),
                    lambda *e: None,
                )
            ],
            False,
            OFFER_H2,
        )
        self.handshake(1, b"h2")
        self.assertEqual(self.kinds(), [(n, "H2BackendStream") for n in "abc"])
        late = self.handshake(0, b"http/1.1")
        self.assertEqual(len(self.got), 3)
        self.assertTrue(late.disconnecting)

    def test_bad_server_name(self) -> None:
        """A serverName no TLS client can send fails the exchange with a 502, no dial."""
        self.pool.tls_options = client_options
        self.server = _server("https", server_name="bad..name")
        self.connect("a")
        self.assertEqual((self.got, self.reactor.sslClients), ([("a", 502)], []))

    def test_closing(self) -> None:
        """A dial ending after the pool closed (the proxy stopping) keeps nothing open."""
        self.connect("a")
        self.pool.close()
        transport = self.handshake(0, b"h2")
        self.assertEqual((self.got, transport.disconnecting), ([("a", 502)], True))
        self.assertEqual(self.pool.h2.conns, {})

    def test_http1_only(self) -> None:
        """disableHTTP2 and upgrade requests offer http/1.1 alone, one dial per exchange."""
        self.connect("a", upgrade=True)
        self.connect("b", upgrade=True)
        self.server = _server("https", disable_http2=True)
        self.connect("c")
        self.assertEqual(self.offers, [OFFER_HTTP1] * 3)
        self.handshake(0, b"http/1.1")
        self.assertEqual(self.kinds(), [("a", "BackendConnection")])
        self.assertEqual(self.pool.protocols, {})


def _server(scheme: str, **settings: Any) -> Server:
    return Server.at(scheme, "127.0.0.1", 8443, TransportSettings(**settings))


OFFERS = [
    # (scheme, transport settings, upgrade request, offers h2)
    ("https", {}, False, True),
    ("https", {"disable_http2": True}, False, False),
    ("https", {}, True, False),
    ("http", {}, False, False),
    ("h2c", {}, False, False),
]


class PoolKeyTests(TestCase):
    """Which dials offer h2, and which connections may be shared."""

    def test_offers(self) -> None:
        """h2 is offered to https servers unless disableHTTP2 or the request upgrades."""
        for scheme, settings, upgrade, expected in OFFERS:
            with self.subTest(scheme=scheme, settings=settings, upgrade=upgrade):
                self.assertEqual(offers_h2(_server(scheme, **settings), upgrade), expected)
        self.assertEqual((OFFER_H2, OFFER_HTTP1), ((b"h2", b"http/1.1"), (b"http/1.1",)))

    def test_keys(self) -> None:
        """https connections made under different TLS settings are never pooled together;
        timeouts and disableHTTP2 do not split the pool."""
        base = pool_key(_server("https"))
        same = [{"idle_conn_timeout": 5.0}, {"disable_http2": True}, {"dial_timeout": 1.0}]
        different = [{"insecure_skip_verify": True}, {"server_name": "backend.test"}]
        for settings in same:
            with self.subTest(settings=settings):
                self.assertEqual(pool_key(_server("https", **settings)), base)
        for settings in different:
            with self.subTest(settings=settings):
                self.assertNotEqual(pool_key(_server("https", **settings)), base)
        self.assertEqual(pool_key(_server("h2c")), ("h2c", "127.0.0.1", 8443))
