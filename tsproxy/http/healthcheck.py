"""The health checker: HTTP checks of the servers of load balancers that ask for them, and the
passive check fed by the engine's outcomes. It sets each server UP or DOWN on its balancer
(tsproxy/balance/health.py holds the state machine) and tells the metrics and the log.

Checks run on the reactor, a bounded number at a time, on the injected clock's schedule: a
check never holds a request up. A balancer kept by a reload keeps its checker (no new burst
of checks, no status reset); the checkers of balancers a reload removed stop.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Set
from urllib.parse import urlsplit

from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    RedirectAgent,
    _HTTP11ClientFactory,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from tsproxy.balance.health import (
    PassiveWindow,
    TargetError,
    check_request,
    healthy_status,
    transition_text,
)
from tsproxy.config.resources import TransportSettings
from tsproxy.http.backend_tls import client_options
from tsproxy.http.grpccheck import grpc_check, h2c_check
from tsproxy.logs import get_logger
from tsproxy.runtime.services import LoadBalancer, Server

__all__ = ["HealthMonitor"]

log = get_logger(__name__)

#: At most this many checks are in flight at once, whatever the number of servers.
CONCURRENCY = 32
#: A check reads at most this much of the answer's body before it lets the rest go.
_BODY_LIMIT = 64 * 1024

Change = Callable[[str, str, bool], None]


class _Discard(Protocol):
    """Reads a check's answer body (up to a limit) and fires when it is over."""

    def __init__(self) -> None:
        self.done: defer.Deferred[None] = defer.Deferred(self._cancel)
        self.seen = 0

    def dataReceived(self, data: bytes) -> None:
        self.seen += len(data)
        if self.seen > _BODY_LIMIT and self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if not self.done.called:
            self.done.callback(None)

    def _cancel(self, done: defer.Deferred[None]) -> None:
        """The check timed out (or stopped) while the body was coming: close the connection,
        or a body that never ends would keep it open, one more each interval."""
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]


class _QuietFactory(_HTTP11ClientFactory):
    noisy = False  # no "Starting factory" / "Stopping factory" lines for every check


@implementer(IPolicyForHTTPS)
class _TransportPolicy:
    """TLS for https checks as the load balancer's ServersTransport says (serverName,
    insecureSkipVerify), as Traefik checks servers through their transport."""

    def __init__(self, transport: TransportSettings) -> None:
        self.transport = transport

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return client_options(hostname.decode("idna"), self.transport, (b"http/1.1",))


class _QuietPool(HTTPConnectionPool):
    _factory = _QuietFactory


class _RedirectAgent(RedirectAgent):
    """RedirectAgent whose redirect to an absolute Location sends that URL's Host (as Go's
    client does); a relative one keeps the check's Host (``hostname``)."""

    def _handleRedirect(  # type: ignore[no-untyped-def]
        self, response, method, uri, headers, redirectCount
    ):
        locations = response.headers.getRawHeaders(b"location", [])
        if headers is not None and locations and urlsplit(locations[0]).scheme:
            headers = headers.copy()
            headers.removeHeader(b"host")
        return super()._handleRedirect(response, method, uri, headers, redirectCount)


