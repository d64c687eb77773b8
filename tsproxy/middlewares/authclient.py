"""The HTTP client forwardAuth asks its auth server with: Twisted's Agent over a connection pool,
a timeout, a cap on the answer's body, TLS from Secrets; never follows redirects.

`AuthClient` is the seam: tests of the step give a fake, the proxy this one.
"""

from __future__ import annotations

from typing import Any, List, Optional, Protocol, Sequence, Tuple

import attrs

__all__ = [
    "AgentAuthClient",
    "AuthClient",
    "AuthResponse",
    "AuthTimeout",
    "ResponseTooLarge",
    "TLSMaterial",
    "tls_policy",
]

#: Traefik's forwardAuth client timeout.
TIMEOUT = 30.0
#: Idle pooled connections are closed after this long (Go's default IdleConnTimeout).
IDLE_TIMEOUT = 90.0


class ResponseTooLarge(Exception):
    """The auth server's body is longer than maxResponseBodySize."""


class AuthTimeout(Exception):
    """The auth server did not answer within the client's timeout."""


@attrs.frozen
class AuthResponse:
    """The auth server's whole answer."""

    status: int
    headers: Tuple[Tuple[str, str], ...]
    body: bytes


class AuthClient(Protocol):
    """Sends one request and collects the whole answer (a Deferred of AuthResponse).

    Fails with ResponseTooLarge past `max_body` bytes (-1: no limit), AuthTimeout, or the
    connection's error; cancelling the Deferred abandons the request.
    """

    def request(
        self,
        method: str,
        url: str,
        headers: Sequence[Tuple[str, str]],
        body: Optional[bytes],
        max_body: int,
    ) -> Any: ...


@attrs.frozen
class TLSMaterial:
    """PEM material for the auth client's TLS, read from Secrets at build time."""

    ca: Optional[bytes] = None
    cert: Optional[bytes] = None
    key: Optional[bytes] = None
    insecure_skip_verify: bool = False


def tls_policy(material: TLSMaterial) -> Any:
    """An IPolicyForHTTPS: the CA (or the system's), the client certificate, or no checks."""
    from OpenSSL import SSL
    from twisted.internet import ssl
    from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
    from twisted.web.iweb import IPolicyForHTTPS
    from zope.interface import implementer

    client_cert = None
    if material.cert is not None and material.key is not None:
        client_cert = ssl.PrivateCertificate.loadPEM(material.cert + b"\n" + material.key)
    trust_root: Any = None
    if material.ca is not None:
        roots = [ssl.Certificate.loadPEM(block) for block in _pem_blocks(material.ca)]
        trust_root = ssl.trustRootFromCertificates(roots)

    @implementer(IOpenSSLClientConnectionCreator)
    class _Unverified:
        def __init__(self, hostname: bytes, context: Any) -> None:
            self.hostname = hostname
            self.context = context

        def clientConnectionForTLS(self, protocol: Any) -> Any:
            connection = SSL.Connection(self.context, None)
            connection.set_app_data(protocol)
            if self.hostname and not _is_ip(self.hostname):
                connection.set_tlsext_host_name(self.hostname)
            return connection

    @implementer(IPolicyForHTTPS)
    class _Policy:
        def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
            if material.insecure_skip_verify:
                extra = {}
                if client_cert is not None:
                    extra = {
                        "privateKey": client_cert.privateKey.original,
                        "certificate": client_cert.original,
                    }
                options = ssl.CertificateOptions(verify=False, **extra)
                return _Unverified(hostname, options.getContext())
            return ssl.optionsForClientTLS(
                hostname.decode("idna"), trustRoot=trust_root, clientCertificate=client_cert
            )

    return _Policy()


def _is_ip(host: bytes) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.decode("ascii"))
    except ValueError:
        return False
    return True


def _pem_blocks(data: bytes) -> List[bytes]:
    end = b"-----END CERTIFICATE-----"
    return [part + end for part in data.split(end) if b"-----BEGIN" in part]


class AgentAuthClient:
    """AuthClient on Twisted's Agent with its own persistent connection pool."""

    def __init__(self, reactor: Any, policy: Any = None, timeout: float = TIMEOUT) -> None:
        from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

        self.reactor = reactor
        self.timeout = timeout
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 10
        self.pool.cachedConnectionTimeout = IDLE_TIMEOUT  # type: ignore[assignment]
        self.pool.retryAutomatically = False
        self.agent = Agent(
            reactor, contextFactory=policy or BrowserLikePolicyForHTTPS(), pool=self.pool
        )

    def request(
        self,
        method: str,
        url: str,
        headers: Sequence[Tuple[str, str]],
        body: Optional[bytes],
        max_body: int,
    ) -> Any:
        from twisted.python.failure import Failure
        from twisted.web.http_headers import Headers

        raw = Headers()
        for name, value in headers:
            raw.addRawHeader(name.encode("latin-1"), value.encode("latin-1"))
        producer = _bytes_producer(body) if body is not None else None
        timed_out: List[bool] = []
        d = self.agent.request(method.encode("ascii"), url.encode("ascii"), raw, producer)
        d.addCallback(_read_response, max_body)

        def expire() -> None:
            timed_out.append(True)
            d.cancel()

        timer = self.reactor.callLater(self.timeout, expire)

        def done(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            if timed_out and isinstance(result, Failure):
                raise AuthTimeout(f"no answer from {url} within {self.timeout:g}s")
            return result

        return d.addBoth(done)

    def close(self) -> Any:
        """Close the pooled connections (a Deferred)."""
        return self.pool.closeCachedConnections()


def _bytes_producer(body: bytes) -> Any:
    """An IBodyProducer writing an in-memory body at once (its length known up front)."""
    from twisted.internet.defer import succeed
    from twisted.web.iweb import IBodyProducer
    from zope.interface import implementer

    @implementer(IBodyProducer)
    class _Bytes:
        length = len(body)

        def startProducing(self, consumer: Any) -> Any:
            consumer.write(body)
            return succeed(None)

        def pauseProducing(self) -> None:
            pass

        def resumeProducing(self) -> None:
            pass

        def stopProducing(self) -> None:
            pass

    return _Bytes()


def _read_response(response: Any, max_body: int) -> Any:
    from twisted.internet.defer import Deferred
    from twisted.internet.protocol import Protocol
    from twisted.web.client import ResponseDone
    from twisted.web.http import PotentialDataLoss

    headers = tuple(
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, values in response.headers.getAllRawHeaders()
        for value in values
    )
    transport_box: List[Any] = []

    def stop(_: Any) -> None:
        if transport_box:
            transport_box[0].stopProducing()

    finished: Deferred[AuthResponse] = Deferred(stop)

    class Collect(Protocol):
        def __init__(self) -> None:
            self.parts: List[bytes] = []
            self.size = 0
            self.too_large = False

        def makeConnection(self, transport: Any) -> None:
            transport_box.append(transport)
            super().makeConnection(transport)

        def dataReceived(self, data: bytes) -> None:
            if self.too_large:
                return
            self.size += len(data)
            if 0 <= max_body < self.size:
                self.too_large = True
                self.transport.stopProducing()  # type: ignore[union-attr]
                return
            self.parts.append(data)

        def connectionLost(self, reason: Any = None) -> None:
            if finished.called:
                return
            if self.too_large:
                finished.errback(ResponseTooLarge(f"auth response body over {max_body} bytes"))
            elif reason is None or reason.check(ResponseDone, PotentialDataLoss):
                finished.callback(AuthResponse(response.code, headers, b"".join(self.parts)))
            else:
                finished.errback(reason)

    response.deliverBody(Collect())
    return finished
