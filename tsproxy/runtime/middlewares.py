"""Middleware references to built steps: ``{name, namespace}`` and ``name@kubernetescrd``
references resolved, chains expanded (a cycle is an error), steps built through the kind
registry and kept across reloads when nothing they were built from changed.

Fail closed: any reference that cannot be honoured raises BuildError, and the caller
disables the router that made it. Pure: no reactor import (the reactor is only handed on).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import attrs

from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.resources import Meta, Middleware, MiddlewareRef, MiddlewareTCP, Secret
from tsproxy.middlewares import registry
from tsproxy.middlewares.base import BuildError as StepBuildError
from tsproxy.runtime.endpoints import BuildError

__all__ = [
    "MiddlewareInfo",
    "MiddlewareSet",
    "PROVIDER",
    "Step",
    "middleware_id",
]

PROVIDER = "kubernetescrd"
FILE = "file"
_SEPARATORS = re.compile(r"[\W_]+")
#: One built step: its qualified name and the runtime object.
Step = Tuple[str, Any]
_Reuse = Dict[Any, Tuple[Any, Tuple[Tuple[str, Any], ...]]]


def qualified_key(key: str) -> str:
    """The name Traefik shows for a key of the set: CRD ids get ``@kubernetescrd``, file
    middlewares are kept as ``name@file``."""
    return key if "@" in key else f"{key}@{PROVIDER}"


def middleware_id(namespace: str, name: str) -> str:
    """Traefik's id of a CRD middleware: ``<namespace>-<name>`` normalized."""
    return "-".join(part for part in _SEPARATORS.split(f"{namespace}-{name}") if part)


def api_name(ref: Any) -> str:
    """A middleware reference as Traefik's API lists it: ``name@provider`` (a CRD name made
    from its namespace)."""
    if "@" in ref.name:
        return str(ref.name)
    return f"{middleware_id(ref.namespace, ref.name)}@{PROVIDER}"


@attrs.frozen
class MiddlewareInfo:
    """What the API shows of one middleware: qualified name, kind, its section as written,
    its errors (disabled when any) and the routers using it (qualified, sorted)."""

    name: str
    kind: str
    config: Any
    errors: Tuple[str, ...]
    used_by: Tuple[str, ...]
    tcp: bool = False


class _Cycle(Exception):
    def __init__(self, cycle: Tuple[str, ...]) -> None:
        super().__init__(cycle)
        self.cycle = cycle
        # The reference (line, path) the cycle went through in the middleware unwinding.
        self.where: Optional[Tuple[int, str]] = None

    @property
    def message(self) -> str:
        return "reference cycle: " + " -> ".join(qualified_key(key) for key in self.cycle)


@attrs.define(eq=False)
class _Context:
    """The BuildContext of one middleware: records the Secrets it read, so a reload can
    tell whether a kept step was built from the same data."""

    namespace: str
    reactor: Any
    secrets: Mapping[Tuple[str, str], Secret]
    read: List[Tuple[str, Any]] = attrs.Factory(list)
    #: The HTTP engine honours Request.wrap_response, on_end and retry (http/server.py).
    traffic_hooks: bool = True
    #: The servers of a Service reference (errors' page service), None when it has none.
    servers_of: Any = None

    def service_client(self, ref: Any) -> Any:
        """A fetch for the errors middleware's page service (tsproxy.http.pageclient)."""
        if self.servers_of is None:
            return None
        servers = self.servers_of(ref)
        if not servers:
            return None
        from tsproxy.http.pageclient import page_fetch

        return page_fetch(self.reactor, servers)

    #: The HTTP engine fills Request.read_body (forwardAuth forwardBody).
    request_bodies: bool = True

    def lookup(self, name: str) -> Any:
        """(type, data) of Secret ``name`` in the middleware's namespace, or None."""
        secret = self.secrets.get((self.namespace, name))
        return None if secret is None else (secret.type, secret.data)

    def secret(self, name: str) -> Optional[Dict[str, bytes]]:
        found = self.lookup(name)
        self.read.append((name, found))
        return None if found is None else dict(found[1])

    def secret_type(self, name: str) -> Optional[str]:
        """The Secret's ``type`` (basicAuth reads kubernetes.io/basic-auth ones by it)."""
        found = self.lookup(name)
        self.read.append((name, found))
        return None if found is None else str(found[0])


