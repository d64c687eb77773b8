"""Traefik's dynamic configuration format (what its file provider reads), YAML or TOML, into
frozen values: ``http`` routers, services, serversTransports and middlewares, and ``tls``
certificates, options and stores (as the Secrets and TLSOptions the TLS build reads).

Pure: parses located documents; certificate files are read through the ``read_file``
callable it is given. Names stay as written (the provider suffix is added when the
configurations are merged). Go templates are not supported: a ``{{`` in a file is an error.
The ``tcp`` and ``udp`` sections are errors until the file provider reads them.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import attrs

from tsproxy.balance.health import HealthCheckSpec, PassiveHealthSpec
from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.kinds import (
    _health_check,
    _passive_health_check,
    _propagation,
    read_sticky,
    read_tls_option,
    read_transport,
)
from tsproxy.config.resources import (
    CookieSpec,
    Meta,
    MiddlewareRef,
    ObjectRef,
    Resource,
    RouteTLS,
    Secret,
    TLSDomain,
    TransportSettings,
)
from tsproxy.config.schema import FieldError, Fields
from tsproxy.config.tomlio import load_toml
from tsproxy.config.yamlio import Document, YAMLMap, load_documents

__all__ = [
    "FileChild",
    "FileConfiguration",
    "FileLoadBalancer",
    "FileMiddleware",
    "FileMirroring",
    "FileRouter",
    "FileServer",
    "FileService",
    "FileTransport",
    "FileWeighted",
    "is_dynamic_document",
    "parse_dynamic_files",
    "parse_dynamic_tree",
]

_NOT_YET = "not supported yet, ignored"
_MAX_PRIORITY = 2**63 - 1 - 1000
_SECTIONS = ("http", "tcp", "udp", "tls")


@attrs.frozen
class FileServer:
    """``servers[i].url`` of a load balancer; ``line``/``path`` locate it."""

    url: str
    line: int
    path: str
    weight: Optional[int] = None


@attrs.frozen
class FileLoadBalancer:
    servers: Tuple[FileServer, ...]
    pass_host_header: bool = True
    sticky: Optional[CookieSpec] = None
    servers_transport: str = ""
    health_check: Optional[HealthCheckSpec] = None
    passive: Optional[PassiveHealthSpec] = None


@attrs.frozen
class FileChild:
    """A child of a weighted service (``amount`` its weight) or a mirror (its percent)."""

    name: str
    amount: int
    line: int
    path: str


@attrs.frozen
class FileWeighted:
    services: Tuple[FileChild, ...]
    sticky: Optional[CookieSpec] = None
    #: ``healthCheck: {}``: children that are down are skipped (each must report a status).
    health_check: bool = False


@attrs.frozen
class FileMirroring:
    service: str
    line: int
    mirrors: Tuple[FileChild, ...] = ()
    max_body_size: int = -1
    mirror_body: bool = True
    #: ``healthCheck: {}``: the main service must report a status.
    health_check: bool = False


@attrs.frozen
class FileService:
    """One of ``http.services``: exactly one of the three kinds is set."""

    name: str
    location: Location
    load_balancer: Optional[FileLoadBalancer] = None
    weighted: Optional[FileWeighted] = None
    mirroring: Optional[FileMirroring] = None


@attrs.frozen
class FileRouter:
    """One of ``http.routers``. ``service`` and ``middlewares`` as written (``x`` or
    ``x@provider``); ``tls`` None for a plain HTTP router."""

    name: str
    location: Location
    rule: str
    service: str
    entry_points: Tuple[str, ...] = ()
    priority: int = 0
    syntax: str = ""
    middlewares: Tuple[str, ...] = ()
    tls: Optional[RouteTLS] = None


@attrs.frozen
class FileTransport:
    name: str
    location: Location
    settings: TransportSettings = TransportSettings()


@attrs.frozen
class FileMiddleware:
    """One of ``http.middlewares``: its kind (``stripPrefix``...) and the kind's parsed spec."""

    name: str
    location: Location
    kind: str
    spec: Any


#: The namespace of the Secrets made of the file provider's certificates.
FILE_SECRETS = "@file"
SecretKey = Tuple[str, str, Location]


