"""What every API document shares: the provider name, statuses, the answer value, and
Go-compatible JSON and durations (as Traefik encodes them). Pure."""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Dict, Mapping, Tuple

import attrs

from tsproxy import providers

#: The provider every router and service of tsproxy comes from, as Traefik names it.
PROVIDER = "kubernetescrd"
DEFAULT_PER_PAGE = 100
NEXT_PAGE = "X-Next-Page"
JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
ENABLED = "enabled"
DISABLED = "disabled"
WARNING = "warning"
#: What Traefik's API uses for a router TLS section without options.
DEFAULT_TLS_OPTIONS = "default"

Document = Dict[str, Any]
Stats = Mapping[str, Any]


def qualified(name: str) -> str:
    """``name@provider``: how Traefik's API and metrics name a router or service (a bare
    table name is the Kubernetes CRD provider's, see tsproxy.providers)."""
    return providers.qualified(name)


@attrs.frozen
class APIAnswer:
    """One API response: status, body bytes, Content-Type ("" for none), other headers."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: Tuple[Tuple[str, str], ...] = ()


# -- encoding ------------------------------------------------------------------------------

_HTML_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028"}
_HTML_UNSAFE["\u2029"] = "\\u2029"
_UNSAFE = re.compile("[<>&\u2028\u2029]")


def go_json(value: Any) -> bytes:
    """``value`` as Go's json.Encoder writes it: compact, HTML characters escaped, a newline."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # "replace": a lone surrogate from undecodable input becomes "?" rather than an error.
    return (_UNSAFE.sub(lambda m: _HTML_UNSAFE[m.group()], text) + "\n").encode("utf-8", "replace")


def _fraction(value: int, digits: int) -> str:
    """``value / 10**digits`` in decimal, without trailing zeros (Go's fmtFrac/fmtInt)."""
    whole, rest = divmod(value, 10**digits)
    decimals = str(rest).rjust(digits, "0").rstrip("0")
    return f"{whole}.{decimals}" if decimals else str(whole)


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration.String writes it: ``0s``, ``500ms``, ``1m0s``."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_fraction(ns, 3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_fraction(ns, 6)}ms"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    return f"{sign}{text}{_fraction(rest, 9)}s"


Sorts = Mapping[str, Callable[[Document], Any]]
