"""The static configuration (tsproxy.yaml, Traefik's static format): entrypoints, log level,
and the observability sections (api, ping, metrics.prometheus, accessLog).

Pure: parses text given to it. Any error here is fatal, since the proxy cannot start without it.
"""

from __future__ import annotations

import ipaddress
from typing import Sequence, Union

import attrs

from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.providers import ProvidersConfig, parse_providers
from tsproxy.config.schema import FieldError, Fields
from tsproxy.config.tomlio import load_toml
from tsproxy.config.yamlio import load_documents

__all__ = ["EntryPoint", "StaticConfig", "parse_address", "parse_static"]

STATIC_FILE = "tsproxy.yaml"
#: The static configuration file names read in the configuration directory (one of them).
STATIC_FILES = (STATIC_FILE, "traefik.yml", "traefik.yaml", "traefik.toml")

_NOT_YET = "not supported yet, ignored"
# Top-level sections Traefik's static configuration has and we do not act on yet.
_IGNORED_SECTIONS = {
    name: _NOT_YET
    for name in (
        "global",
        "serversTransport",
        "tcpServersTransport",
        "certificatesResolvers",
        "experimental",
        "tracing",
        "hostResolver",
        "spiffe",
        "hub",
        "ocsp",
    )
}
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
#: The entrypoint Traefik serves api, dashboard, ping and metrics on, and its default address.
INTERNAL_ENTRYPOINT = "traefik"
INTERNAL_DEFAULT_PORT = 8080
DEFAULT_BUCKETS = (0.1, 0.3, 1.2, 5.0)
_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "PANIC")


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


@attrs.frozen
class APIConfig:
    """``api:``. Only ``insecure: true`` serves it (on the ``traefik`` entrypoint)."""

    insecure: bool = False
    dashboard: bool = True
    debug: bool = False


@attrs.frozen
class PingConfig:
    """``ping:``: ``/ping`` on ``entrypoint`` unless ``manual_routing``."""

    entrypoint: str = INTERNAL_ENTRYPOINT
    manual_routing: bool = False
    terminating_status_code: int = 503


@attrs.frozen
class PrometheusConfig:
    """``metrics.prometheus:``, with Traefik's defaults."""

    entrypoint: str = INTERNAL_ENTRYPOINT
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    add_entrypoints_labels: bool = True
    add_routers_labels: bool = False
    add_services_labels: bool = True
    manual_routing: bool = False


@attrs.frozen
class AccessLogFields:
    """``accessLog.fields``: ``default_mode`` (keep, drop, redact) for fields not in
    ``names`` ((field, mode) pairs); the same for request headers (``headers``), whose
    default is drop."""

    default_mode: str = "keep"
    names: tuple[tuple[str, str], ...] = ()
    headers_default_mode: str = "drop"
    headers: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class AccessLogConfig:
    """``accessLog:``. ``file_path`` "" means stdout; ``format`` is common or json;
    ``buffering_size`` lines are kept before a write (0: each line written at once)."""

    file_path: str = ""
    format: str = "common"
    buffering_size: int = 0
    fields: AccessLogFields = AccessLogFields()


