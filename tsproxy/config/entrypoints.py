"""Entrypoints in the static configuration: addresses, per-entrypoint HTTP settings,
redirections, and the checks across entrypoints (duplicate listeners, redirection targets).

Pure, like ``static`` (which parses the rest and re-exports these names).
"""

from __future__ import annotations

import ipaddress

import attrs

from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.resources import ObjectRef, RouteTLS, TLSDomain
from tsproxy.config.schema import FieldError, Fields

STATIC_FILE = "tsproxy.yaml"
_NOT_YET = "not supported yet, ignored"
_IGNORED_ENTRYPOINT_FIELDS = {
    name: _NOT_YET
    for name in (
        "http2",
        "http3",
        "reusePort",
        "allowACMEByPass",
        "observability",
    )
}
# udp.maxSessions (a tsproxy extension): UDP sessions an entrypoint keeps at once; past it the
# least recently used one is closed. Each session holds a socket, so this bounds descriptors.
DEFAULT_UDP_MAX_SESSIONS = 10000
#: http.maxHeaderBytes (Go's and Traefik's 1 MiB) and http.maxHeaders (a tsproxy limit on
#: the number of header lines of a request; past it, 431).
DEFAULT_MAX_HEADER_BYTES = 1 << 20
DEFAULT_MAX_HEADERS = 100
#: http.encodedCharacters options and the escape each allows in a path. Traefik 3.7's
#: entrypoint default is true for every one (allowed; opt-in rejection since v3.6.7).
ENCODED_CHARACTERS = (
    ("allowEncodedSlash", "2F"),
    ("allowEncodedBackSlash", "5C"),
    ("allowEncodedNullCharacter", "00"),
    ("allowEncodedSemicolon", "3B"),
    ("allowEncodedPercent", "25"),
    ("allowEncodedQuestionMark", "3F"),
    ("allowEncodedHash", "23"),
)
#: Traefik's default priority of a redirection router: MaxInt - 1.
REDIRECTION_PRIORITY = 2**63 - 2


@attrs.frozen
class Redirection:
    """``http.redirections.entryPoint``: every request on the entrypoint is redirected to
    ``scheme`` on entrypoint ``to`` (a name, or ``:port``)."""

    to: str
    scheme: str = "https"
    permanent: bool = True
    priority: int = REDIRECTION_PRIORITY


@attrs.frozen
class EntryPointTLS:
    """``http.tls``: the TLS section every HTTP router on the entrypoint without one of its
    own gets (Traefik's applyModel). ``options`` is as written: a bare name is the option of
    the router's own provider, as a router's ``tls.options`` is; "" is the default options.
    ``domains`` only ever serve ACME (refused here), so they change nothing that is served."""

    options: str = ""
    domains: tuple[TLSDomain, ...] = ()

    def route_tls(self, provider: str) -> RouteTLS:
        """The router TLS section for a router of ``provider`` (``file``, ``redis``,
        ``kubernetescrd``, ``internal``...)."""
        options = None
        if self.options not in ("", "default", "default@internal"):
            name = self.options if "@" in self.options else f"{self.options}@{provider}"
            options = ObjectRef(name, "")
        return RouteTLS(options=options, domains=self.domains)


@attrs.frozen
class ProxyProtocol:
    """``proxyProtocol``: PROXY protocol headers are read on the entrypoint's connections;
    from peers in ``trusted_ips`` (or any, ``insecure``) their addresses are used."""

    trusted_ips: tuple[str, ...] = ()
    insecure: bool = False


@attrs.frozen
class EntryPoint:
    """One listening address. ``host`` "" means every interface; times are in seconds.

    ``udp_timeout`` and ``udp_max_sessions`` apply to UDP entrypoints: a session closes after
    that long without a datagram either way, and at most that many are kept at once.
    """

    name: str
    host: str
    port: int
    protocol: str
    trusted_ips: tuple[str, ...] = ()
    insecure_forwarded: bool = False
    read_timeout: float = 60.0
    write_timeout: float = 0.0
    idle_timeout: float = 180.0
    grace_timeout: float = 10.0
    udp_timeout: float = 3.0
    udp_max_sessions: int = DEFAULT_UDP_MAX_SESSIONS
    #: http.sanitizePath: dot segments resolved and repeated slashes merged before routing.
    sanitize_path: bool = True
    #: The path escapes (upper-case hex, "2F") http.encodedCharacters refuses with 400.
    denied_escapes: tuple[str, ...] = ()
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_headers: int = DEFAULT_MAX_HEADERS
    location: Location = Location(STATIC_FILE, 1)
    #: ``http.middlewares``: run before every router's own, on this entrypoint only.
    middlewares: tuple[str, ...] = ()
    redirection: Redirection | None = None
    #: ``asDefault``: routers that list no entrypoint use the asDefault ones, when any is.
    as_default: bool = False
    #: ``proxyProtocol`` (TCP entrypoints): None when PROXY protocol headers are not read.
    proxy_protocol: ProxyProtocol | None = None
    #: ``http.tls``: the TLS of its HTTP routers that have none (None: they stay plain).
    tls: EntryPointTLS | None = None

    @property
    def has_model(self) -> bool:
        """Traefik makes a model of it (``http.middlewares`` or ``http.tls``): a router on
        several entrypoints is split into one ``<entrypoint>-<router>`` per such entrypoint."""
        return bool(self.middlewares) or self.tls is not None