class _Checker:
    """The health of one load balancer: its active check loops and its passive window."""

    def __init__(self, monitor: HealthMonitor, node: LoadBalancer) -> None:
        self.monitor = monitor
        self.node = node
        self.spec = node.definition.health_check
        passive = node.definition.passive
        self.window = PassiveWindow(passive) if passive is not None else None
        self.calls: Dict[str, Any] = {}
        self.in_flight: Dict[str, defer.Deferred[Any]] = {}
        self.recoveries: Dict[str, Any] = {}
        self.stopped = False
        self.agent: Any = None
        if self.spec is not None:
            pool = _QuietPool(monitor.reactor, persistent=False)
            servers = node.definition.servers
            policy = _TransportPolicy(servers[0].transport if servers else TransportSettings())
            agent: Any = Agent(
                monitor.reactor,
                contextFactory=policy,
                pool=pool,
                connectTimeout=self.spec.timeout,
            )
            if self.spec.follow_redirects:
                agent = _RedirectAgent(agent)
            self.agent = agent

    @property
    def name(self) -> str:
        return self.node.definition.name

    def start(self) -> None:
        """Schedule the loops (the first checks come one interval from now, as in Traefik v3)
        and take the engine's outcomes when there is a passive check."""
        if self.spec is not None:
            self._schedule("up", self.spec.interval)
            self._schedule("down", self.spec.unhealthy_interval)
        if self.window is not None:
            self.node.report = self.outcome

    def stop(self) -> None:
        self.stopped = True
        if self.node.report == self.outcome:
            self.node.report = None
        for call in list(self.calls.values()) + list(self.recoveries.values()):
            if call.active():
                call.cancel()
        self.calls.clear()
        self.recoveries.clear()
        for d in list(self.in_flight.values()):
            d.cancel()

    def _schedule(self, loop: str, delay: float) -> None:
        self.calls[loop] = self.monitor.clock.callLater(delay, self._tick, loop)

    def _tick(self, loop: str) -> None:
        """One turn of a loop: check the servers that are UP ("up") or DOWN ("down")."""
        spec = self.spec
        assert spec is not None
        states = self.node.states
        keys = states.up_keys() if loop == "up" else states.down_keys()
        for server in self.node.definition.servers:
            if server.url in keys and server.url not in self.in_flight:
                self._launch(server)
        self._schedule(loop, spec.interval if loop == "up" else spec.unhealthy_interval)

    def _launch(self, server: Server) -> None:
        d = self.monitor.semaphore.run(self._check, server)
        self.in_flight[server.url] = d

        def finished(verdict: Any) -> None:
            self.in_flight.pop(server.url, None)
            if self.stopped or not isinstance(verdict, tuple):
                return
            up, why = verdict
            self.set(server.url, up, why)

        def failed(failure: Failure) -> None:
            self.in_flight.pop(server.url, None)
            if not failure.check(defer.CancelledError):
                log.failure("health check of {url} failed", failure, url=server.url)

        d.addCallbacks(finished, failed)

    def _check(self, server: Server) -> defer.Deferred[Any]:
        """One check of ``server``: (up, why)."""
        spec = self.spec
        assert spec is not None and self.agent is not None
        if self.stopped:
            return defer.succeed(None)
        if spec.mode == "grpc":
            return self._check_grpc(server)
        try:
            request = check_request(server.url, spec)
        except TargetError as e:
            return defer.succeed((False, str(e)))
        target = urlsplit(request.url)
        if target.scheme == "h2c":
            d = self._check_h2c(server, request, target)
        else:
            d = self._check_http(request)
        d.addErrback(self._unreachable)
        d.addTimeout(spec.timeout, self.monitor.clock)
        d.addErrback(self._timed_out)
        return d

    def _check_http(self, request: Any) -> defer.Deferred[Any]:
        headers = Headers()
        for name, value in request.headers:
            headers.addRawHeader(name.encode("utf-8"), value.encode("utf-8"))
        d = self.agent.request(request.method.encode("ascii"), request.url.encode("ascii"), headers)
        d.addCallback(self._answer)
        return d  # type: ignore[no-any-return]

    def _check_h2c(self, server: Server, request: Any, target: Any) -> defer.Deferred[Any]:
        """A server of scheme h2c is checked over h2c, as Traefik does (no redirects)."""
        spec = self.spec
        assert spec is not None
        path = target.path + ("?" + target.query if target.query else "")
        (host,) = [value for name, value in request.headers if name == "Host"]
        others = tuple((name, value) for name, value in request.headers if name != "Host")
        return h2c_check(
            self.monitor.reactor,
            server.host,
            spec.port or server.port,
            spec.timeout,
            request.method,
            path,
            host,
            others,
            spec.status,
        )

    def _check_grpc(self, server: Server) -> defer.Deferred[Any]:
        """A grpc.health.v1 check, as Traefik's: on the server's host, at ``port`` if set;
        TLS when the scheme is https, h2c otherwise."""
        spec = self.spec
        assert spec is not None
        tls = (spec.scheme or server.scheme) == "https"
        options = None
        if tls:
            options = client_options(server.host, server.transport, (b"h2",))
        d = grpc_check(
            self.monitor.reactor, server.host, spec.port or server.port, tls, spec.timeout, options
        )
        d.addErrback(self._unreachable)
        d.addTimeout(spec.timeout, self.monitor.clock)
        d.addErrback(self._timed_out)
        return d

    def _answer(self, response: Any) -> defer.Deferred[Any]:
        code = int(response.code)
        reader = _Discard()
        response.deliverBody(reader)
        assert self.spec is not None
        verdict = (healthy_status(code, self.spec.status), f"health check answered {code}")
        return reader.done.addCallback(lambda _: verdict)

    def _unreachable(self, failure: Failure) -> Any:
        if failure.check(defer.CancelledError):
            return failure
        why = failure.getErrorMessage() or failure.type.__name__  # type: ignore[union-attr]
        return (False, f"health check failed: {why}")

    def _timed_out(self, failure: Failure) -> Any:
        if failure.check(defer.TimeoutError) and not self.stopped:
            return (False, "health check timed out")
        return failure

    # -- passive --------------------------------------------------------------------------

    def outcome(self, server: Server, ok: bool) -> None:
        """A proxied request to ``server`` went well (``ok``) or failed (status >= 500, or
        the server was never reached)."""
        window = self.window
        if window is None or self.stopped:
            return
        if ok:
            window.success(server.url)
            return
        if not window.failure(server.url, self.monitor.clock.seconds()):
            return
        attempts = window.spec.max_failed_attempts
        self.set(server.url, False, f"{attempts} failed requests within the failure window")
        if self.spec is None and server.url not in self.recoveries:
            # No active check to bring it back: it comes back after the window.
            self.recoveries[server.url] = self.monitor.clock.callLater(
                window.spec.failure_window, self._recover, server.url
            )

    def _recover(self, url: str) -> None:
        self.recoveries.pop(url, None)
        self.set(url, True, "failure window over")

    def set(self, url: str, up: bool, why: str) -> None:
        if self.node.states.set(url, up):
            self.monitor.changed(self.name, url, up, why)


