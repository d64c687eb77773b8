"""The file provider's ``tcp`` and ``udp`` sections as the same TCP and UDP routers and
layer-4 services the CRD routes become, every name ending in ``@file``; a TCP router's
``middlewares`` (``x``: this provider's ``tcp.middlewares``, or ``x@provider``) become its steps.

Pure. A TCP or UDP router reaches services of the file provider only (layer-4 services of
other providers are not resolvable yet: an error). UDP routers go through the same
one-router-per-entrypoint choice as the CRD ones.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from tsproxy.config.errors import ConfigError
from tsproxy.config.fileformat_values import FileConfiguration, FileL4Service, FileRouter
from tsproxy.config.resources import MiddlewareRef
from tsproxy.config.static import StaticConfig
from tsproxy.config.transports import TCPTransportSettings
from tsproxy.providers import FILE, reference
from tsproxy.rules import RuleError, TCPRule, compile_tcp_rule
from tsproxy.runtime.endpoints import BuildError
from tsproxy.runtime.failures import TCP, UDP, FailedRouter, RouterWarning
from tsproxy.runtime.l4 import (
    L4Definition,
    L4LoadBalancerDef,
    L4Node,
    L4WeightedChild,
    L4WeightedDef,
    instantiate,
)
from tsproxy.runtime.tcp import TCPRouter, TCPServer, named_default, tcp_servers
from tsproxy.runtime.udp import UDPCandidate, UDPServer

__all__ = ["FileL4Build", "build_file_tcp", "file_udp_candidates"]


class FileL4Build:
    """What the tcp section built: routers, nodes, failed routers, errors, warnings."""

    def __init__(self) -> None:
        self.routers: List[TCPRouter] = []
        self.nodes: Dict[L4Definition, L4Node] = {}
        self.failed: List[FailedRouter] = []
        self.errors: List[ConfigError] = []
        self.router_warnings: List[RouterWarning] = []


def _definition(
    services: Mapping[str, FileL4Service],
    written: str,
    tcp: bool,
    nested: bool = False,
    own: str = FILE,
    transport: TCPTransportSettings = TCPTransportSettings(),
    named: Mapping[str, TCPTransportSettings] = {},
) -> L4Definition:
    """The definition of service ``written``; TCP servers are dialled as the transport its
    load balancer names (of ``named``, the provider's tcp.serversTransports) or else as
    ``transport`` (the static configuration's default TCP transport) says."""
    name, provider = reference(written, own)
    if provider != own:
        raise BuildError(
            f"service {name}@{provider}: TCP and UDP services of other providers"
            f" are not reachable from the {own} provider yet"
        )
    service = services.get(name)
    if service is None:
        raise BuildError(f"service {name}@{own} does not exist")
    qualified = f"{name}@{own}"
    if service.weighted is None:
        servers: Tuple[object, ...]
        if tcp:
            delay = service.termination_delay / 1000.0
            chosen = _transport(service.servers_transport, own, transport, named)
            if isinstance(chosen, str):
                where = f"tcp.services.{name}.loadBalancer.serversTransport"
                raise BuildError(f"service {qualified}: {where}: {chosen}")
            found: List[TCPServer] = []
            for a in service.servers:
                try:
                    found += tcp_servers(
                        [(a.host, a.port)],
                        service.proxy_protocol,
                        delay,
                        a.tls,
                        chosen,
                        _qualified(service.servers_transport, own),
                    )
                except BuildError as exc:
                    raise BuildError(f"service {qualified}: {a.path}.{exc}") from None
            servers = tuple(found)
        else:
            servers = tuple(UDPServer(a.host, a.port) for a in service.servers)
        return L4LoadBalancerDef(qualified, servers)  # type: ignore[arg-type]
    if nested:
        raise BuildError(
            f"service {qualified}: a weighted service inside a weighted one is not"
            " supported for TCP and UDP"
        )
    children = []
    for child in service.weighted:
        definition = _definition(services, child.name, tcp, True, own, transport, named)
        assert isinstance(definition, L4LoadBalancerDef)
        children.append(L4WeightedChild(child.name, child.amount, definition))
    return L4WeightedDef(qualified, tuple(children))


def _qualified(written: str, own: str) -> str:
    """How errors name the transport ``written`` ("": the default one, unnamed)."""
    if written in ("", "default@internal"):
        return ""
    name, provider = reference(written, own)
    return f"{name}@{provider}"


def _transport(
    written: str,
    own: str,
    default: TCPTransportSettings,
    named: Mapping[str, TCPTransportSettings],
) -> Union[TCPTransportSettings, str]:
    """The TCP transport a load balancer names (none or ``default@internal``: the default
    one), or why it cannot be used: missing, or of another provider."""
    if written in ("", "default@internal"):
        return named_default(default) if written else default
    name, provider = reference(written, own)
    if provider != own:
        return (
            f"serversTransport {name}@{provider}: TCP servers transports of other providers"
            f" are not reachable from the {own} provider yet"
        )
    found = named.get(name)
    return f"serversTransport {name}@{own} does not exist" if found is None else found


def _entrypoints(
    static: StaticConfig, spec: FileRouter, protocol: str
) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    wrong = (
        "entrypoint {name} is a UDP entrypoint, TCP routes cannot use it"
        if protocol == "tcp"
        else "entrypoint {name} is not a UDP entrypoint (its address needs /udp)"
    )
    return static.select(spec.entry_points, protocol, wrong)


def build_file_tcp(
    config: FileConfiguration,
    static: StaticConfig,
    previous: Mapping[L4Definition, L4Node],
    provider: str = FILE,
    middlewares: Any = None,
) -> FileL4Build:
    """The file provider's TCP routers (or another provider's of the same format: etcd,
    redis); nodes of ``previous`` with an unchanged definition are kept. ``middlewares``:
    the build's TCP MiddlewareSet (tsproxy.runtime.middlewares), which builds the steps."""
    build = FileL4Build()
    services = {s.name: s for s in config.tcp_services}
    named = {t.name: t.settings for t in config.tcp_transports}
    for spec in config.tcp_routers:
        name = f"{spec.name}@{provider}"
        entrypoints, problems = _entrypoints(static, spec, "tcp")
        build.errors.extend(spec.location.error(problem) for problem in problems)
        built = _tcp_router(
            spec,
            name,
            entrypoints,
            problems,
            services,
            provider,
            static.tcp_servers_transport,
            named,
        )
        refs = tuple(
            MiddlewareRef(
                written if "@" in written else f"{written}@{provider}",
                "",
                spec.location.line,
                f"tcp.routers.{spec.name}.middlewares[{index}]",
            )
            for index, written in enumerate(spec.middlewares)
        )
        steps: Tuple[Tuple[str, Any], ...] = ()
        if refs and middlewares is None:
            built = "middlewares: no TCP middleware set in this build, router disabled"
        elif refs:
            middlewares.mark_used(refs, name)
            if not isinstance(built, str):
                try:
                    for ref in refs:
                        steps += middlewares.steps((ref,), name)
                except BuildError as exc:
                    built = f"{ref.path}: {exc}"
        if isinstance(built, str):
            build.errors.append(spec.location.error(built))
            service, target = reference(spec.service, provider)
            build.failed.append(
                FailedRouter(
                    TCP,
                    name,
                    spec.entry_points or entrypoints,
                    entrypoints,
                    spec.rule,
                    spec.priority,
                    f"{service}@{target}",
                    problems + (built,),
                    spec.location,
                    spec.syntax,
                    spec.tls,
                    middlewares=tuple(ref.name for ref in refs),
                )
            )
            continue
        matcher, definition = built
        build.routers.append(
            TCPRouter(
                name=name,
                entrypoints=entrypoints,
                rule=spec.rule,
                priority=spec.priority or matcher.default_priority,
                service=instantiate(definition, previous, build.nodes),
                source=spec.location,
                matcher=matcher,
                syntax=matcher.syntax,
                tls=spec.tls,
                middlewares=tuple(ref.name for ref in refs),
                chain=steps,
            )
        )
        if problems:
            build.router_warnings.append(
                RouterWarning(TCP, name, spec.entry_points or entrypoints, problems)
            )
    return build


def _tcp_router(
    spec: FileRouter,
    name: str,
    entrypoints: Tuple[str, ...],
    problems: Tuple[str, ...],
    services: Mapping[str, FileL4Service],
    provider: str = FILE,
    transport: TCPTransportSettings = TCPTransportSettings(),
    named: Mapping[str, TCPTransportSettings] = {},
) -> Union[str, Tuple[TCPRule, L4Definition]]:
    """(matcher, definition), or why the router is disabled."""
    if not entrypoints:
        return "no usable entrypoint, router disabled"
    try:
        matcher = compile_tcp_rule(spec.rule, syntax=spec.syntax or "v3")
    except RuleError as exc:
        return f"rule: {exc}"
    if matcher.uses_sni and spec.tls is None:
        return (
            "rule: HostSNI or HostSNIRegexp other than HostSNI(`*`) needs tls: without it"
            " there is no SNI to match, router disabled"
        )
    try:
        return matcher, _definition(services, spec.service, True, False, provider, transport, named)
    except BuildError as exc:
        return str(exc)


def file_udp_candidates(
    config: FileConfiguration, static: StaticConfig, provider: str = FILE
) -> Tuple[List[UDPCandidate], List[FailedRouter], List[ConfigError]]:
    """The file provider's UDP routers, as candidates for the one-router-per-entrypoint
    choice the CRD ones go through."""
    services = {s.name: s for s in config.udp_services}
    candidates: List[UDPCandidate] = []
    failed: List[FailedRouter] = []
    errors: List[ConfigError] = []
    for spec in config.udp_routers:
        name = f"{spec.name}@{provider}"
        entrypoints, problems = _entrypoints(static, spec, "udp")
        errors.extend(spec.location.error(problem) for problem in problems)
        listed = spec.entry_points or entrypoints
        message: Optional[str] = None
        if not entrypoints:
            message = "no usable entrypoint, router disabled"
        else:
            try:
                definition = _definition(services, spec.service, tcp=False, own=provider)
            except BuildError as exc:
                message = str(exc)
        if message is not None:
            errors.append(spec.location.error(message))
            service, target = reference(spec.service, provider)
            failed.append(
                FailedRouter(
                    UDP,
                    name,
                    listed,
                    entrypoints,
                    "",
                    0,
                    f"{service}@{target}",
                    problems + (message,),
                    spec.location,
                )
            )
            continue
        candidates.append(
            UDPCandidate(
                name,
                entrypoints,
                definition,
                spec.location,
                f"udp.routers.{spec.name}",
                listed,
                problems,
            )
        )
    return candidates, failed, errors
