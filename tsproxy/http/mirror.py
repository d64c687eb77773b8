"""Mirroring: copies of a request sent to mirror services after the main response is done.

The copy's body is captured as it streams to the main backend (in memory up to 1 MiB, then
in a temporary file, so memory stays bounded even with Traefik's unlimited default). Copies go
out through treq; their answers are drained and dropped. Copies to ``https`` servers use their
ServersTransport's TLS (tsproxy.http.backend_tls: serverName, insecureSkipVerify, rootCAs,
client certificate, peerCertURI), each TLS setting with its own connection pool. Nothing here
can delay, change or fail the main response: every error is logged and swallowed.
"""

from __future__ import annotations

import io
import tempfile
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

import treq
from treq.client import HTTPClient
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers as TwistedHeaders
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from tsproxy.http.backend_tls import OFFER_HTTP1, client_options
from tsproxy.logs import get_logger
from tsproxy.runtime.services import TransportSettings, resolve

if TYPE_CHECKING:
    from tsproxy.http.wire import RequestHead
    from tsproxy.runtime.services import MirrorOrder, Server

log = get_logger(__name__)

#: Bodies up to this size are kept in memory; larger ones are spooled to a temporary file.
SPOOL_IN_MEMORY = 1 << 20
_NOT_COPIED = frozenset([b"content-length", b"transfer-encoding"])


class MirrorSender:
    """Sends mirror copies, with a cap on the copies in flight so a slow mirror under load
    cannot pile up memory (Traefik has no such bound: its issue #6125)."""

    def __init__(self, reactor: Any, max_in_flight: int = 64, timeout: float = 30.0) -> None:
        self.reactor = reactor
        self.max_in_flight = max_in_flight
        self.timeout = timeout
        self.in_flight = 0
        self.pool = self._pool()
        self.agent = Agent(reactor, pool=self.pool, connectTimeout=timeout)
        #: Agents (and their pools) for https servers, by their transport's TLS settings.
        self.tls_agents: Dict[TransportSettings, Tuple[Agent, HTTPConnectionPool]] = {}
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        #: Told (mirror service, mirroring service, status) as each copy's answer arrives;
        #: status 0 when the copy got no answer. Metrics count copies apart from clients'.
        self.observer: Optional[Callable[[str, str, int], None]] = None
        self._idle_waiters: List[Deferred] = []

    def _pool(self) -> HTTPConnectionPool:
        pool = HTTPConnectionPool(self.reactor, persistent=True)
        pool.maxPersistentPerHost = 16
        pool.retryAutomatically = False
        return pool

    def agent_for(self, server: Server) -> Agent:
        """The agent for ``server``: connections made under other TLS settings are never
        shared with it (one made without verification must not carry a verified copy)."""
        if server.scheme != "https":
            return self.agent
        transport = server.transport
        found = self.tls_agents.get(transport)
        if found is None:
            if len(self.tls_agents) >= 64:  # bounded: close the oldest settings' pool
                oldest = next(iter(self.tls_agents))
                self.tls_agents.pop(oldest)[1].closeCachedConnections()
            pool = self._pool()
            agent = Agent(
                self.reactor,
                contextFactory=_TransportPolicy(transport),
                pool=pool,
                connectTimeout=self.timeout,
            )
            found = self.tls_agents[transport] = (agent, pool)
        return found[0]

    def idle(self) -> Deferred[None]:
        """Fires once no copy is in flight (tests and shutdown wait on it)."""
        if self.in_flight == 0:
            return succeed(None)
        d: Deferred = Deferred()
        self._idle_waiters.append(d)
        return d

    def capture(
        self, orders: Sequence[MirrorOrder], req: RequestHead, out_head: bytes
    ) -> MirrorCapture:
        """Start copying a request for `orders`; the capture is fed its body as it streams."""
        return MirrorCapture(self, list(orders), req, out_head)

    def close(self) -> Deferred[None]:
        pools = [self.pool] + [pool for _agent, pool in self.tls_agents.values()]
        self.tls_agents = {}
        return gatherResults([pool.closeCachedConnections() for pool in pools]).addCallback(
            lambda _: None
        )


@implementer(IPolicyForHTTPS)
class _TransportPolicy:
    """TLS for copies to https servers as their ServersTransport says."""

    def __init__(self, transport: TransportSettings) -> None:
        self.transport = transport

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        host = hostname.decode("idna").strip("[]")
        return client_options(host, self.transport, OFFER_HTTP1)