def parse_address(text: str) -> tuple[str, int, str]:
    """``[host]:port[/tcp|/udp]`` as (host, port, protocol); ValueError says what is wrong."""
    address, _, protocol = text.partition("/")
    protocol = protocol.lower() or "tcp"
    if protocol not in ("tcp", "udp"):
        raise ValueError(f"invalid protocol {protocol!r} (tcp or udp)")
    host, colon, port_text = address.rpartition(":")
    if not colon:
        raise ValueError("must be [host]:port, like :8000 or 127.0.0.1:8000")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not _is_ip(host, 6):
            raise ValueError(f"{host!r} is not an IPv6 address")
    elif host and not _is_ip(host, 4):
        raise ValueError(f"host {host!r} must be an IPv4 address or a bracketed IPv6 address")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} must be a number between 0 and 65535")
    return host, int(port_text), protocol


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _parse_entrypoint_http(
    fields: Fields,
) -> tuple[tuple[str, ...], Redirection | None, dict]:
    """The entrypoint's ``http:`` section: ``middlewares``, ``redirections``, and what its
    HTTP engine accepts of a request (sanitizePath, encodedCharacters, maxHeaderBytes,
    maxHeaders); the options that would change how requests are routed or secured and are not
    implemented are errors, not notices."""
    middlewares = fields.strings("middlewares")
    for index, name in enumerate(middlewares):
        if not name or name.endswith("@") or name.startswith("@"):
            raise FieldError(
                fields.line_of("middlewares"),
                f"{fields.path_of('middlewares')}[{index}]",
                "must be a middleware name (name@provider)",
            )
    redirection = None
    redirections = fields.mapping("redirections")
    if redirections is not None:
        target = redirections.mapping("entryPoint")
        if target is not None:  # an empty ``redirections`` redirects nothing, as in Traefik
            redirection = Redirection(
                to=target.string("to", required=True),
                scheme=target.string("scheme", "https") or "https",
                permanent=target.boolean("permanent", True),
                priority=target.integer("priority", REDIRECTION_PRIORITY, minimum=1),
            )
            target.done()
        redirections.done()
    present, tls_fields = fields.section("tls")
    tls = None
    if present:
        tls = EntryPointTLS() if tls_fields is None else _parse_entrypoint_tls(tls_fields)
    if fields.boolean("encodeQuerySemicolons", False):
        raise fields.fail("encodeQuerySemicolons", "true is not supported yet")
    denied = []
    encoded = fields.mapping("encodedCharacters")
    if encoded is not None:
        for option, escape in ENCODED_CHARACTERS:
            if not encoded.boolean(option, True):
                denied.append(escape)
        encoded.done()
    options = {
        "sanitize_path": fields.boolean("sanitizePath", True),
        "denied_escapes": tuple(denied),
        "max_header_bytes": fields.integer("maxHeaderBytes", DEFAULT_MAX_HEADER_BYTES, minimum=1),
        "max_headers": fields.integer("maxHeaders", DEFAULT_MAX_HEADERS, minimum=1),
        "tls": tls,
    }
    fields.done({"underscoreHeadersStrategy": _NOT_YET})
    return middlewares, redirection, options


def _parse_entrypoint_tls(fields: Fields) -> EntryPointTLS:
    """``http.tls``: ``options`` and ``domains``; ``certResolver`` is refused as on routers
    (no ACME: the routers would be served another certificate than the one asked for)."""
    if fields.string("certResolver"):
        raise fields.fail("certResolver", "ACME certificate resolvers are not supported")
    options = fields.string("options")
    name, at, provider = options.partition("@")
    if at and (not name or not provider):
        raise fields.fail("options", "must be a TLS option name, or name@provider")
    if provider == "kubernetescrd":
        # Traefik names those <namespace>-<name>@kubernetescrd: not resolved here yet.
        raise fields.fail("options", "TLS options of the kubernetescrd provider are not supported")
    domains = []
    for item in fields.mappings("domains"):
        domains.append(TLSDomain(item.string("main"), item.strings("sans")))
        item.done()
    fields.done()
    return EntryPointTLS(options, tuple(domains))


