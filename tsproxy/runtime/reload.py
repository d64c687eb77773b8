"""What a reload may change in the static configuration (tsproxy.yaml) of a running proxy.

Listeners live for the process, as in Traefik: a changed or removed entrypoint waits for a
restart. Safe to apply live: a new entrypoint (opened next to the others), the log level,
the providers and the default transports (serversTransport, tcpServersTransport: only the
next build reads them). Pure: the caller opens the listeners.
"""

from __future__ import annotations

from typing import List, Tuple

import attrs

from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.static import STATIC_FILE, EntryPoint, StaticConfig

__all__ = ["StaticChange", "static_change"]

# EntryPoint fields compared to tell a changed entrypoint (``location`` moves with any edit),
# with the YAML keys a message names them by.
_SETTINGS = [a.name for a in attrs.fields(EntryPoint) if a.name not in ("name", "location")]
_KEYS = {
    "host": "address",
    "port": "address",
    "protocol": "address",
    "trusted_ips": "forwardedHeaders.trustedIPs",
    "insecure_forwarded": "forwardedHeaders.insecure",
    "read_timeout": "transport.respondingTimeouts.readTimeout",
    "write_timeout": "transport.respondingTimeouts.writeTimeout",
    "idle_timeout": "transport.respondingTimeouts.idleTimeout",
    "grace_timeout": "transport.lifeCycle.graceTimeOut",
    "udp_timeout": "udp.timeout",
    "udp_max_sessions": "udp.maxSessions",
    "middlewares": "http.middlewares",
    "redirection": "http.redirections",
    "tls": "http.tls",
    "as_default": "asDefault",
    "proxy_protocol": "proxyProtocol",
}


_SECTIONS = (
    ("api", "api"),
    ("ping", "ping"),
    ("prometheus", "metrics.prometheus"),
    ("access_log", "accessLog"),
)


@attrs.frozen
class StaticChange:
    """``effective`` is the static configuration to build the new table with: the running
    entrypoints, then the ``added`` ones, and the new log level. ``restart`` says, located,
    what is written but waits for a restart."""

    effective: StaticConfig
    added: Tuple[EntryPoint, ...]
    restart: Tuple[ConfigError, ...]


def static_change(running: StaticConfig, wanted: StaticConfig) -> StaticChange:
    """Compare the static configuration in force with the one now written."""
    kept: List[EntryPoint] = []
    restart: List[ConfigError] = []
    for current in running.entrypoints:
        try:
            written = wanted.entrypoint(current.name)
        except KeyError:
            message = "removed from the file; it keeps listening until a restart"
            restart.append(Location(STATIC_FILE, 1, f"entrypoint {current.name}").error(message))
            kept.append(current)
            continue
        changed: List[str] = []
        for name in _SETTINGS:
            key = _KEYS.get(name, name)
            if getattr(written, name) != getattr(current, name) and key not in changed:
                changed.append(key)
        if changed:
            message = f"{', '.join(changed)} changed; the old settings stay until a restart"
            restart.append(written.location.error(message))
            kept.append(current)
        else:
            kept.append(written)
    known = {entrypoint.name for entrypoint in running.entrypoints}
    added = tuple(e for e in wanted.entrypoints if e.name not in known)
    for name, key in _SECTIONS:
        if getattr(wanted, name) != getattr(running, name):
            message = f"{key} changed; the old settings stay until a restart"
            restart.append(Location(STATIC_FILE, 1, "").error(message))
    # The observability sections stay as they started: their listeners and files are open.
    effective = attrs.evolve(
        running,
        path=wanted.path,
        entrypoints=tuple(kept) + added,
        log_level=wanted.log_level,
        log_format=wanted.log_format,
        providers=wanted.providers,
        servers_transport=wanted.servers_transport,
        tcp_servers_transport=wanted.tcp_servers_transport,
    )
    return StaticChange(effective, added, tuple(restart))