@attrs.frozen
class FileTLS:
    """``tls``: ``resources`` are Secrets (one per certificate) and TLSOptions (named
    ``x@file``, or ``default``); ``certificates`` the Secrets served by SNI;
    ``default_certificate`` the default store's, if any."""

    resources: Tuple[Resource, ...] = ()
    certificates: Tuple[SecretKey, ...] = ()
    default_certificate: Optional[SecretKey] = None


@attrs.frozen
class FileAddress:
    """``servers[i].address`` of a TCP or UDP load balancer."""

    host: str
    port: int
    line: int
    path: str


@attrs.frozen
class FileL4Service:
    """One of ``tcp.services`` or ``udp.services``: ``servers`` (a load balancer, with the
    TCP-only ``proxy_protocol`` version and ``termination_delay`` in ms) or ``weighted``."""

    name: str
    location: Location
    servers: Tuple[FileAddress, ...] = ()
    proxy_protocol: int = 0
    termination_delay: int = 100
    weighted: Optional[Tuple[FileChild, ...]] = None


@attrs.frozen
class FileConfiguration:
    """What the file provider read, every section keyed by name in file order."""

    routers: Tuple[FileRouter, ...] = ()
    services: Tuple[FileService, ...] = ()
    transports: Tuple[FileTransport, ...] = ()
    middlewares: Tuple[FileMiddleware, ...] = ()
    tls: FileTLS = FileTLS()
    tcp_routers: Tuple[FileRouter, ...] = ()
    tcp_services: Tuple[FileL4Service, ...] = ()
    udp_routers: Tuple[FileRouter, ...] = ()
    udp_services: Tuple[FileL4Service, ...] = ()


def is_dynamic_document(data: object) -> bool:
    """Whether a document looks like Traefik's dynamic configuration (no apiVersion/kind,
    only http/tcp/udp/tls at the top)."""
    return (
        isinstance(data, YAMLMap)
        and bool(data)
        and all(isinstance(key, str) and key in _SECTIONS for key in data)
    )


def _server(fields: Fields) -> FileServer:
    url = fields.string("url", required=True)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https", "h2c") or not rest:
        raise fields.fail("url", "must be an http, https or h2c URL (like http://10.0.0.1:80)")
    hostport, slash, path = rest.partition("/")
    if path or "?" in hostport or "@" in hostport:
        raise fields.fail("url", "a path, query or user in a server URL is not supported yet")
    weight = fields.integer("weight", 1, minimum=0) if fields.has("weight") else None
    server = FileServer(url, fields.line, fields.path, weight)
    fields.done({"preservePath": _NOT_YET})
    return server


def _load_balancer(fields: Fields) -> FileLoadBalancer:
    servers = tuple(_server(item) for item in fields.mappings("servers"))
    strategy = fields.string("strategy")
    if strategy not in ("", "wrr", "RoundRobin"):
        raise fields.fail("strategy", f"{strategy} is not supported yet (wrr only)")
    balancer = FileLoadBalancer(
        servers=servers,
        pass_host_header=fields.boolean("passHostHeader", True),
        sticky=read_sticky(fields),
        servers_transport=fields.string("serversTransport"),
        health_check=_health_check(fields),
        passive=_passive_health_check(fields),
    )
    fields.done({"responseForwarding": _NOT_YET})
    return balancer


def _child(fields: Fields, amount_key: str, maximum: Optional[int]) -> FileChild:
    child = FileChild(
        fields.string("name", required=True),
        fields.integer(amount_key, 1 if amount_key == "weight" else 0, 0, maximum),
        fields.line,
        fields.path,
    )
    fields.done()
    return child


