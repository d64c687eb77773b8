"""Real handshakes on 127.0.0.1 with Python's ssl client: the lead's adoption pattern (a raw
TCP protocol peeks the ClientHello, then runs TLSMemoryBIOProtocol over its own transport and
replays the bytes) serving what tsproxy.tls.build_tls made of YAML resources."""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any, List, Optional

from twisted.internet import defer, reactor
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThread
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests import certs
from tests.tlsclient import Seen, client_context, describe
from tsproxy.config.load import load_directory
from tsproxy.config.resources import ObjectRef
from tsproxy.tcp.sni import MalformedHello, NotTLS, parse_client_hello
from tsproxy.tls import DEFAULT_CERT_CN, TLSManager, build_tls

CA = certs.make_ca()
CLIENT_CA = certs.make_ca("client CA")
CLIENT = certs.make_leaf(CLIENT_CA, "client", client=True)
ALPHA = certs.make_leaf(CA, "alpha.example", dns=["alpha.example"])
BETA = certs.make_leaf(CA, "beta.example", dns=["beta.example", "www.beta.example"])
WILD = certs.make_leaf(CA, dns=["*.apps.example"])

STATIC = "entryPoints:\n  websecure:\n    address: 127.0.0.1:0\n"


def route(name: str, tls: str) -> str:
    return (
        "apiVersion: traefik.io/v1alpha1\n"
        "kind: IngressRoute\n"
        "metadata: {name: %s, namespace: default}\n"
        "spec:\n"
        "  entryPoints: [websecure]\n"
        "  routes:\n"
        "    - match: Host(`%s.example`)\n"
        "      services: [{name: app, port: 80}]\n"
        "  tls: %s\n" % (name, name, tls)
    )


OPTIONS = """\
apiVersion: traefik.io/v1alpha1
kind: TLSOption
metadata: {name: modern, namespace: default}
spec:
  minVersion: VersionTLS13
---
apiVersion: traefik.io/v1alpha1
kind: TLSOption
metadata: {name: strict, namespace: default}
spec:
  sniStrict: true
---
apiVersion: traefik.io/v1alpha1
kind: TLSOption
metadata: {name: mtls, namespace: default}
spec:
  clientAuth:
    secretNames: [client-ca]
    clientAuthType: RequireAndVerifyClientCert
"""


