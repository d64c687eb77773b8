"""Tests for tsproxy.tcp.relay dialling TCP servers through a named TCP transport (a
ServersTransportTCP, or the file provider's tcp.serversTransports), through real listeners:
TLS with serverName and rootCAs (the server sees the SNI), a wrong CA refused, a client
certificate the server requires, the transport's PROXY protocol version, its dial timeout and
terminationDelay on a fake clock, and a reload that changes it."""

from __future__ import annotations

import os
import socket
from typing import Any, List, Optional, Tuple

from OpenSSL import crypto
from twisted.internet import defer, reactor, task, threads
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.logger import formatEvent, globalLogPublisher

from tests.certs import Issued, make_ca, make_leaf, secret_yaml
from tests.tcp.test_tcp_tls import _exchange, _TLSRoutes
from tests.tcpfixture import TCP_STATIC, route_tcp, socket_session
from tsproxy.tcp import proxyproto
from tsproxy.testing import GreeterFactory

CA = make_ca("transport test CA")
OTHER_CA = make_ca("another CA")
BACKEND = make_leaf(CA, "backend.test", dns=["backend.test"])
CLIENT = make_leaf(CA, "tsproxy", client=True)
STATIC = TCP_STATIC.format(read_timeout="60s").replace("level: ERROR", "level: WARN")


def transport_tcp(spec: str, name: str = "st") -> str:
    return (
        "apiVersion: traefik.io/v1alpha1\nkind: ServersTransportTCP\n"
        f"metadata: {{name: {name}}}\nspec: {spec}\n"
    )


def tls_options(issued: Issued, seen: List[bytes], client_ca: Optional[Issued] = None) -> Any:
    """Server TLS options recording the SNI of every handshake in ``seen``; with
    ``client_ca`` a client certificate it issued is required."""
    extra: Any = {}
    if client_ca is not None:
        ca = crypto.X509.from_cryptography(client_ca.cert)
        extra = {"verify": True, "caCerts": [ca], "requireCertificate": True}
    options = CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(issued.key),
        certificate=crypto.X509.from_cryptography(issued.cert),
        **extra,
    )
    options.getContext().set_tlsext_servername_callback(
        lambda connection: seen.append(connection.get_servername())
    )
    return options


class _ProxyHeaderReader(Protocol):
    """A server reading a PROXY protocol header, then answering ``got <rest>``."""

    def connectionMade(self) -> None:
        self.buffer = b""
        self.header: Any = None

    def dataReceived(self, data: bytes) -> None:
        if self.header is not None:
            self.transport.write(b"got " + data)  # type: ignore[union-attr]
            return
        self.buffer += data
        parsed = proxyproto.parse(self.buffer)
        if parsed is None:
            return
        self.header, used = parsed
        self.factory.headers.append(self.header)  # type: ignore[attr-defined]
        rest, self.buffer = self.buffer[used:], b""
        if rest:
            self.transport.write(b"got " + rest)  # type: ignore[union-attr]