def _service(name: str, fields: Fields, location: Location, own: str = "") -> FileService:
    kinds = [key for key in ("loadBalancer", "weighted", "mirroring") if fields.has(key)]
    for unsupported in ("failover", "highestRandomWeight"):
        if fields.has(unsupported):
            raise fields.fail(unsupported, "not supported yet: the route using it is disabled")
    if len(kinds) != 1:
        raise fields.whole("exactly one of loadBalancer, weighted or mirroring is required")
    service = FileService(name, location)
    balancer_fields = fields.mapping("loadBalancer")
    if balancer_fields is not None:
        service = attrs.evolve(service, load_balancer=_load_balancer(balancer_fields))
    weighted_fields = fields.mapping("weighted")
    if weighted_fields is not None:
        children = tuple(_child(i, "weight", None) for i in weighted_fields.mappings("services"))
        sticky = read_sticky(weighted_fields)
        follow = _propagation(weighted_fields)
        weighted_fields.done()
        service = attrs.evolve(service, weighted=FileWeighted(children, sticky, follow))
    mirroring_fields = fields.mapping("mirroring")
    if mirroring_fields is not None:
        mirroring = FileMirroring(
            service=mirroring_fields.string("service", required=True),
            line=mirroring_fields.line_of("service"),
            mirrors=tuple(_child(i, "percent", 100) for i in mirroring_fields.mappings("mirrors")),
            max_body_size=mirroring_fields.integer("maxBodySize", -1, minimum=-1),
            mirror_body=mirroring_fields.boolean("mirrorBody", True),
            health_check=_propagation(mirroring_fields),
        )
        mirroring_fields.done()
        service = attrs.evolve(service, mirroring=mirroring)
    fields.done()
    return service


def _router_tls(fields: Fields, own: str = "file") -> RouteTLS:
    if fields.string("certResolver"):
        raise fields.fail("certResolver", "ACME certificate resolvers are not supported")
    written = fields.string("options")
    options = None
    if written not in ("", "default", "default@internal"):
        name, _, provider = written.partition("@")
        if provider not in ("", own):
            raise fields.fail("options", "TLS options of another provider are not supported yet")
        options = ObjectRef(f"{name}@{own}", "")
    domains = []
    for item in fields.mappings("domains"):
        domains.append(TLSDomain(item.string("main"), item.strings("sans")))
        item.done()
    fields.done()
    return RouteTLS(options=options, domains=tuple(domains))


def _router(name: str, fields: Fields, location: Location, own: str = "file") -> FileRouter:
    present, tls_fields = fields.section("tls")
    router = FileRouter(
        name=name,
        location=location,
        rule=fields.string("rule", required=True),
        service=fields.string("service", required=True),
        entry_points=fields.strings("entryPoints"),
        priority=fields.integer("priority", 0, maximum=_MAX_PRIORITY),
        syntax=fields.string("ruleSyntax", choices=("", "v2", "v3")),
        middlewares=fields.strings("middlewares"),
        tls=(RouteTLS() if tls_fields is None else _router_tls(tls_fields, own))
        if present
        else None,
    )
    fields.done({"observability": _NOT_YET})
    return router


def _transport(name: str, fields: Fields, location: Location, own: str = "") -> FileTransport:
    return FileTransport(name, location, read_transport(fields))


def _middleware(name: str, fields: Fields, location: Location, own: str = "") -> FileMiddleware:
    from tsproxy.middlewares.registry import http_kinds

    keys = [key for key in fields.data if isinstance(key, str)]
    if len(keys) != 1:
        raise fields.whole("a middleware has exactly one kind (like stripPrefix)")
    if keys[0] == "chain":
        return FileMiddleware(name, location, "chain", _file_chain(fields, own or "file"))
    kinds = http_kinds()
    kind = kinds.get(keys[0])
    if kind is None and getattr(fields.data, "caseless", False):
        # Keys of a key-value store are case-insensitive (``stripprefix``).
        kind = {k.lower(): v for k, v in kinds.items()}.get(keys[0].lower())
    if kind is None:
        raise fields.fail(keys[0], "this middleware kind is not implemented yet")
    section = fields.mapping(keys[0])
    spec = kind.parse(section if section is not None else Fields(YAMLMap(), keys[0], []))
    fields.done()
    return FileMiddleware(name, location, kind.name, spec)


def _file_chain(fields: Fields, own: str = "file") -> Tuple[MiddlewareRef, ...]:
    """``chain: {middlewares: [a, b@kubernetescrd]}``: a bare name is one of this
    provider's (``a@file``, ``a@etcd``), as Traefik resolves it."""
    section = fields.mapping("chain")
    if section is None:
        raise fields.fail("chain", "must be a mapping")
    names = section.strings("middlewares")
    section.done()
    fields.done()
    path = f"{section.path}.middlewares" if section.path else "chain.middlewares"
    return tuple(
        MiddlewareRef(name if "@" in name else f"{name}@{own}", "", section.line, f"{path}[{i}]")
        for i, name in enumerate(names)
    )