class MirrorCapture:
    """One request's copy: its head, its body so far, and the mirrors it goes to."""

    def __init__(
        self, sender: MirrorSender, orders: List[MirrorOrder], req: RequestHead, out_head: bytes
    ) -> None:
        self.sender = sender
        self.orders = orders
        self.method = req.method
        #: The request's own target: each mirror's server may put it under its path.
        self.target = req.path
        self.out_head = out_head
        self.size = 0
        self.memory: Optional[io.BytesIO] = io.BytesIO()
        self.file: Any = None
        self.complete = False

    def _limit(self) -> int:
        limits = [o.max_body_size for o in self.orders]
        return -1 if any(m < 0 for m in limits) else max(limits, default=0)

    def feed(self, data: bytes) -> None:
        if not self.orders:
            return
        self.size += len(data)
        # A mirror whose maxBodySize the body outgrows is not mirrored at all (as Traefik).
        self.orders = [
            o for o in self.orders if o.max_body_size < 0 or self.size <= o.max_body_size
        ]
        if not self.orders:
            self._discard()
            return
        if self.memory is not None:
            self.memory.write(data)
            if self.size > SPOOL_IN_MEMORY:
                self.file = tempfile.TemporaryFile(prefix="tsproxy-mirror-")
                self.file.write(self.memory.getvalue())
                self.memory = None
        else:
            self.file.write(data)

    def body_done(self) -> None:
        self.complete = True

    def abandon(self) -> None:
        self._discard()
        self.orders = []

    def _discard(self) -> None:
        self.memory = None
        if self.file is not None:
            self.file.close()
            self.file = None

    def send(self) -> None:
        """Send the copies one after another, as Traefik does; never raises."""
        if not self.complete or not self.orders:
            self.abandon()
            return
        sender = self.sender
        if sender.in_flight >= sender.max_in_flight:
            sender.dropped += 1
            log.warn("mirror copy dropped: {n} copies already in flight", n=sender.in_flight)
            self.abandon()
            return
        sender.in_flight += 1
        d: Deferred[Any] = succeed(None)
        for order in self.orders:
            d.addCallback(self._send_after, order)
        d.addBoth(self._finished)

    def _finished(self, result: Any) -> None:
        if isinstance(result, Failure):
            log.failure("mirror copy failed unexpectedly", result)
        sender = self.sender
        sender.in_flight -= 1
        self._discard()
        if sender.in_flight == 0:
            waiters, sender._idle_waiters = sender._idle_waiters, []
            for d in waiters:
                d.callback(None)

    def _headers(self, pass_host: bool) -> TwistedHeaders:
        headers = TwistedHeaders()
        for line in self.out_head.split(b"\r\n")[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            lname = name.lower()
            if lname in _NOT_COPIED or (lname == b"host" and not pass_host):
                continue
            headers.addRawHeader(name, value.strip())
        return headers

    def _body(self) -> Any:
        if self.size == 0:
            return None
        if self.memory is not None:
            return self.memory.getvalue()
        self.file.seek(0)
        return self.file

    def _send_after(self, _: Any, order: MirrorOrder) -> Deferred[Any]:
        return self._send_one(order)

    def _send_one(self, order: MirrorOrder) -> Deferred[Any]:
        sender = self.sender
        pick = resolve(order.node, None)
        if pick.server is None:
            log.warn("mirror {name}: no available server", name=order.service_name)
            # What the mirror's balancer would have answered, had it been asked over HTTP.
            self._observed(order, 503)
            return succeed(None)
        server = pick.server
        url = server.origin.encode("ascii") + server.forward_target(self.target)
        try:
            d = HTTPClient(sender.agent_for(pick.server)).request(
                self.method.decode("ascii"),
                url,
                headers=self._headers(pick.pass_host_header),
                data=self._body(),
                allow_redirects=False,
                unbuffered=True,
                timeout=sender.timeout,
                reactor=sender.reactor,
            )
        except Exception as e:  # a URL treq refuses must not reach the main path
            log.warn(
                "mirror {name}: cannot send to {url!r}: {e}", name=order.service_name, url=url, e=e
            )
            self._observed(order, 0)
            return succeed(None)

        answered: List[int] = []

        def drain(response: Any) -> Any:
            answered.append(response.code)
            self._observed(order, response.code)
            return treq.collect(response, lambda _chunk: None)

        def done(_: Any) -> None:
            sender.sent += 1

        def failed(failure: Any) -> None:
            if not answered:
                self._observed(order, 0)
            sender.failed += 1
            log.warn(
                "mirror {name} ({url}) failed: {error}",
                name=order.service_name,
                url=url.decode("latin-1"),
                error=failure.getErrorMessage() or failure.type.__name__,
            )

        d.addCallback(drain)
        d.addCallbacks(done, failed)
        return d

    def _observed(self, order: MirrorOrder, status: int) -> None:
        observer = self.sender.observer
        if observer is not None:
            try:
                observer(order.service_name, order.mirror_of, status)
            except Exception:
                log.failure("observing a mirror copy failed")
