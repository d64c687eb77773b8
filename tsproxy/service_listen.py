"""ProxyService's listeners: opening each entrypoint (TCP or UDP, alone or sharing the port
with the other workers), stopping them, and the one startup line saying what runs. A mixin of
ProxyService (tsproxy/service.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional

from twisted.internet import defer
from twisted.internet.error import CannotListenError

from tsproxy import __version__
from tsproxy.api.internal import internal_endpoints, routed_internal_endpoints
from tsproxy.config.static import EntryPoint
from tsproxy.http.backend import BackendPool
from tsproxy.http.entrypoint import HTTPEntryPointFactory
from tsproxy.http.mirror import MirrorSender
from tsproxy.logs import format_address, get_logger
from tsproxy.observe import Observer
from tsproxy.observe.metrics import Metrics
from tsproxy.tcp.entrypoint import EntryPointFactory
from tsproxy.tcp.listen import listen_tcp
from tsproxy.tcp.proxyaccept import with_proxy_headers
from tsproxy.udp.listener import UDPEntryPoint
from tsproxy.workers.sockets import listen_tcp_shared

log = get_logger(__name__)


class StartupError(Exception):
    """The proxy cannot start (a port cannot be opened); the message says why."""


def _cannot_listen(ep: EntryPoint, error: CannotListenError) -> str:
    """``tsproxy.yaml:4: entrypoint dns: cannot listen on *:53/udp: <why>``."""
    where = "%s:%d%s" % (ep.host or "*", ep.port, "/udp" if ep.protocol == "udp" else "")
    return "%s: entrypoint %s: cannot listen on %s: %s" % (
        ep.location,
        ep.name,
        where,
        error.socketError,
    )


def _plural(count: int, word: str) -> str:
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def _by_protocol(http: int, tcp: int, udp: int) -> str:
    parts = ["%d %s" % (n, name) for n, name in ((http, "HTTP"), (tcp, "TCP"), (udp, "UDP")) if n]
    return " (%s)" % ", ".join(parts) if parts else ""


def table_summary(table: Any) -> str:
    """``6 routers (4 HTTP, 1 TCP, 1 UDP), 11 services (5 HTTP, 3 TCP, 3 UDP)``."""
    routers = (len(table.routers), len(table.tcp_routers), len(table.udp_routers))
    udp_services = {node.name for node in table.udp_nodes.values()}
    services = (len(table.services), len(table.tcp_services), len(udp_services))
    return "%s%s, %s%s" % (
        _plural(sum(routers), "router"),
        _by_protocol(*routers),
        _plural(sum(services), "service"),
        _by_protocol(*services),
    )


def _url_host(host: str) -> str:
    if not host or host in ("0.0.0.0", "::"):
        return "localhost"
    return "[%s]" % (host,) if ":" in host else host


class ServiceListeners:
    """The entrypoint listeners of a ProxyService."""

    #: Listen with SO_REUSEPORT, sharing each port with the other workers (tsproxy.workers).
    reuse_port = False

    # Set by ProxyService (tsproxy/service.py).
    reactor: Any
    clock: Any
    table: Any
    ports: Dict[str, Any]
    factories: List[HTTPEntryPointFactory]
    udp: Dict[str, UDPEntryPoint]
    udp_budget: Optional[int]
    pool: Optional[BackendPool]
    mirrors: Optional[MirrorSender]
    hostname: bytes
    metrics: Optional[Metrics]
    observer: Optional[Observer]

    if TYPE_CHECKING:

        def current_table(self) -> Any: ...

    def _log_summary(self) -> None:
        """One line saying what runs: the table's routers and services, the entrypoints, and
        where the dashboard (or the API) is."""
        static = self.table.static
        tcp = [ep.name for ep in static.entrypoints if ep.protocol != "udp"]
        udp = [ep.name for ep in static.entrypoints if ep.protocol == "udp"]
        entrypoints = "%s%s" % (
            _plural(len(tcp) + len(udp), "entrypoint"),
            _by_protocol(0, len(tcp), len(udp)),
        )
        where = ""
        api = static.api
        served = static.internal_entrypoints()
        for name, things in served.items():
            if "api" in things and name in self.ports:
                ep = next(e for e in static.entrypoints if e.name == name)
                base = "http://%s:%d" % (_url_host(ep.host), self.port_of(name))
                if api is not None and api.dashboard:
                    where = "; dashboard at %s/dashboard/" % (base,)
                else:
                    where = "; API at %s/api/" % (base,)
        log.info(
            "tsproxy {version} started: {summary}, {entrypoints}{where}",
            version=__version__,
            summary=table_summary(self.table),
            entrypoints=entrypoints,
            where=where,
        )

    def _open_all(self, entrypoints: Iterable[EntryPoint]) -> None:
        """Listen on every entrypoint; if one cannot, close the ones opened here and raise."""
        opened: List[str] = []
        try:
            for ep in entrypoints:
                if self._open(ep):
                    opened.append(ep.name)
        except StartupError:
            for name in opened:
                if name in self.udp:
                    self.udp.pop(name).stop(0.0)
                else:
                    self.ports.pop(name).stopListening()
            self.factories = [f for f in self.factories if f.name not in opened]
            raise

    def _open(self, ep: EntryPoint) -> bool:
        """Listen on one entrypoint; False when its kind is not served (yet)."""
        if ep.protocol == "udp":
            return self._open_udp(ep)
        assert self.pool is not None, "entrypoints open after the pool"
        factory = EntryPointFactory(
            ep,
            self.current_table,
            self.pool,
            self.clock,
            self.hostname,
            mirrors=self.mirrors,
            observer=self.observer,
            reactor=self.reactor,
        )
        factory.internal = internal_endpoints(self, ep.name)
        factory.routed_internal = routed_internal_endpoints(self)
        try:
            port = self._listen_tcp(ep, factory)
        except CannotListenError as e:
            raise StartupError(_cannot_listen(ep, e)) from None
        self.ports[ep.name] = port
        self.factories.append(factory)
        log.info(
            "entrypoint {name} listening on {addr}",
            name=ep.name,
            addr=format_address(port.getHost()),
        )
        return True

    def _listen_tcp(self, ep: EntryPoint, factory: Any) -> Any:
        factory = with_proxy_headers(factory)  # proxyProtocol: the header is read first
        if self.reuse_port:
            return listen_tcp_shared(self.reactor, ep.host, ep.port, factory)
        return listen_tcp(
            self.reactor, self.clock, ep.port, factory, backlog=1024, interface=ep.host
        )

    def _open_udp(self, ep: EntryPoint) -> bool:
        """Listen on one UDP entrypoint (sessions keep the server they picked on a reload)."""
        max_sessions = ep.udp_max_sessions
        if self.udp_budget is not None and self.udp_budget < max_sessions:
            log.warn(
                "entrypoint {name}: udp.maxSessions {wanted} lowered to {budget}: the process"
                " may not open more files (raise its open-files limit, ulimit -n)",
                name=ep.name,
                wanted=max_sessions,
                budget=self.udp_budget,
            )
            max_sessions = self.udp_budget
        listener = UDPEntryPoint(
            ep,
            self.current_table,
            self.reactor,
            self.clock,
            metrics=self.metrics,
            max_sessions=max_sessions,
        )
        try:
            listener.listen(self.reuse_port)
        except CannotListenError as e:
            raise StartupError(_cannot_listen(ep, e)) from None
        self.udp[ep.name] = listener
        log.info(
            "entrypoint {name} listening on {addr}",
            name=ep.name,
            addr=format_address(listener.port.getHost()),
        )
        return True

    def _stop_udp(self, grace: Optional[float] = None) -> defer.Deferred[Any]:
        """UDP entrypoints take no new session; live ones go on until idle, within their
        entrypoint's grace time (``grace`` overrides it) on the reactor's real time."""
        return defer.gatherResults(
            [
                u.stop(u.entrypoint.grace_timeout if grace is None else grace, self.reactor)
                for u in self.udp.values()
            ]
        )

    def port_of(self, name: str) -> int:
        """The port an entrypoint actually listens on (for entrypoints configured as :0)."""
        if name in self.udp:
            return int(self.udp[name].port.getHost().port)
        return int(self.ports[name].getHost().port)

    def _stop_ports(self) -> defer.Deferred[Any]:
        ports, self.ports = self.ports, {}
        return defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports.values()])