def _address(fields: Fields) -> FileAddress:
    address = fields.string("address", required=True)
    host, colon, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise fields.fail("address", "must be host:port (like 10.0.0.1:5432 or [fd00::1]:53)")
    if fields.has("tls") and fields.boolean("tls", False):
        raise fields.fail("tls", "dialling servers with TLS is not supported yet")
    fields.done()
    return FileAddress(host, int(port), fields.line, fields.path)


def _l4_service(name: str, fields: Fields, location: Location, tcp: bool) -> FileL4Service:
    kinds = [key for key in ("loadBalancer", "weighted") if fields.has(key)]
    if len(kinds) != 1:
        raise fields.whole("exactly one of loadBalancer or weighted is required")
    service = FileL4Service(name, location)
    balancer = fields.mapping("loadBalancer")
    if balancer is not None:
        servers = tuple(_address(item) for item in balancer.mappings("servers"))
        proxy_protocol, delay = 0, 100
        if tcp:
            present, proxy = balancer.section("proxyProtocol")
            if present:
                proxy_protocol = 2
                if proxy is not None:
                    proxy_protocol = proxy.integer("version", 2, minimum=1, maximum=2)
                    proxy.done()
            delay = balancer.integer("terminationDelay", 100)
            if balancer.string("serversTransport"):
                raise balancer.fail(
                    "serversTransport", "TCP servers transports are not supported yet"
                )
        balancer.done()
        service = attrs.evolve(
            service, servers=servers, proxy_protocol=proxy_protocol, termination_delay=delay
        )
    weighted = fields.mapping("weighted")
    if weighted is not None:
        children = tuple(_child(i, "weight", None) for i in weighted.mappings("services"))
        weighted.done()
        service = attrs.evolve(service, weighted=children)
    fields.done()
    return service


def _tcp_router(name: str, fields: Fields, location: Location, own: str = "file") -> FileRouter:
    present, tls_fields = fields.section("tls")
    tls = None
    if present:
        passthrough = tls_fields.boolean("passthrough", False) if tls_fields else False
        tls = RouteTLS() if tls_fields is None else _router_tls(tls_fields, own)
        tls = attrs.evolve(tls, passthrough=passthrough)
    router = FileRouter(
        name=name,
        location=location,
        rule=fields.string("rule", required=True),
        service=fields.string("service", required=True),
        entry_points=fields.strings("entryPoints"),
        priority=fields.integer("priority", 0, maximum=_MAX_PRIORITY),
        syntax=fields.string("ruleSyntax", choices=("", "v2", "v3")),
        middlewares=fields.strings("middlewares"),
        tls=tls,
    )
    fields.done()
    return router


def _udp_router(name: str, fields: Fields, location: Location, own: str = "") -> FileRouter:
    router = FileRouter(
        name=name,
        location=location,
        rule="",
        service=fields.string("service", required=True),
        entry_points=fields.strings("entryPoints"),
    )
    fields.done()
    return router


def _unsupported(what: str) -> Callable[[str, Fields, Location, str], Any]:
    def parse(name: str, fields: Fields, location: Location, own: str = "") -> Any:
        raise fields.whole(f"{what} are not supported yet")

    return parse


_SECTIONS_OF: Dict[str, Tuple[Tuple[str, str, Callable[..., Any]], ...]] = {
    "http": (
        ("routers", "router", _router),
        ("services", "service", _service),
        ("serversTransports", "serversTransport", _transport),
        ("middlewares", "middleware", _middleware),
    ),
    "tcp": (
        ("routers", "TCP router", _tcp_router),
        ("services", "TCP service", lambda n, f, loc, own: _l4_service(n, f, loc, True)),
        ("middlewares", "TCP middleware", _unsupported("TCP middlewares")),
        ("serversTransports", "TCP serversTransport", _unsupported("TCP servers transports")),
    ),
    "udp": (
        ("routers", "UDP router", _udp_router),
        ("services", "UDP service", lambda n, f, loc, own: _l4_service(n, f, loc, False)),
    ),
}