def _carry_down(gone: List[_Checker], node: LoadBalancer) -> None:
    """A service a reload changed (say, a server added) with the same active check keeps
    its servers that were DOWN DOWN, instead of sending them traffic until the next check."""
    spec = node.definition.health_check
    if spec is None:
        return
    for checker in gone:
        old = checker.node
        if old.definition.name == node.definition.name and checker.spec == spec:
            for url in old.states.down_keys():
                node.states.set(url, False)


class HealthMonitor:
    """The checkers of the load balancers of the routing table in force.

    ``clock`` schedules the checks and their timeouts, ``reactor`` connects; ``on_change``
    (service, server url, up) hears every transition, after the log line.
    """

    def __init__(
        self,
        reactor: Any,
        clock: Any = None,
        on_change: Optional[Change] = None,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.on_change = on_change
        self.semaphore = defer.DeferredSemaphore(concurrency)
        self.checkers: Dict[LoadBalancer, _Checker] = {}

    def update(self, table: Any) -> None:
        """Follow the table now in force: balancers it kept keep their checker, new ones get
        one, the checkers of the others stop."""
        wanted: List[LoadBalancer] = []
        seen: Set[LoadBalancer] = set()
        for node in table.nodes.values():
            if not isinstance(node, LoadBalancer) or node in seen:
                continue
            seen.add(node)
            definition = node.definition
            if definition.health_check is not None or definition.passive is not None:
                wanted.append(node)
        gone = [self.checkers.pop(node) for node in list(self.checkers) if node not in seen]
        for checker in gone:
            checker.stop()
        for node in wanted:
            if node not in self.checkers:
                _carry_down(gone, node)
                checker = self.checkers[node] = _Checker(self, node)
                checker.start()

    def stop(self) -> None:
        checkers, self.checkers = self.checkers, {}
        for checker in checkers.values():
            checker.stop()

    def changed(self, service: str, url: str, up: bool, why: str) -> None:
        text = transition_text(service, url, up, why)
        if up:
            log.info("{text}", text=text)
        else:
            log.warn("{text}", text=text)
        if self.on_change is not None:
            self.on_change(service, url, up)
