"""TLS to ``https`` backends: the client options a ServersTransport asks for, and a dial whose
protocol (HTTP/2 or HTTP/1.1) is known only once the handshake has chosen it by ALPN.

As Traefik's transport: the TLS client offers ALPN ``h2`` and ``http/1.1`` unless the
transport says ``disableHTTP2`` (or the request is a protocol upgrade, always HTTP/1.1); the
name sent as SNI and verified is the transport's ``serverName``, else the server's host;
``insecureSkipVerify`` checks nothing; ``rootCAs`` replace the system's CAs; the first client
certificate is presented when the server asks for one; ``peerCertURI`` must be a URI SAN of
the server's certificate, whose chain is then checked even with ``insecureSkipVerify`` (as
Traefik's VerifyPeerCertificate). `NegotiatingTLS` holds the connection until the
handshake ends, then hands it to the protocol the server selected (`TLSDial.made`), which
drives it from then on.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from twisted.internet import error as ierror
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLClientConnectionCreator
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from tsproxy.http.relay import PendingConnect, cancel_call

if TYPE_CHECKING:
    from tsproxy.config.resources import TransportSettings
    from tsproxy.runtime.services import Server

#: ALPN offers: HTTP/2 preferred, as Go's transport; or HTTP/1.1 alone.
OFFER_H2 = (b"h2", b"http/1.1")
OFFER_HTTP1 = (b"http/1.1",)
#: How long a TLS handshake to a backend may take (Go's TLSHandshakeTimeout, fixed in Traefik).
HANDSHAKE_TIMEOUT = 10.0

#: What a pool keys connections by: connections made under different TLS settings are never
#: shared (one made without verification must not serve a service that verifies).
PoolKey = Tuple[Any, ...]


def pool_key(server: Server) -> PoolKey:
    """The key of the connections that may serve ``server``."""
    if server.scheme != "https":
        return (server.scheme, server.host, server.port)
    t = server.transport
    return (
        "https",
        server.host,
        server.port,
        t.server_name,
        t.insecure_skip_verify,
        t.root_cas,
        t.certificates,
        t.peer_cert_uri,
    )


def offers_h2(server: Server, upgrade: bool) -> bool:
    """Whether a dial to ``server`` offers ALPN h2 (not for upgrades, nor ``disableHTTP2``)."""
    return server.scheme == "https" and not upgrade and not server.transport.disable_http2


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


_CREATORS: Dict[Tuple[Any, ...], Any] = {}


def client_options(host: str, settings: TransportSettings, protocols: Tuple[bytes, ...]) -> Any:
    """An IOpenSSLClientConnectionCreator for a backend at ``host`` (kept: contexts are costly).

    Raises ValueError for a name OpenSSL or IDNA cannot take (CertificateError, a ValueError,
    for PEM the configuration checks already refused)."""
    name = settings.server_name or host
    key = (
        name,
        host,
        settings.insecure_skip_verify,
        protocols,
        settings.root_cas,
        settings.certificates,
        settings.peer_cert_uri,
    )
    creator = _CREATORS.get(key)
    if creator is None:
        if len(_CREATORS) > 1024:
            _CREATORS.clear()
        creator = _CREATORS[key] = _build(name, settings, protocols)
    return creator


def _build(name: str, settings: TransportSettings, protocols: Tuple[bytes, ...]) -> Any:
    from twisted.internet import ssl

    insecure = settings.insecure_skip_verify
    custom = settings.root_cas or settings.certificates or settings.peer_cert_uri
    if not insecure and not custom:
        return ssl.optionsForClientTLS(name, acceptableProtocols=list(protocols))
    # The chain is checked unless insecureSkipVerify, and always when peerCertURI is set.
    verify = not insecure or bool(settings.peer_cert_uri)
    extra: Dict[str, Any] = {"verify": False}
    if verify:  # trustRoot implies verify
        extra = {"trustRoot": _trust_root(settings.root_cas)}
    if settings.certificates:
        extra.update(_client_certificate(*settings.certificates[0]))
    options = ssl.CertificateOptions(acceptableProtocols=list(protocols), **extra)
    return _Creator(
        name,
        options.getContext(),
        protocols,
        verify,
        None if insecure else name,
        settings.peer_cert_uri,
    )


def _trust_root(root_cas: Tuple[bytes, ...]) -> Any:
    """The transport's CAs (none: the system's)."""
    from OpenSSL import crypto
    from twisted.internet import ssl

    from tsproxy.tls.certs import load_ca_bundle

    if not root_cas:
        return ssl.platformTrust()
    certificates = [
        ssl.Certificate(crypto.X509.from_cryptography(c))
        for pem in root_cas
        for c in load_ca_bundle(pem)
    ]
    return ssl.trustRootFromCertificates(certificates)


def _client_certificate(cert_pem: bytes, key_pem: bytes) -> Dict[str, Any]:
    from OpenSSL import crypto

    from tsproxy.tls.certs import load_key_pair

    pair = load_key_pair(cert_pem, key_pem, "client certificate")
    chain = [crypto.X509.from_cryptography(c) for c in pair.chain]
    return {
        "privateKey": crypto.PKey.from_cryptography_key(pair.key),  # type: ignore[arg-type]
        "certificate": chain[0],
        "extraCertChain": chain[1:],
    }


def _uri_sans(cert: Any) -> List[str]:
    from cryptography import x509

    try:
        extension = cert.to_cryptography().extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
    except x509.ExtensionNotFound:
        return []
    return list(extension.value.get_values_for_type(x509.UniformResourceIdentifier))


def peer_identity_problem(cert: Any, name: Optional[str], peer_uri: str) -> Optional[str]:
    """What is wrong with a server's verified leaf ``cert`` (an OpenSSL X509): not issued for
    ``name`` (None: not checked), or without the URI SAN ``peer_uri`` (compared ignoring case,
    as Traefik); None when nothing is."""
    from service_identity import VerificationError
    from service_identity.hazmat import DNS_ID, IPAddress_ID, verify_service_identity

    try:
        from service_identity.pyopenssl import extract_patterns
    except ImportError:  # service_identity before 23.1 (Twisted 22.10 accepts 18.1)
        from service_identity.pyopenssl import extract_ids as extract_patterns

    if name is not None:
        wanted = IPAddress_ID(name) if _is_ip(name) else DNS_ID(name)
        try:
            verify_service_identity(extract_patterns(cert), [wanted], [])
        except VerificationError as exc:
            return "certificate not valid for %s: %s" % (name, exc)
    if peer_uri and not any(uri.lower() == peer_uri.lower() for uri in _uri_sans(cert)):
        return "peer certificate mismatches peerCertURI %s" % (peer_uri,)
    return None


class PeerIdentityError(Exception):
    """The server's certificate is not the one the transport asks for."""