class _Reader:
    """Reads documents into one FileConfiguration; the first definition of a name wins.
    ``provider`` is the provider the names belong to (``file``; ``etcd`` and ``redis`` read
    the same format from their key trees); ``place`` turns a document's (file, line) into
    where errors say it is (a key-value provider maps lines to key paths)."""

    def __init__(
        self,
        read_file: Optional[Callable[[str], bytes]] = None,
        provider: str = "file",
        place: Optional[Callable[[str, int], Tuple[str, int]]] = None,
    ) -> None:
        self.provider = provider
        self.place = place if place is not None else lambda file, line: (file, line)
        self.sections: Dict[str, Dict[str, Any]] = {
            f"{group}.{key}": {}
            for group, sections in _SECTIONS_OF.items()
            for key, _, _ in sections
        }
        self.errors: List[ConfigError] = []
        self.notices: List[str] = []
        self.read_file = read_file
        self.tls_resources: List[Resource] = []
        self.tls_options: Dict[str, Location] = {}
        self.certificates: List[SecretKey] = []
        self.default_certificate: Optional[SecretKey] = None

    def error(self, file: str, line: int, resource: str, message: str) -> ConfigError:
        where, at = self.place(file, line)
        return ConfigError(where, at, resource, message)

    def location(self, file: str, line: int, resource: str) -> Location:
        where, at = self.place(file, line)
        return Location(where, at, resource)

    def document(self, document: Document, file: str) -> None:
        data = document.data
        if not isinstance(data, YAMLMap):
            self.errors.append(self.error(file, document.line, "", "not a mapping"))
            return
        notices: List[Tuple[int, str]] = []
        try:
            root = Fields(data, "", notices)
            groups = {group: root.mapping(group) for group in _SECTIONS_OF}
            tls = root.mapping("tls")
            root.done()
        except FieldError as exc:
            self.errors.append(self.error(file, exc.line, "", str(exc)))
            groups, tls = {}, None
        for group, fields in groups.items():
            if fields is not None:
                self._group(group, fields, file)
        if tls is not None:
            self._tls(tls, file)
        self.notices.extend(f"{self.location(file, line, '')}: {text}" for line, text in notices)

    def _group(self, group: str, http: Fields, file: str) -> None:
        for key, what, parse in _SECTIONS_OF[group]:
            try:
                section = http.mapping(key)
            except FieldError as exc:
                self.errors.append(self.error(file, exc.line, "", str(exc)))
                continue
            if section is None:
                continue
            for name in list(section.data):
                line = section.line_of(str(name))
                location = self.location(file, line, f"{what} {name}")
                try:
                    if not isinstance(name, str) or not name or "@" in name:
                        raise FieldError(line, section.path_of(str(name)), "invalid name")
                    fields = section.mapping(name, required=True)
                    assert fields is not None
                    value = parse(name, fields, location, self.provider)
                except FieldError as exc:
                    self.errors.append(self.error(file, exc.line, location.resource, str(exc)))
                    continue
                first = self.sections[f"{group}.{key}"].setdefault(name, value)
                if first is not value:
                    message = f"defined twice, this one is ignored (first at {first.location})"
                    self.errors.append(location.error(message))
        try:
            http.done()
        except FieldError as exc:
            self.errors.append(self.error(file, exc.line, "", str(exc)))

    def _pem(self, fields: Fields, key: str) -> bytes:
        """``certFile``/``keyFile``: PEM text, or a file path (relative: to the
        configuration directory), as Traefik's FileOrContent."""
        value = fields.string(key, required=True)
        if value.lstrip().startswith("-----BEGIN"):
            return value.encode()
        if self.read_file is None:
            raise fields.fail(key, "a file path needs the configuration directory")
        try:
            return self.read_file(value)
        except OSError as exc:
            raise fields.fail(key, f"cannot read {value}: {exc.strerror or exc}") from None

    def _secret(self, fields: Fields, location: Location) -> SecretKey:
        name = f"certificate-{len(self.tls_resources)}"
        data = (
            ("tls.crt", self._pem(fields, "certFile")),
            ("tls.key", self._pem(fields, "keyFile")),
        )
        meta = Meta("Secret", f"@{self.provider}", name, location)
        self.tls_resources.append(Secret(meta, "kubernetes.io/tls", data))
        return (f"@{self.provider}", name, location)

    def _tls(self, tls: Fields, file: str) -> None:
        def located(read: Callable[[], None]) -> None:
            try:
                read()
            except FieldError as exc:
                self.errors.append(self.error(file, exc.line, "", str(exc)))

        def certificates() -> None:
            for item in tls.mappings("certificates"):
                location = self.location(file, item.line, item.path)
                stores = item.strings("stores")
                if any(store != "default" for store in stores):
                    item.note("stores", "only the default store takes effect, as in Traefik")
                key = self._secret(item, location)
                item.done()
                self.certificates.append(key)

        def options() -> None:
            section = tls.mapping("options")
            for name in list(section.data) if section is not None else ():
                assert section is not None
                line = section.line_of(str(name))
                location = self.location(file, line, f"tls option {name}")
                first = self.tls_options.setdefault(str(name), location)
                if first is not location:
                    message = f"defined twice, this one is ignored (first at {first})"
                    self.errors.append(location.error(message))
                    continue
                fields = section.mapping(str(name), required=True)
                assert fields is not None
                full = "default" if name == "default" else f"{name}@{self.provider}"
                meta = Meta("TLSOption", "", full, location)
                self.tls_resources.append(read_tls_option(fields, meta))

        def stores() -> None:
            section = tls.mapping("stores")
            for name in list(section.data) if section is not None else ():
                assert section is not None
                fields = section.mapping(str(name), required=True)
                assert fields is not None
                if name != "default":
                    section.note(str(name), "only the store named default takes effect")
                if fields.has("defaultGeneratedCert"):
                    raise fields.fail("defaultGeneratedCert", "ACME resolvers are not supported")
                default = fields.mapping("defaultCertificate")
                if default is not None and name == "default":
                    location = self.location(file, default.line, default.path)
                    self.default_certificate = self._secret(default, location)
                    default.done()
                fields.done()

        for read in (certificates, options, stores):
            located(read)
        located(tls.done)

    def configuration(self) -> FileConfiguration:
        return FileConfiguration(
            routers=tuple(self.sections["http.routers"].values()),
            services=tuple(self.sections["http.services"].values()),
            transports=tuple(self.sections["http.serversTransports"].values()),
            middlewares=tuple(self.sections["http.middlewares"].values()),
            tcp_routers=tuple(self.sections["tcp.routers"].values()),
            tcp_services=tuple(self.sections["tcp.services"].values()),
            udp_routers=tuple(self.sections["udp.routers"].values()),
            udp_services=tuple(self.sections["udp.services"].values()),
            tls=FileTLS(
                tuple(self.tls_resources), tuple(self.certificates), self.default_certificate
            ),
        )