@attrs.frozen
class StaticConfig:
    """The parsed tsproxy.yaml; ``path`` is the file it came from. The observability sections
    are None when absent."""

    path: str
    entrypoints: tuple[EntryPoint, ...]
    log_level: str = "INFO"
    api: APIConfig | None = None
    ping: PingConfig | None = None
    prometheus: PrometheusConfig | None = None
    access_log: AccessLogConfig | None = None
    providers: ProvidersConfig = ProvidersConfig()

    def internal_entrypoints(self) -> dict[str, tuple[str, ...]]:
        """What each entrypoint serves of ``api``, ``dashboard``, ``ping``, ``metrics``."""
        served: dict[str, list[str]] = {}
        if self.api is not None and self.api.insecure:
            served.setdefault(INTERNAL_ENTRYPOINT, []).append("api")
            if self.api.dashboard:
                served[INTERNAL_ENTRYPOINT].append("dashboard")
        if self.ping is not None and not self.ping.manual_routing:
            served.setdefault(self.ping.entrypoint, []).append("ping")
        if self.prometheus is not None and not self.prometheus.manual_routing:
            served.setdefault(self.prometheus.entrypoint, []).append("metrics")
        return {name: tuple(what) for name, what in served.items()}

    def entrypoint(self, name: str) -> EntryPoint:
        """The entrypoint called ``name``; KeyError if there is none."""
        for entrypoint in self.entrypoints:
            if entrypoint.name == name:
                return entrypoint
        raise KeyError(name)

    def select(
        self, names: Sequence[str], protocol: str, wrong: str
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Of ``names`` (every entrypoint when it is empty), those speaking ``protocol``, and a
        message for each name that is unknown or speaks the other protocol (``wrong``, with
        ``{name}`` in it)."""
        if not names:
            mine = [e for e in self.entrypoints if e.protocol == protocol]
            defaults = [e for e in mine if e.as_default]
            return tuple(e.name for e in (defaults or mine)), ()
        kept, problems = [], []
        for name in names:
            try:
                entrypoint = self.entrypoint(name)
            except KeyError:
                problems.append(f"entrypoint {name} not found")
                continue
            if entrypoint.protocol != protocol:
                problems.append(wrong.format(name=name))
                continue
            kept.append(name)
        return tuple(kept), tuple(problems)


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


# http.* options of an entrypoint that do not change what reaches a backend.


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
    if fields.has("tls"):
        raise fields.fail("tls", "default TLS for the entrypoint's routers is not supported yet")
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
        "max_header_bytes": fields.integer(
            "maxHeaderBytes", DEFAULT_MAX_HEADER_BYTES, minimum=1
        ),
        "max_headers": fields.integer("maxHeaders", DEFAULT_MAX_HEADERS, minimum=1),
    }
    fields.done({"underscoreHeadersStrategy": _NOT_YET})
    return middlewares, redirection, options


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
        trusted = forwarded.strings("trustedIPs")
        for index, value in enumerate(trusted):
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise FieldError(
                    forwarded.line_of("trustedIPs"),
                    f"{forwarded.path_of('trustedIPs')}[{index}]",
                    "must be an IP address or a CIDR range",
                ) from None
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
    if fields.has("proxyProtocol"):
        # Traefik strips (and, from trusted peers, reads) PROXY headers on such an entrypoint;
        # ignored, they would reach TCP backends and the client address would be the peer's.
        raise fields.fail("proxyProtocol", "not supported yet on entrypoints")
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
        **http_options,
    )


def _parse_log_level(root: Fields) -> str:
    log = root.mapping("log")
    if log is None:
        return "INFO"
    level = log.string("level", "INFO")
    if level.upper() not in _LOG_LEVELS:
        raise log.fail("level", "must be one of: " + ", ".join(_LOG_LEVELS))
    log.done({name: _NOT_YET for name in ("filePath", "format", "noColor", "maxSize")})
    return level.upper()


def _parse_api(root: Fields) -> APIConfig | None:
    api = root.mapping("api")
    if api is None:
        return None
    config = APIConfig(
        insecure=api.boolean("insecure", False),
        dashboard=api.boolean("dashboard", True),
        debug=api.boolean("debug", False),
    )
    if not config.insecure:
        api.note("insecure", "false: the API is served only with insecure: true")
    api.done({"basePath": _NOT_YET, "disableDashboardAd": "", "dashboardName": _NOT_YET})
    return config


def _parse_ping(root: Fields) -> PingConfig | None:
    present, ping = root.section("ping")
    if ping is None:  # ``ping:`` or ``ping: {}``, or absent
        return PingConfig() if present else None
    config = PingConfig(
        entrypoint=ping.string("entryPoint", INTERNAL_ENTRYPOINT),
        manual_routing=ping.boolean("manualRouting", False),
        terminating_status_code=ping.integer("terminatingStatusCode", 503, 100, 599),
    )
    ping.done()
    return config


def _parse_metrics(root: Fields) -> PrometheusConfig | None:
    metrics = root.mapping("metrics")
    if metrics is None:
        return None
    present, prometheus = metrics.section("prometheus")
    metrics.done({name: _NOT_YET for name in ("datadog", "statsd", "influxDB2", "otlp")})
    if prometheus is None:
        return PrometheusConfig() if present else None
    buckets = []
    for item, path, line in prometheus.items("buckets"):
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not item > 0:
            raise FieldError(line, path, "must be a positive number of seconds")
        if item == float("inf"):
            continue  # the +Inf bucket is always there; Go's client drops a written one too
        buckets.append(float(item))
    if buckets != sorted(set(buckets)):
        raise prometheus.fail("buckets", "must be in increasing order, without repeats")
    config = PrometheusConfig(
        entrypoint=prometheus.string("entryPoint", INTERNAL_ENTRYPOINT),
        buckets=tuple(buckets) or DEFAULT_BUCKETS,
        add_entrypoints_labels=prometheus.boolean("addEntryPointsLabels", True),
        add_routers_labels=prometheus.boolean("addRoutersLabels", False),
        add_services_labels=prometheus.boolean("addServicesLabels", True),
        manual_routing=prometheus.boolean("manualRouting", False),
    )
    prometheus.done({"headerLabels": _NOT_YET})
    return config


_FIELD_MODES = ("keep", "drop", "redact")


def _modes(fields: Fields, key: str) -> tuple[tuple[str, str], ...]:
    names = fields.mapping(key)
    if names is None:
        return ()
    pairs = []
    for name in list(names.data):
        pairs.append((str(name), names.string(str(name), choices=_FIELD_MODES).lower()))
    names.done()
    return tuple(pairs)


def _parse_access_log(root: Fields) -> AccessLogConfig | None:
    present, section = root.section("accessLog")
    if section is None:
        return AccessLogConfig() if present else None
    log_fields = AccessLogFields()
    fields = section.mapping("fields")
    if fields is not None:
        headers = fields.mapping("headers")
        header_default, header_names = "drop", ()  # type: tuple[str, tuple[tuple[str, str], ...]]
        if headers is not None:
            header_default = headers.string("defaultMode", "drop", choices=_FIELD_MODES)
            header_names = _modes(headers, "names")
            headers.done()
        log_fields = AccessLogFields(
            default_mode=fields.string("defaultMode", "keep", choices=_FIELD_MODES),
            names=_modes(fields, "names"),
            headers_default_mode=header_default,
            headers=header_names,
        )
        fields.done()
    config = AccessLogConfig(
        file_path=section.string("filePath", ""),
        format=section.string("format", "common", choices=("common", "json")),
        buffering_size=section.integer("bufferingSize", 0, minimum=0),
        fields=log_fields,
    )
    section.done({"filters": _NOT_YET, "addInternals": _NOT_YET})
    return config


def _with_internal_entrypoint(
    config: StaticConfig, file: str, line: int
) -> tuple[StaticConfig, list[ConfigError]]:
    """Add Traefik's default ``traefik`` entrypoint (``:8080``) when something is served on
    it and it is not defined; an internal service on an undefined entrypoint is an error."""
    names = {e.name for e in config.entrypoints}
    errors: list[ConfigError] = []
    entrypoints = config.entrypoints
    for name in config.internal_entrypoints():
        if name in names:
            if config.entrypoint(name).protocol != "tcp":
                errors.append(ConfigError(file, line, "", f"entrypoint {name} must be TCP"))
            continue
        if name != INTERNAL_ENTRYPOINT:
            errors.append(ConfigError(file, line, "", f"entrypoint {name} not found"))
            continue
        location = Location(file, line, f"entrypoint {name}")
        entrypoints += (EntryPoint(name, "", INTERNAL_DEFAULT_PORT, "tcp", location=location),)
        names.add(name)
    return attrs.evolve(config, entrypoints=entrypoints), errors


StaticResult = tuple[Union[StaticConfig, None], tuple[ConfigError, ...], tuple[str, ...]]


def parse_static(text: str | None, file: str = STATIC_FILE, path: str = "") -> StaticResult:
    """Parse tsproxy.yaml text (None: the file is absent) into (config or None, errors, notices).

    Errors from every entrypoint are collected; any error means no configuration.
    """
    if text is None:
        return None, (ConfigError(file, 1, "", "file not found: no entrypoints defined"),), ()
    load = load_toml if file.endswith(".toml") else load_documents
    documents, yaml_errors = load(text, file)
    if yaml_errors:
        return None, yaml_errors, ()
    if not documents:
        return None, (ConfigError(file, 1, "", "empty: no entrypoints defined"),), ()
    if len(documents) > 1:
        message = "must hold a single YAML document"
        return None, (ConfigError(file, documents[1].line, "", message),), ()
    notices: list[tuple[int, str]] = []
    errors: list[ConfigError] = []
    entrypoints: list[EntryPoint] = []
    log_level = "INFO"
    sections: dict[str, object] = {}
    document = documents[0]
    try:
        root = Fields.of(document.data, "", document.line, notices)
        section = root.mapping("entryPoints", required=True)
        assert section is not None
        if not section.data:
            raise section.whole("at least one entrypoint is required")
        for name in section.data:
            try:
                if not isinstance(name, str) or not name:
                    line = section.data.key_lines.get(name, section.line)
                    raise FieldError(line, f"entryPoints.{name}", "names must be non-empty strings")
                fields = section.mapping(name, required=True)
                assert fields is not None
                location = Location(file, section.line_of(name), f"entrypoint {name}")
                entrypoints.append(_parse_entrypoint(name, fields, location))
            except FieldError as exc:
                errors.append(ConfigError(file, exc.line, "", str(exc)))
        log_level = _parse_log_level(root)
        try:
            sections["providers"] = parse_providers(root, file)
        except FieldError as exc:
            errors.append(ConfigError(file, exc.line, "", str(exc)))
        core = root.mapping("core")
        if core is not None:
            # v2 would read every rule without a syntax of its own differently.
            core.string("defaultRuleSyntax", "v3", choices=("v3",))
            core.done()
        for key, parse in (
            ("api", _parse_api),
            ("ping", _parse_ping),
            ("prometheus", _parse_metrics),
            ("access_log", _parse_access_log),
        ):
            try:
                sections[key] = parse(root)
            except FieldError as exc:
                errors.append(ConfigError(file, exc.line, "", str(exc)))
        root.done(_IGNORED_SECTIONS)
    except FieldError as exc:
        errors.append(ConfigError(file, exc.line, "", str(exc)))
    errors.extend(_duplicate_listeners(entrypoints))
    errors.extend(_redirection_targets(entrypoints))
    located = tuple(f"{file}:{line}: {text}" for line, text in notices)
    if errors:
        return None, tuple(errors), located
    config = StaticConfig(
        path=path or file,
        entrypoints=tuple(entrypoints),
        log_level=log_level,
        **sections,  # type: ignore[arg-type]
    )
    config, internal_errors = _with_internal_entrypoint(config, file, document.line)
    for name in config.internal_entrypoints():
        try:
            entrypoint = config.entrypoint(name)
        except KeyError:
            continue  # reported above
        if entrypoint.middlewares:
            # Traefik runs them in front of api/dashboard/ping/metrics too; serving those
            # without them (a basicAuth in front of the dashboard, say) would fail open.
            message = (
                "http.middlewares: not supported yet on an entrypoint serving"
                f" {', '.join(config.internal_entrypoints()[name])}"
            )
            internal_errors.append(entrypoint.location.error(message))
    if internal_errors:
        return None, tuple(internal_errors), located
    return config, (), located


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
