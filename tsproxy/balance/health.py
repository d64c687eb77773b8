"""Server health as Traefik keeps it: the check's settings, the request a check sends, what
answer counts as healthy, the UP/DOWN state of a balancer's servers and the passive failure
window. Pure values and state machines: no clock, no socket (the checker in
tsproxy/http/healthcheck.py drives them).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple
from urllib.parse import urlsplit, urlunsplit

import attrs

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_TIMEOUT",
    "CheckRequest",
    "HealthCheckSpec",
    "PassiveHealthSpec",
    "PassiveWindow",
    "ServerStates",
    "GRPC_HEALTH_PATH",
    "GRPC_HEALTH_REQUEST",
    "check_request",
    "grpc_verdict",
    "serving_status",
    "check_target",
    "healthy_status",
    "transition_text",
]

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 5.0
DEFAULT_FAILURE_WINDOW = 10.0


@attrs.frozen(cache_hash=True)
class HealthCheckSpec:
    """Traefik's ``healthCheck`` of a load balancer, defaults applied (``status`` 0: any
    2xx or 3xx; ``port`` 0: the server's; ``scheme``/``hostname`` "": the server's)."""

    path: str
    interval: float = DEFAULT_INTERVAL
    #: Defaults to ``interval``.
    unhealthy_interval: float = attrs.field(
        default=attrs.Factory(lambda self: self.interval, takes_self=True)
    )
    timeout: float = DEFAULT_TIMEOUT
    scheme: str = ""
    mode: str = "http"
    hostname: str = ""
    port: int = 0
    headers: Tuple[Tuple[str, str], ...] = ()
    follow_redirects: bool = True
    method: str = "GET"
    status: int = 0


@attrs.frozen(cache_hash=True)
class PassiveHealthSpec:
    """Traefik's ``passiveHealthCheck``: ``max_failed_attempts`` failures within
    ``failure_window`` seconds take a server out."""

    failure_window: float = DEFAULT_FAILURE_WINDOW
    max_failed_attempts: int = 1


class TargetError(ValueError):
    """The health check path cannot be joined to the server URL."""


def check_target(server_url: str, spec: HealthCheckSpec) -> Tuple[str, str]:
    """(URL to request, Host header) of a check of ``server_url``, as Traefik builds it: the
    path (a query allowed, an absolute URL refused) on the server URL, with the scheme and
    port replaced when set; the Host is ``hostname`` when set, else the URL's host[:port]."""
    path = spec.path
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or path.startswith(":"):
        raise TargetError(f"health check path {path!r} must be a path, not a URL")
    server = urlsplit(server_url)
    scheme = spec.scheme or server.scheme
    netloc = server.netloc
    if spec.port:
        host = server.hostname or ""
        shown = f"[{host}]" if ":" in host else host
        netloc = f"{shown}:{spec.port}"
    if not parts.path.startswith("/"):
        base = server.path or "/"
        joined = base[: base.rfind("/") + 1] + parts.path
    else:
        joined = parts.path
    url = urlunsplit((scheme, netloc, joined, parts.query, ""))
    return url, spec.hostname or netloc


@attrs.frozen
class CheckRequest:
    """The request one check sends: method, URL and headers (Host first)."""

    method: str
    url: str
    headers: Tuple[Tuple[str, str], ...]


def check_request(server_url: str, spec: HealthCheckSpec) -> CheckRequest:
    """The request of a check of ``server_url`` (TargetError when the path is unusable)."""
    url, host = check_target(server_url, spec)
    headers = (("Host", host),) + tuple(
        (name, value) for name, value in spec.headers if name.lower() != "host"
    )
    return CheckRequest(spec.method, url, headers)


#: The gRPC health check's method and its request: an empty HealthCheckRequest (service ""),
#: as Traefik sends it, in one uncompressed length-prefixed message.
GRPC_HEALTH_PATH = "/grpc.health.v1.Health/Check"
GRPC_HEALTH_REQUEST = b"\x00\x00\x00\x00\x00"
_SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


class _Truncated(ValueError):
    pass