class Echo(Protocol):
    """The application behind TLS: sends back what it gets."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Adopting(Protocol):
    """Peeks the ClientHello on a plain TCP connection, asks the manager for a creator, and
    then hands this transport to a TLSMemoryBIOProtocol, replaying the peeked bytes."""

    def __init__(self, factory: AdoptingFactory) -> None:
        self.owner = factory
        self.buffer = b""
        self.tls: Optional[Protocol] = None
        self.lost: defer.Deferred[None] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        if self.tls is not None:
            self.tls.dataReceived(data)
            return
        self.buffer += data
        try:
            hello = parse_client_hello(self.buffer)
        except (NotTLS, MalformedHello):
            self.transport.abortConnection()
            return
        if hello is None:
            return
        owner = self.owner
        creator = owner.manager.server_creator(
            hello.server_name, owner.option, owner.http11_only, self.transport.getHost().host
        )
        if creator is None:
            self.transport.abortConnection()
            return
        tls_factory = TLSMemoryBIOFactory(creator, False, Factory.forProtocol(Echo))
        self.tls = tls_factory.buildProtocol(self.transport.getPeer())
        assert self.tls is not None
        self.tls.makeConnection(self.transport)
        self.tls.dataReceived(self.buffer)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self.tls is not None:
            self.tls.connectionLost(reason)
        self.lost.callback(None)


class AdoptingFactory(Factory):
    def __init__(self, manager: TLSManager, option: Optional[ObjectRef], http11_only: bool) -> None:
        self.manager = manager
        self.option = option
        self.http11_only = http11_only
        self.connections: List[Adopting] = []

    def buildProtocol(self, addr: IAddress) -> Adopting:
        protocol = Adopting(self)
        self.connections.append(protocol)
        return protocol


def connect(port: int, sni: Optional[str], **client: Any) -> Seen:
    """A blocking ssl client (run in a thread): handshake, one echo, what it saw."""
    context = client_context(**client)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=sni) as tls:
                tls.sendall(b"ping")
                echoed = tls.recv(4)
                names, cn = describe(tls.getpeercert(binary_form=True))
                if echoed != b"ping":
                    return Seen(names, cn, error="echo: %r" % echoed)
                return Seen(names, cn, tls.version() or "", tls.selected_alpn_protocol())
    except (OSError, ssl.SSLError) as exc:
        return Seen(error=str(exc) or type(exc).__name__)


class HandshakeTests(TestCase):
    """Handshakes through the adoption pattern with certificates and options from YAML."""

    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        files = {
            "tsproxy.yaml": STATIC,
            "secrets.yaml": "---\n".join(
                [
                    certs.secret_yaml(
                        "alpha", {"tls.crt": ALPHA.cert_pem, "tls.key": ALPHA.key_pem}
                    ),
                    certs.secret_yaml("beta", {"tls.crt": BETA.cert_pem, "tls.key": BETA.key_pem}),
                    certs.secret_yaml("wild", {"tls.crt": WILD.cert_pem, "tls.key": WILD.key_pem}),
                    certs.secret_yaml("client-ca", {"ca.crt": CLIENT_CA.cert_pem}, kind="Opaque"),
                ]
            ),
            "options.yaml": OPTIONS,
            "routes.yaml": "---\n".join(
                [
                    route("alpha", "{secretName: alpha}"),
                    route("beta", "{secretName: beta, options: {name: modern}}"),
                    route("wild", "{secretName: wild}"),
                ]
            ),
        }
        for name, text in files.items():
            with open(os.path.join(directory, name), "w") as stream:
                stream.write(text)
        loaded = load_directory(directory)
        self.assertEqual(loaded.errors, ())
        result = build_tls(loaded.resources)
        self.assertEqual((result.errors, result.warnings), ((), ()))
        self.manager = result.manager

    def serve(self, option: Optional[str] = None, http11_only: bool = False) -> int:
        """Listen on 127.0.0.1 port 0 with the given TLS option; cleaned up after the test."""
        ref = None if option is None else ObjectRef(option, "default")
        factory = AdoptingFactory(self.manager, ref, http11_only)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")

        def stop() -> defer.Deferred[Any]:
            waits = [connection.lost for connection in factory.connections]
            return defer.gatherResults(waits + [defer.maybeDeferred(port.stopListening)])

        self.addCleanup(stop)
        return int(port.getHost().port)

    @defer.inlineCallbacks
    def test_certificate_per_sni(self) -> Any:
        """Each SNI gets its certificate: two names, a wildcard, the default for the rest."""
        port = self.serve()
        rows = [
            ("alpha.example", ("alpha.example",)),
            ("www.beta.example", ("beta.example", "www.beta.example")),
            ("x.apps.example", ("*.apps.example",)),
        ]
        for sni, names in rows:
            seen = yield deferToThread(connect, port, sni)
            self.assertEqual((seen.error, seen.names), ("", names), sni)
        for sni in ("unknown.example", None):
            seen = yield deferToThread(connect, port, sni)
            self.assertEqual((seen.error, seen.cn), ("", DEFAULT_CERT_CN))

    @defer.inlineCallbacks
    def test_alpn(self) -> Any:
        """The default option selects h2 first; the HTTP/1.1-only mode selects http/1.1."""
        full, http11 = self.serve(), self.serve(http11_only=True)
        seen = yield deferToThread(connect, full, "alpha.example", alpn=("h2", "http/1.1"))
        self.assertEqual((seen.error, seen.alpn), ("", "h2"))
        seen = yield deferToThread(connect, http11, "alpha.example", alpn=("h2", "http/1.1"))
        self.assertEqual((seen.error, seen.alpn), ("", "http/1.1"))
        seen = yield deferToThread(connect, http11, "alpha.example", alpn=("h2",))
        self.assertIn("NO_APPLICATION_PROTOCOL", seen.error.upper().replace(" ", "_"))

    @defer.inlineCallbacks
    def test_min_version(self) -> Any:
        """minVersion VersionTLS13 refuses a TLS 1.2-only client and serves a TLS 1.3 one."""
        port = self.serve("modern")
        seen = yield deferToThread(connect, port, "beta.example", maximum=ssl.TLSVersion.TLSv1_2)
        self.assertIn("PROTOCOL_VERSION", seen.error.upper().replace(" ", "_"))
        seen = yield deferToThread(connect, port, "beta.example")
        self.assertEqual((seen.error, seen.version), ("", "TLSv1.3"))
        default = self.serve()
        seen = yield deferToThread(connect, default, "beta.example", maximum=ssl.TLSVersion.TLSv1_2)
        self.assertEqual((seen.error, seen.version), ("", "TLSv1.2"))

    @defer.inlineCallbacks
    def test_sni_strict(self) -> Any:
        """sniStrict refuses a name no certificate serves, and no SNI; known names pass."""
        port = self.serve("strict")
        for sni in ("unknown.example", None):
            seen = yield deferToThread(connect, port, sni)
            self.assertNotEqual(seen.error, "", sni)
            self.assertEqual(seen.names, ())
        seen = yield deferToThread(connect, port, "y.apps.example")
        self.assertEqual((seen.error, seen.names), ("", ("*.apps.example",)))

    @defer.inlineCallbacks
    def test_client_auth(self) -> Any:
        """RequireAndVerifyClientCert refuses a client without a certificate, accepts one
        signed by the CA of the clientAuth secret."""
        port = self.serve("mtls")
        seen = yield deferToThread(connect, port, "alpha.example")
        self.assertIn("CERTIFICATE_REQUIRED", seen.error.upper().replace(" ", "_"))
        seen = yield deferToThread(connect, port, "alpha.example", client_cert=CLIENT)
        self.assertEqual((seen.error, seen.names), ("", ("alpha.example",)))