def _parse_entrypoint(name: str, fields: Fields, location: Location) -> EntryPoint:
    address = fields.string("address", required=True)
    try:
        host, port, protocol = parse_address(address)
    except ValueError as exc:
        raise fields.fail("address", str(exc)) from None
    trusted: tuple[str, ...] = ()
    insecure = False
    forwarded = fields.mapping("forwardedHeaders")
    if forwarded is not None:
        trusted = _ip_ranges(forwarded, "trustedIPs")
        insecure = forwarded.boolean("insecure", False)
        forwarded.done({"connection": _NOT_YET, "notAppendXForwardedFor": _NOT_YET})
    timeouts = {"read": 60.0, "write": 0.0, "idle": 180.0, "grace": 10.0}
    transport = fields.mapping("transport")
    if transport is not None:
        responding = transport.mapping("respondingTimeouts")
        if responding is not None:
            for kind in ("read", "write", "idle"):
                timeouts[kind] = responding.duration(kind + "Timeout", timeouts[kind])
            responding.done()
        life_cycle = transport.mapping("lifeCycle")
        if life_cycle is not None:
            timeouts["grace"] = life_cycle.duration("graceTimeOut", timeouts["grace"])
            life_cycle.done({"requestAcceptGraceTimeout": _NOT_YET})
        transport.done({"keepAliveMaxRequests": _NOT_YET, "keepAliveMaxTime": _NOT_YET})
    udp_timeout = 3.0
    udp_max_sessions = DEFAULT_UDP_MAX_SESSIONS
    udp = fields.mapping("udp")
    if udp is not None:
        udp_timeout = udp.duration("timeout", udp_timeout)
        if udp_timeout == 0:
            raise udp.fail("timeout", "must be above 0 (as in Traefik)")
        udp_max_sessions = udp.integer("maxSessions", udp_max_sessions, minimum=1)
        udp.done()
    middlewares: tuple[str, ...] = ()
    redirection = None
    http_options: dict = {}
    http = fields.mapping("http")
    if http is not None:
        middlewares, redirection, http_options = _parse_entrypoint_http(http)
    as_default = fields.boolean("asDefault", False)
    proxy_protocol = _parse_proxy_protocol(fields, protocol)
    fields.done(_IGNORED_ENTRYPOINT_FIELDS)
    return EntryPoint(
        name=name,
        host=host,
        port=port,
        protocol=protocol,
        trusted_ips=trusted,
        insecure_forwarded=insecure,
        read_timeout=timeouts["read"],
        write_timeout=timeouts["write"],
        idle_timeout=timeouts["idle"],
        grace_timeout=timeouts["grace"],
        udp_timeout=udp_timeout,
        udp_max_sessions=udp_max_sessions,
        location=location,
        middlewares=middlewares,
        redirection=redirection,
        as_default=as_default,
        proxy_protocol=proxy_protocol,
        **http_options,
    )


def _ip_ranges(fields: Fields, key: str) -> tuple[str, ...]:
    """A list of IP addresses and CIDR ranges, each checked."""
    values = fields.strings(key)
    for index, value in enumerate(values):
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise FieldError(
                fields.line_of(key),
                f"{fields.path_of(key)}[{index}]",
                "must be an IP address or a CIDR range",
            ) from None
    return values


def _parse_proxy_protocol(fields: Fields, protocol: str) -> ProxyProtocol | None:
    """``proxyProtocol``: ``trustedIPs`` or ``insecure`` (Traefik refuses to start with
    neither: "no trusted IPs provided"). Traefik has no PROXY protocol on UDP entrypoints and
    ignores the section there; so does tsproxy, with a notice."""
    section = fields.mapping("proxyProtocol")
    if section is None:
        return None
    accept = ProxyProtocol(
        trusted_ips=_ip_ranges(section, "trustedIPs"),
        insecure=section.boolean("insecure", False),
    )
    section.done()
    if protocol == "udp":
        fields.note("proxyProtocol", "ignored on a UDP entrypoint (as in Traefik)")
        return None
    if not accept.insecure and not accept.trusted_ips:
        raise fields.fail("proxyProtocol", "needs trustedIPs, or insecure: true")
    return accept


def _redirection_targets(entrypoints: list[EntryPoint]) -> list[ConfigError]:
    """A redirection must name a TCP entrypoint or ``:port``: Traefik would log the problem
    and serve the entrypoint unredirected, which is not what the file asks for."""
    protocols = {entrypoint.name: entrypoint.protocol for entrypoint in entrypoints}
    errors = []
    for entrypoint in entrypoints:
        redirection = entrypoint.redirection
        if redirection is None:
            continue
        to = redirection.to
        where = "http.redirections.entryPoint.to"
        if to.startswith(":"):
            if not to[1:].isdigit() or not 0 < int(to[1:]) < 65536:
                errors.append(entrypoint.location.error(f"{where}: {to!r} is not a port"))
        elif protocols.get(to) != "tcp":
            problem = "not found" if to not in protocols else "not a TCP entrypoint"
            errors.append(entrypoint.location.error(f"{where}: entrypoint {to} {problem}"))
    return errors


def _duplicate_listeners(entrypoints: list[EntryPoint]) -> list[ConfigError]:
    seen: dict[tuple[str, int, str], EntryPoint] = {}
    errors = []
    for entrypoint in entrypoints:
        key = (entrypoint.host, entrypoint.port, entrypoint.protocol)
        first = seen.setdefault(key, entrypoint)
        if first is not entrypoint and entrypoint.port != 0:
            errors.append(
                entrypoint.location.error(
                    f"address is already used by entrypoint {first.name} ({first.location})"
                )
            )
    return errors