def _varint(data: bytes, position: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise _Truncated()
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def serving_status(message: bytes) -> int:
    """The ``status`` (field 1) of a protobuf HealthCheckResponse; 0 (UNKNOWN) when absent.
    ValueError for bytes that are no protobuf message."""
    status, position = 0, 0
    while position < len(message):
        key, position = _varint(message, position)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(message, position)
            if field == 1:
                status = value
        elif wire == 2:
            length, position = _varint(message, position)
            position += length
        elif wire in (1, 5):
            position += 8 if wire == 1 else 4
        else:
            raise ValueError(f"protobuf wire type {wire}")
        if position > len(message):
            raise _Truncated()
    return status


def grpc_verdict(http_status: int, grpc_status: str, body: bytes) -> Tuple[bool, str]:
    """(healthy, why) of a gRPC health check's answer: HTTP 200, grpc-status 0 and one
    uncompressed HealthCheckResponse whose status is SERVING."""
    if http_status != 200:
        return False, f"gRPC health check answered HTTP {http_status}"
    if grpc_status != "0":
        return False, f"gRPC health check failed: grpc-status {grpc_status or 'missing'}"
    if len(body) < 5 or body[0] != 0:
        return False, "gRPC health check: no uncompressed response message"
    length = int.from_bytes(body[1:5], "big")
    if len(body) != 5 + length:
        return False, "gRPC health check: malformed response message"
    try:
        status = serving_status(body[5:])
    except ValueError:
        return False, "gRPC health check: malformed response message"
    if status != 1:
        name = _SERVING_STATUS.get(status, str(status))
        return False, f"received gRPC status code: {name}"
    return True, "gRPC health check: SERVING"


def healthy_status(code: int, expected: int) -> bool:
    """Traefik's verdict on a check's answer: ``expected`` exactly when set, else 2xx/3xx."""
    if expected:
        return code == expected
    return 200 <= code < 400


@attrs.define
class ServerStates:
    """UP/DOWN per server key of one balancer; every server starts UP, as in Traefik v3."""

    keys: Tuple[str, ...]
    _down: Dict[str, bool] = attrs.field(factory=dict)

    def up(self, key: str) -> bool:
        return key not in self._down

    def any_up(self) -> bool:
        return len(self._down) < len(self.keys)

    def any_down(self) -> bool:
        return bool(self._down)

    def down_keys(self) -> Tuple[str, ...]:
        return tuple(key for key in self.keys if key in self._down)

    def up_keys(self) -> Tuple[str, ...]:
        return tuple(key for key in self.keys if key not in self._down)

    def set(self, key: str, up: bool) -> bool:
        """Record a verdict; True when it changes the server's state (a transition)."""
        if key not in self.keys or up == self.up(key):
            return False
        if up:
            del self._down[key]
        else:
            self._down[key] = True
        return True

    def status(self) -> Dict[str, str]:
        """Traefik's ``serverStatus``: key -> "UP" or "DOWN"."""
        return {key: "UP" if self.up(key) else "DOWN" for key in self.keys}


@attrs.define
class PassiveWindow:
    """Failures of proxied requests per server within a sliding window (``now`` in seconds).

    ``failure`` says when a server has reached ``max_failed_attempts`` within the window; a
    success forgets the server's failures, as Traefik's passive check does.
    """

    spec: PassiveHealthSpec
    _failures: Dict[str, List[float]] = attrs.field(factory=dict)

    def failure(self, key: str, now: float) -> bool:
        """Count one failure at ``now``; True when the server is to be taken out."""
        window = self.spec.failure_window
        recent = [t for t in self._failures.get(key, ()) if now - t < window]
        recent.append(now)
        if len(recent) >= self.spec.max_failed_attempts:
            self._failures.pop(key, None)
            return True
        self._failures[key] = recent
        return False

    def success(self, key: str) -> None:
        self._failures.pop(key, None)

    def pending(self) -> Sequence[str]:
        return tuple(self._failures)


def transition_text(service: str, key: str, up: bool, why: str) -> str:
    """The log line of a server's transition."""
    return "%s: server %s is %s (%s)" % (service, key, "UP" if up else "DOWN", why)