def _template_line(text: str) -> int:
    index = text.find("{{")
    return 0 if index < 0 else text.count("\n", 0, index) + 1


def parse_dynamic_files(
    files: Sequence[Tuple[str, str]],
    read_file: Optional[Callable[[str], bytes]] = None,
) -> Tuple[FileConfiguration, Tuple[ConfigError, ...], Tuple[str, ...]]:
    """Read (name, text) pairs, YAML or TOML by extension, into one configuration;
    ``read_file`` reads the certificate files they name (None: only inline PEM)."""
    reader = _Reader(read_file)
    for name, text in files:
        template = _template_line(text)
        if template:
            message = "Go templates ({{ ... }}) are not supported: the file is not read"
            reader.errors.append(ConfigError(name, template, "", message))
            continue
        load = load_toml if name.endswith(".toml") else load_documents
        documents, errors = load(text, name)
        reader.errors.extend(errors)
        for document in documents:
            reader.document(document, name)
    return reader.configuration(), tuple(reader.errors), tuple(reader.notices)


def parse_dynamic_tree(
    data: YAMLMap, provider: str, place: Callable[[str, int], Tuple[str, int]]
) -> Tuple[FileConfiguration, Tuple[ConfigError, ...], Tuple[str, ...]]:
    """Read one tree in the dynamic format as ``provider``'s (a key-value store's, see
    tsproxy.providers.kv); ``place`` maps the tree's line numbers to where errors say they
    are. Certificates must be inline PEM (there is no directory to read files from)."""
    reader = _Reader(None, provider, place)
    reader.document(Document(0, data.line, data), provider)
    return reader.configuration(), tuple(reader.errors), tuple(reader.notices)
