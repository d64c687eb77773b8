"""The static configuration (tsproxy.yaml, Traefik's static format): entrypoints, log level,
the observability sections (api, ping, metrics.prometheus, accessLog) and the default
transports (serversTransport, tcpServersTransport).

Pure: parses text given to it (the CA files the transports name are read through the
``read_file`` given). Any error here is fatal, since the proxy cannot start without it.
"""

from __future__ import annotations

from typing import Sequence, Union

import attrs

from tsproxy.config.entrypoints import (
    _NOT_YET,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_HEADERS,
    DEFAULT_UDP_MAX_SESSIONS,
    ENCODED_CHARACTERS,
    REDIRECTION_PRIORITY,
    STATIC_FILE,
    EntryPoint,
    Redirection,
    _duplicate_listeners,
    _parse_entrypoint,
    _redirection_targets,
    parse_address,
)
from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.providers import ProvidersConfig, parse_providers
from tsproxy.config.resources import TransportSettings
from tsproxy.config.schema import FieldError, Fields
from tsproxy.config.tomlio import load_toml
from tsproxy.config.transports import (
    ReadFile,
    TCPTransportSettings,
    parse_servers_transport,
    parse_tcp_servers_transport,
)
from tsproxy.config.yamlio import load_documents

__all__ = [
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_HEADER_BYTES",
    "DEFAULT_UDP_MAX_SESSIONS",
    "ENCODED_CHARACTERS",
    "REDIRECTION_PRIORITY",
    "STATIC_FILE",
    "EntryPoint",
    "Redirection",
    "StaticConfig",
    "parse_address",
    "parse_static",
]

#: The static configuration file names read in the configuration directory (one of them).
STATIC_FILES = (STATIC_FILE, "traefik.yml", "traefik.yaml", "traefik.toml")

# Top-level sections Traefik's static configuration has and we do not act on yet.
_IGNORED_SECTIONS = {
    name: _NOT_YET
    for name in (
        "global",
        "certificatesResolvers",
        "experimental",
        "tracing",
        "hostResolver",
        "spiffe",
        "hub",
        "ocsp",
    )
}
#: The entrypoint Traefik serves api, dashboard, ping and metrics on, and its default address.
INTERNAL_ENTRYPOINT = "traefik"
INTERNAL_DEFAULT_PORT = 8080
DEFAULT_BUCKETS = (0.1, 0.3, 1.2, 5.0)
_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "PANIC")


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
    log_format: str = "common"
    api: APIConfig | None = None
    ping: PingConfig | None = None
    prometheus: PrometheusConfig | None = None
    access_log: AccessLogConfig | None = None
    providers: ProvidersConfig = ProvidersConfig()
    #: Traefik's default transports (``default@internal``): what every HTTP service, mirror
    #: and health check naming no serversTransport uses, and every TCP service.
    servers_transport: TransportSettings = TransportSettings()
    tcp_servers_transport: TCPTransportSettings = TCPTransportSettings()

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


# http.* options of an entrypoint that do not change what reaches a backend.


def _parse_log(root: Fields) -> tuple[str, str]:
    """``log.level`` and ``log.format`` (Traefik's ``common`` text lines or ``json``)."""
    log = root.mapping("log")
    if log is None:
        return "INFO", "common"
    level = log.string("level", "INFO")
    if level.upper() not in _LOG_LEVELS:
        raise log.fail("level", "must be one of: " + ", ".join(_LOG_LEVELS))
    fmt = log.string("format", "common", choices=("common", "json"))
    log.done({name: _NOT_YET for name in ("filePath", "noColor", "maxSize")})
    return level.upper(), fmt


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


def parse_static(
    text: str | None, file: str = STATIC_FILE, path: str = "", read_file: ReadFile = None
) -> StaticResult:
    """Parse tsproxy.yaml text (None: the file is absent) into (config or None, errors, notices).

    Errors from every entrypoint are collected; any error means no configuration.
    ``read_file`` reads the files the transports' ``rootCAs`` name (relative to the
    configuration directory); without it a file path there is an error.
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
    log_level, log_format = "INFO", "common"
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
        log_level, log_format = _parse_log(root)
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
            ("servers_transport", lambda r: parse_servers_transport(r, read_file)),
            ("tcp_servers_transport", lambda r: parse_tcp_servers_transport(r, read_file)),
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
        log_format=log_format,
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
        if entrypoint.tls is not None:
            # Traefik serves them over TLS only there; served in clear here, they would not
            # be what the file asks for.
            message = (
                "http.tls: not supported yet on an entrypoint serving"
                f" {', '.join(config.internal_entrypoints()[name])}"
            )
            internal_errors.append(entrypoint.location.error(message))
    if internal_errors:
        return None, tuple(internal_errors), located
    return config, (), located