class MiddlewareSet:
    """The middlewares of one build (HTTP or TCP): by id, built on first use.

    ``previous`` holds the steps of the previous table (``reuse``); a step is kept when its
    kind, name and spec are equal and every Secret it read holds the same data.
    """

    def __init__(
        self,
        resources: Sequence[Any],
        tcp: bool,
        reactor: Any = None,
        previous: Optional[_Reuse] = None,
        allow_cross_namespace: bool = False,
        file_middlewares: Sequence[Any] = (),
        provider_middlewares: Sequence[Tuple[str, Sequence[Any]]] = (),
    ) -> None:
        self.tcp = tcp
        self.allow_cross_namespace = allow_cross_namespace
        self.reactor = reactor
        self.previous: _Reuse = previous or {}
        self.reuse: _Reuse = {}
        wanted = MiddlewareTCP if tcp else Middleware
        self.by_id: Dict[str, Middleware] = {}
        self.secrets: Dict[Tuple[str, str], Secret] = {}
        for resource in resources:
            if isinstance(resource, Secret):
                self.secrets[(resource.meta.namespace, resource.meta.name)] = resource
            elif type(resource) is wanted:
                key = middleware_id(resource.meta.namespace, resource.meta.name)
                self.by_id.setdefault(key, resource)
        #: The providers of Traefik's dynamic format whose middlewares are keyed
        #: ``name@provider``: file, and the key-value stores and Ingress (etcd, redis,
        #: kubernetes) given in ``provider_middlewares``.
        self.format_providers = {FILE} | {provider for provider, _ in provider_middlewares}
        for provider, found_list in ((FILE, file_middlewares), *provider_middlewares):
            for found in found_list:
                # The provider's http.middlewares (tcp.middlewares for a TCP set), as
                # resources with no namespace (so no Secret): keyed ``name@provider``.
                location = found.location
                meta = Meta("Middleware", "", found.name, location)
                resource = Middleware(meta, found.kind, found.spec, None, "", location.line)
                self.by_id.setdefault(f"{found.name}@{provider}", resource)
        self.kinds = registry.tcp_kinds() if tcp else registry.http_kinds()
        self.errors: List[ConfigError] = []
        # id -> the expanded steps, or the message of the error that sank it.
        self._done: Dict[str, Any] = {}
        self._failed: Dict[str, str] = {}
        self._used_by: Dict[str, List[str]] = {}
        #: The servers of a Service reference, set by the table builder (errors pages).
        self.servers_of: Any = None

    # -- references ----------------------------------------------------------------------

    def resolve(self, name: str, namespace: str) -> str:
        """The id a reference names; BuildError for a provider other than kubernetescrd or
        a middleware that does not exist."""
        if "@" in name:
            base, _, provider = name.rpartition("@")
            if provider in self.format_providers:
                key = name
            elif provider != PROVIDER:
                others = " and ".join(sorted(self.format_providers))
                known = f"{PROVIDER} and {others}"
                raise BuildError(
                    f'middleware "{name}": only {known} middlewares are known'
                    f" (provider {provider} is not supported)"
                )
            else:
                key = base
        else:
            key = middleware_id(namespace, name)
        if key not in self.by_id:
            raise BuildError(f'middleware "{qualified_key(key)}" does not exist')
        return key

    def resolve_ref(self, ref: MiddlewareRef) -> str:
        """The id ``ref`` names; also a BuildError for a reference out of its resource's
        namespace unless allowCrossNamespace (Traefik's makeMiddlewareKeys: a
        ``name@kubernetescrd`` could hide another namespace, so it is refused too)."""
        parent = ref.parent
        if parent is not None and not self.allow_cross_namespace:
            if ref.name.endswith(f"@{PROVIDER}"):
                raise BuildError(
                    f'invalid reference to middleware "{ref.name}": with cross-namespace'
                    " references disallowed (providers.kubernetesCRD.allowCrossNamespace),"
                    " the namespace field needs to be explicitly specified"
                )
            if "@" not in ref.name and ref.namespace != parent:
                raise BuildError(
                    f"middleware {ref.namespace}/{ref.name} is not in the namespace of its"
                    f" referrer ({parent}): cross-namespace references need"
                    " providers.kubernetesCRD.allowCrossNamespace"
                )
        return self.resolve(ref.name, ref.namespace)

    def steps(self, refs: Sequence[MiddlewareRef], router: Optional[str]) -> Tuple[Step, ...]:
        """The steps of ``refs`` in order, chains expanded; the router (if any: a service's
        middlewares count for none, as in Traefik) is counted as a user of each, also when a
        later one fails. BuildError says what is wrong."""
        steps: List[Step] = []
        keys = []
        for ref in refs:
            key = self.resolve_ref(ref)
            keys.append(key)
            if router is not None:
                self._used_by.setdefault(key, []).append(router)
        for key in keys:
            steps.extend(self.expand(key))
        return tuple(steps)

    def mark_used(self, refs: Sequence[MiddlewareRef], router: str) -> None:
        """Count ``router`` as a user of the middlewares of ``refs`` that exist (a router
        disabled for another reason still lists them)."""
        for ref in refs:
            try:
                key = self.resolve(ref.name, ref.namespace)
            except BuildError:
                continue
            users = self._used_by.setdefault(key, [])
            if router not in users:
                users.append(router)

    # -- expansion -----------------------------------------------------------------------

    def expand(self, key: str, trail: Tuple[str, ...] = ()) -> Tuple[Step, ...]:
        """The steps of middleware ``key`` (a chain's, flattened); BuildError if it or
        anything it names is broken."""
        if key in trail:
            raise _Cycle(trail[trail.index(key) :] + (key,))
        done = self._done.get(key)
        if done is not None:
            if isinstance(done, str):
                raise BuildError(f'middleware "{qualified_key(key)}" has errors (see {done})')
            return done  # type: ignore[no-any-return]
        middleware = self.by_id[key]
        location = middleware.meta.location.at(middleware.line or middleware.meta.location.line)
        try:
            steps = self._expand(key, middleware, trail + (key,))
        except _Cycle as cycle:
            message = cycle.message
            if cycle.where is not None:
                location = location.at(cycle.where[0])
                message = f"{cycle.where[1]}: {message}"
            self._sink(key, location, message)
            if cycle.cycle[0] != key:
                raise
        except _LocatedError as failed:
            self._sink(key, middleware.meta.location.at(failed.line), failed.message)
            location = middleware.meta.location.at(failed.line)
        else:
            self._done[key] = steps
            return steps
        raise BuildError(f'middleware "{qualified_key(key)}" has errors (see {location})')

    def _sink(self, key: str, location: Location, message: str) -> None:
        self.errors.append(location.error(message))
        self._done[key] = str(location)
        self._failed[key] = message

    def _expand(self, key: str, middleware: Middleware, trail: Tuple[str, ...]) -> Tuple[Step, ...]:
        if middleware.error:
            raise _LocatedError(middleware.line, middleware.error)
        if middleware.kind == "chain" and not self.tcp:
            steps: List[Step] = []
            refs: Tuple[MiddlewareRef, ...] = middleware.spec  # type: ignore[assignment]
            for ref in refs:
                try:
                    inner = self.resolve_ref(ref)
                    steps.extend(self.expand(inner, trail))
                except BuildError as exc:
                    raise _LocatedError(ref.line, f"{ref.path}: {exc}") from None
                except _Cycle as cycle:
                    if cycle.cycle[0] == key:
                        raise _LocatedError(ref.line, f"{ref.path}: {cycle.message}") from None
                    cycle.where = (ref.line, ref.path)
                    raise
            return tuple(steps)
        return ((qualified_key(key), self._build(key, middleware)),)

    def _build(self, key: str, middleware: Middleware) -> Any:
        kind = self.kinds.get(middleware.kind)
        if kind is None:  # the registry changed since the YAML was read
            message = f"the {middleware.kind} middleware is not implemented by tsproxy"
            raise _LocatedError(middleware.line, message)
        name = qualified_key(key)
        try:
            reuse_key: Any = (middleware.kind, name, middleware.spec)
            hash(reuse_key)
        except TypeError:
            reuse_key = None
        context = _Context(middleware.meta.namespace, self.reactor, self.secrets)
        context.servers_of = self.servers_of
        if reuse_key is not None:
            kept = self.previous.get(reuse_key)
            if kept is not None and all(context.lookup(n) == data for n, data in kept[1]):
                self.reuse[reuse_key] = kept
                return kept[0]
        try:
            step = kind.build(middleware.spec, name, context)
        except (StepBuildError, BuildError) as exc:
            where = f"spec.{middleware.kind}"
            if "@" in key:
                where = f"http.middlewares.{middleware.meta.name}.{middleware.kind}"
            raise _LocatedError(middleware.line, f"{where}: {exc}") from None
        if reuse_key is not None:
            self.reuse[reuse_key] = (step, tuple(context.read))
        return step

    # -- for the API ---------------------------------------------------------------------

    def build_all(self) -> None:
        """Build every middleware, used or not, so each has a status and errors are found."""
        for key in self.by_id:
            try:
                self.expand(key)
            except BuildError:
                pass  # recorded at the middleware itself

    def infos(self, qualify: Any) -> Tuple[MiddlewareInfo, ...]:
        """Every middleware's API view; ``qualify`` turns a router name into its API name."""
        infos = []
        for key, middleware in self.by_id.items():
            failed = self._failed.get(key)
            users = sorted({qualify(router) for router in self._used_by.get(key, ())})
            infos.append(
                MiddlewareInfo(
                    name=qualified_key(key),
                    kind=middleware.kind,
                    config=middleware.config,
                    errors=(failed,) if failed else (),
                    used_by=tuple(users),
                    tcp=self.tcp,
                )
            )
        return tuple(infos)


class _LocatedError(Exception):
    """A middleware's problem at a line of its own resource."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(line, message)
        self.line = line
        self.message = message