@implementer(IOpenSSLClientConnectionCreator)
class _Creator:
    """A client connection creator for transports with their own CAs, a client certificate,
    ``peerCertURI`` or ``insecureSkipVerify``: sends SNI (unless ``name`` is an IP), and when
    ``verify`` checks the leaf's identity (``check_name``, ``peer_uri``) once OpenSSL has
    verified its chain."""

    def __init__(
        self,
        name: str,
        context: Any,
        protocols: Tuple[bytes, ...],
        verify: bool,
        check_name: Optional[str],
        peer_uri: str,
    ) -> None:
        self.server_name = name.encode("idna") if name and not _is_ip(name) else b""
        self.context = context
        self.protocols = list(protocols)
        self.verify = verify
        self.check_name = check_name
        self.peer_uri = peer_uri

    def clientConnectionForTLS(self, protocol: Any) -> Any:
        from OpenSSL import SSL

        connection = SSL.Connection(self.context, None)
        connection.set_app_data(protocol)
        if self.server_name:
            connection.set_tlsext_host_name(self.server_name)
        if self.protocols:
            connection.set_alpn_protos(self.protocols)
        if self.verify:
            flags = SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT
            connection.set_verify(flags, self._verifier(protocol))
        connection.set_connect_state()
        return connection

    def _verifier(self, protocol: Any) -> Callable[[Any, Any, int, int, int], bool]:
        def verify(connection: Any, cert: Any, errno: int, depth: int, ok: int) -> bool:
            if not ok or depth != 0:
                return bool(ok)
            try:
                problem = peer_identity_problem(cert, self.check_name, self.peer_uri)
            except Exception as exc:  # never raise inside an OpenSSL callback
                problem = "cannot check the peer certificate: %s" % (exc,)
            if problem is None:
                return True
            protocol.failVerification(Failure(PeerIdentityError(problem)))
            return False

        return verify