class NamedTransportTests(_TLSRoutes):
    """A TCP service naming a transport is dialled as that transport says."""

    def setUp(self) -> None:
        super().setUp()
        self.logged: List[str] = []

        def observe(event: Any) -> None:
            self.logged.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        self.docs.append(secret_yaml("ca", {"ca.crt": CA.cert_pem}, kind="Opaque"))
        self.docs.append(secret_yaml("other-ca", {"ca.crt": OTHER_CA.cert_pem}, kind="Opaque"))
        self.docs.append(
            secret_yaml("client", {"tls.crt": CLIENT.cert_pem, "tls.key": CLIENT.key_pem})
        )

    def start(self, *routes: str, clock: Any = None, providers: str = "") -> int:
        self.write("tsproxy.yaml", STATIC + providers)
        self.write("routes.yaml", "---\n".join(self.docs + list(routes)))
        return self.start_proxy(clock=clock).port_of("tcp")

    def tls_greeter(
        self, name: str, seen: List[bytes], client_ca: Optional[Issued] = None
    ) -> Tuple[int, Any]:
        """A TLS greeter with BACKEND's certificate: (port, factory)."""
        factory = GreeterFactory(name)
        listening = reactor.listenSSL(
            0, factory, tls_options(BACKEND, seen, client_ca), interface="127.0.0.1"
        )
        self.addCleanup(listening.stopListening)
        return listening.getHost().port, factory

    def header_reader(self) -> Tuple[int, List[Any]]:
        """A server reading PROXY protocol headers: (port, the headers it read)."""
        factory = Factory.forProtocol(_ProxyHeaderReader)
        factory.headers = []  # type: ignore[attr-defined]
        listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        return listening.getHost().port, factory.headers  # type: ignore[attr-defined]

    def relays(self) -> List[Any]:
        assert self.service is not None
        return [c for f in self.service.factories for c in f.connections if hasattr(c, "backend")]

    @defer.inlineCallbacks
    def test_serverNameAndRootCAs(self) -> None:
        """serverName and rootCAs from a Secret: the certificate is verified by that name,
        the server sees it as SNI, and the greeting and echo come back."""
        seen: List[bytes] = []
        self.backend("alpha", self.tls_greeter("alpha", seen)[0])
        port = self.start(
            transport_tcp("{tls: {serverName: backend.test, rootCAs: [{secret: ca}]}}"),
            route_tcp(
                "alpha", "HostSNI(`*`)", ["alpha"], extra=", tls: true, serversTransport: st"
            ),
        )
        got = yield threads.deferToThread(_exchange, port, b"ping", b"ping")
        self.assertEqual((got, seen), (b"HELLO alpha\r\nping", [b"backend.test"]))

    @defer.inlineCallbacks
    def test_wrongCA(self) -> None:
        """rootCAs of another CA: the handshake fails, the client's connection is closed
        without a byte of the server's, the failure is logged, no connection is left."""
        seen: List[bytes] = []
        self.backend("alpha", self.tls_greeter("alpha", seen)[0])
        port = self.start(
            transport_tcp("{tls: {serverName: backend.test, rootCAs: [{secret: other-ca}]}}"),
            route_tcp(
                "alpha", "HostSNI(`*`)", ["alpha"], extra=", tls: true, serversTransport: st"
            ),
        )
        got = yield threads.deferToThread(_exchange, port, b"ping", b"ping")
        self.assertEqual((got, seen), (b"", [b"backend.test"]))
        yield self.wait_no_connections()
        self.assertTrue(
            any("TLS handshake with 127.0.0.1:" in line for line in self.logged), self.logged
        )

    @defer.inlineCallbacks
    def test_clientCertificate(self) -> None:
        """A server requiring a client certificate of its CA is reached with the transport's
        certificatesSecrets, and refused (nothing relayed) through one without them."""
        seen: List[bytes] = []
        backend, factory = self.tls_greeter("alpha", seen, client_ca=CA)
        self.backend("alpha", backend)
        with_cert = "{tls: {serverName: backend.test, rootCAs: [{secret: ca}], certificatesSecrets: [client]}}"
        without = "{tls: {serverName: backend.test, rootCAs: [{secret: ca}]}}"
        port = self.start(
            transport_tcp(with_cert),
            transport_tcp(without, name="nocert"),
            route_tcp(
                "alpha", "HostSNI(`*`)", ["alpha"], extra=", tls: true, serversTransport: st"
            ),
        )
        got = yield threads.deferToThread(_exchange, port, b"ping", b"ping")
        self.assertEqual(got, b"HELLO alpha\r\nping")
        self.assertEqual(factory.received, [b"ping"])
        self.write(
            "routes.yaml",
            "---\n".join(
                self.docs
                + [
                    transport_tcp(without, name="nocert"),
                    route_tcp(
                        "alpha",
                        "HostSNI(`*`)",
                        ["alpha"],
                        extra=", tls: true, serversTransport: nocert",
                    ),
                ]
            ),
        )
        assert self.service is not None
        self.assertTrue(self.service.reload())
        got = yield threads.deferToThread(_exchange, port, b"pong", b"pong")
        self.assertEqual((got, factory.received), (b"", [b"ping"]))

    @defer.inlineCallbacks
    def test_proxyProtocol(self) -> None:
        """The transport's PROXY protocol version 2 is sent, not the service's version 1:
        the server parses a v2 header naming the client's address, then the data."""
        backend, headers = self.header_reader()
        self.backend("pp", backend)
        port = self.start(
            transport_tcp("{proxyProtocol: {version: 2}}"),
            route_tcp(
                "pp",
                "HostSNI(`*`)",
                ["pp"],
                extra=", serversTransport: st, proxyProtocol: {version: 1}",
            ),
        )

        def session() -> Tuple[bytes, Tuple[str, int]]:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"ping")
                return sock.recv(100), sock.getsockname()

        got, client = yield threads.deferToThread(session)
        self.assertEqual(got, b"got ping")
        (header,) = headers
        self.assertEqual(
            (header.version, header.command, header.protocol, header.source),
            (2, "PROXY", "TCP4", client),
        )
        self.assertEqual(header.destination, ("127.0.0.1", port))

    @defer.inlineCallbacks
    def test_dialTimeout(self) -> None:
        """A server that never answers the connect (its accept queue full): the client's
        connection stays open until the transport's dialTimeout is over on the clock, then
        is closed and the timeout logged."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        self.addCleanup(listener.close)
        for _ in range(3):  # fill the accept queue: further SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            self.addCleanup(filler.close)
        self.backend("hole", listener.getsockname()[1])
        clock = task.Clock()
        port = self.start(
            transport_tcp("{dialTimeout: 20s}"),
            route_tcp("hole", "HostSNI(`*`)", ["hole"], extra=", serversTransport: st"),
            clock=clock,
        )
        done = socket_session(port, send=b"x")
        for _ in range(500):
            if any(r.dial_timer is not None for r in self.relays()):
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        clock.advance(19.9)
        yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertFalse(done.called)
        clock.advance(0.1)
        got = yield done
        self.assertEqual(got, b"")
        self.assertTrue(any("dial timeout (20s) exceeded" in line for line in self.logged))

    @defer.inlineCallbacks
    def test_terminationDelay(self) -> None:
        """After the client's FIN, a server that never closes is cut after the transport's
        terminationDelay (250ms on the clock), not the service's own (10 s)."""
        clock = task.Clock()
        port_number, received = self.start_half_open()
        self.backend("mute", port_number)
        port = self.start(
            transport_tcp("{terminationDelay: 250ms}"),
            route_tcp(
                "mute",
                "HostSNI(`*`)",
                ["mute"],
                extra=", serversTransport: st, terminationDelay: 10000",
            ),
            clock=clock,
        )
        done = socket_session(port, send=b"x", half_close=True)
        for _ in range(500):
            if b"<EOF>" in received:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(received, [b"x", b"<EOF>"])
        yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertFalse(done.called)
        clock.advance(0.25)
        got = yield done
        self.assertEqual(got, b"")

    def write_file_provider(self, transport: str, server: str) -> None:
        dynamic = (
            "tcp:\n  routers:\n    r: {entryPoints: [tcp], rule: HostSNI(`*`), service: s}\n"
            "  services:\n    s:\n      loadBalancer:\n        serversTransport: st\n"
            f"        servers: [{server}]\n"
            f"  serversTransports:\n    st: {transport}\n"
        )
        self.write("dynamic.yml", dynamic)

    @defer.inlineCallbacks
    def test_fileProvider(self) -> None:
        """The file provider's tcp.serversTransports, rootCAs as a file path: the server is
        verified by serverName, which it sees as SNI."""
        seen: List[bytes] = []
        backend, _ = self.tls_greeter("alpha", seen)
        with open(os.path.join(self.config_dir, "ca.pem"), "wb") as f:
            f.write(CA.cert_pem)
        self.write_file_provider(
            "{tls: {serverName: backend.test, rootCAs: [ca.pem]}}",
            "{address: '127.0.0.1:%d', tls: true}" % backend,
        )
        port = self.start(providers="providers:\n  file: {filename: dynamic.yml}\n")
        got = yield threads.deferToThread(_exchange, port, b"ping", b"ping")
        self.assertEqual((got, seen), (b"HELLO alpha\r\nping", [b"backend.test"]))

    @defer.inlineCallbacks
    def test_reload(self) -> None:
        """A reload that changes the transport (PROXY protocol version 1 to 2) applies to
        the next connection."""
        backend, headers = self.header_reader()
        server = "{address: '127.0.0.1:%d'}" % backend
        self.write_file_provider("{proxyProtocol: {version: 1}}", server)
        port = self.start(providers="providers:\n  file: {filename: dynamic.yml}\n")
        got = yield threads.deferToThread(_exchange, port, b"one", b"got one")
        self.write_file_provider("{proxyProtocol: {version: 2}}", server)
        assert self.service is not None
        self.assertTrue(self.service.reload())
        got += yield threads.deferToThread(_exchange, port, b"two", b"got two")
        self.assertEqual(got, b"got onegot two")
        self.assertEqual([h.version for h in headers], [1, 2])