#: (server, pending, on_ready, on_error): an exchange waiting for a connection or stream.
Waiter = Tuple[Any, Any, Callable[[Any], None], Callable[[int, str], None]]


class TLSDial:
    """One TLS dial to an ``https`` server and the exchanges waiting on it.

    ``made(protocol)`` is called with the ALPN protocol chosen (``b""`` when none) and returns
    the protocol that drives the connection from then on (None: close it); ``failed`` when
    the connection or the handshake failed. ``shared``: its waiters are the HTTP/2 pool's
    list for the key, which other exchanges join while the outcome is unknown.
    """

    def __init__(
        self,
        server: Server,
        key: PoolKey,
        waiters: List[Waiter],
        shared: bool,
        made: Callable[[TLSDial, bytes], Optional[Protocol]],
        failed: Callable[[TLSDial, int, str], None],
        clock: Any,
        offer: Tuple[bytes, ...] = OFFER_H2,
    ) -> None:
        self.server = server
        self.key = key
        self.waiters = waiters
        self.shared = shared
        self.made = made
        self.failed = failed
        self.clock = clock
        self.offer = offer
        self.over = False

    def fail(self, status: int, reason: str) -> None:
        if not self.over:
            self.over = True
            self.failed(self, status, reason)


@implementer(IHandshakeListener)
class NegotiatingTLS(Protocol):
    """A backend TLS connection until its handshake ends; then it passes everything to the
    protocol the handshake selected."""

    def __init__(self, dial: TLSDial) -> None:
        self.dial = dial
        self.inner: Optional[Protocol] = None
        self.timer: Any = None

    def connectionMade(self) -> None:
        self.timer = self.dial.clock.callLater(HANDSHAKE_TIMEOUT, self._timed_out)

    def _timed_out(self) -> None:
        self.timer = None
        self.dial.fail(504, "TLS handshake timeout")
        self.transport.abortConnection()  # type: ignore[union-attr]

    def handshakeCompleted(self) -> None:
        cancel_call(self.timer)
        self.timer = None
        dial = self.dial
        if dial.over:
            return
        dial.over = True
        chosen = getattr(self.transport, "negotiatedProtocol", None) or b""
        inner = dial.made(dial, chosen)
        if inner is None:
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self.inner = inner
        inner.makeConnection(self.transport)

    def dataReceived(self, data: bytes) -> None:
        inner = self.inner
        if inner is not None:
            inner.dataReceived(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        cancel_call(self.timer)
        self.timer = None
        inner, self.inner = self.inner, None
        if inner is not None:
            inner.connectionLost(reason)
            return
        why = reason.getErrorMessage() if reason is not None else "connection closed"
        self.dial.fail(502, "TLS handshake failed: %s" % (why,))


class TLSDialFactory(ClientFactory):
    noisy = False

    def __init__(self, dial: TLSDial) -> None:
        self.dial = dial

    def buildProtocol(self, addr: Any) -> NegotiatingTLS:
        return NegotiatingTLS(self.dial)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if reason.check(ierror.TimeoutError, ierror.UserError):
            self.dial.fail(504, "dial timeout")
        else:
            self.dial.fail(502, "dial failed: %s" % (reason.getErrorMessage(),))


class TLSDialling:
    """The ``https`` part of the backend pool (tsproxy.http.backend.BackendPool): a dial's
    protocol is known once the TLS handshake has chosen it by ALPN.

    While a server's protocol is unknown (or is h2), exchanges wanting a connection wait on
    one shared dial (the HTTP/2 pool's ``dialing`` list for the key); if it turns out h2 they
    all get streams of it, else the first gets the HTTP/1.1 connection and the others dial
    their own. A server known to choose HTTP/1.1 gets one dial per exchange, still offering
    h2 (a connection that does choose h2 then joins the HTTP/2 pool).
    """

    reactor: Any
    clock: Any
    closing: bool
    h2: Any
    tls_options: Optional[Callable[[str, Any, Tuple[bytes, ...]], Any]]
    #: The protocol each https server's last handshake chose when offered h2.
    protocols: Dict[PoolKey, bytes]

    def _h2(self) -> Any:
        raise NotImplementedError

    def http1_connection(self, key: PoolKey, waiter: Waiter) -> Protocol:
        raise NotImplementedError

    def _connect_tls(self, server: Server, waiter: Waiter, upgrade: bool) -> PendingConnect:
        pending = waiter[1]
        key = pool_key(server)
        if not offers_h2(server, upgrade):
            self._dial_tls(server, key, [waiter], False, OFFER_HTTP1)
            return pending
        h2 = self._h2()
        if h2.has_room(key):
            return h2.connect(server, waiter[2], waiter[3])  # type: ignore[no-any-return]
        waiters = h2.dialing.get(key)
        if waiters is not None:
            waiters.append(waiter)  # a dial whose protocol is not known yet, or is h2
        elif self.protocols.get(key) == b"http/1.1":
            self._dial_tls(server, key, [waiter], False, OFFER_H2)  # one connection each
        else:
            waiters = h2.dialing[key] = [waiter]
            self._dial_tls(server, key, waiters, True, OFFER_H2)
        return pending

    def _dial_tls(
        self,
        server: Server,
        key: PoolKey,
        waiters: List[Waiter],
        shared: bool,
        offer: Tuple[bytes, ...],
    ) -> None:
        dial = TLSDial(
            server, key, waiters, shared, self._negotiated, self._tls_failed, self.clock, offer
        )
        try:
            creator = self.tls_options(server.host, server.transport, offer)  # type: ignore[misc]
        except Exception as e:  # a name OpenSSL or IDNA cannot take, a key it refuses
            dial.fail(502, "TLS to %s: %s" % (server.host, e))
            return
        timeout = server.transport.dial_timeout or 3600.0
        connector = self.reactor.connectSSL(
            server.host, server.port, TLSDialFactory(dial), creator, timeout=timeout
        )
        if not shared:
            waiters[0][1].connector = connector  # a shared dial is not one exchange's to stop

    def _negotiated(self, dial: TLSDial, chosen: bytes) -> Any:
        """The handshake chose ``chosen``: the protocol driving the connection, or None."""
        key = dial.key
        if self.closing:  # the proxy is stopping: nothing new is kept open
            self._tls_failed(dial, 502, "the proxy is shutting down")
            return None
        h2 = self.h2
        if chosen == b"h2":
            self.protocols[key] = chosen
            h2 = self._h2()
            if not dial.shared:
                h2.dialing.setdefault(key, []).extend(dial.waiters)
            return h2.connection(key)  # its connectionMade hands out the streams
        if b"h2" in dial.offer:  # what the server prefers, when it had the choice
            self.protocols[key] = b"http/1.1"
        if dial.shared and not self._take_shared(dial):
            return None  # its waiters were served by another connection meanwhile
        conn: Optional[Protocol] = None
        for waiter in dial.waiters:
            if waiter[1].cancelled:
                continue
            if conn is None:
                conn = self.http1_connection(key, waiter)
            else:  # HTTP/1.1 carries one exchange at a time: the others dial their own
                self._dial_tls(waiter[0], key, [waiter], False, OFFER_H2)
        return conn

    def _tls_failed(self, dial: TLSDial, status: int, reason: str) -> None:
        if dial.shared and not self._take_shared(dial):
            return
        for _server, pending, _on_ready, on_error in dial.waiters:
            if not pending.cancelled:
                on_error(status, reason)

    def _take_shared(self, dial: TLSDial) -> bool:
        """Take a shared dial's waiters off the HTTP/2 pool's list; False when they are gone
        (an h2 connection made by another dial took them and served them)."""
        h2 = self.h2
        if h2 is None or h2.dialing.get(dial.key) is not dial.waiters:
            return False
        del h2.dialing[dial.key]
        return True
