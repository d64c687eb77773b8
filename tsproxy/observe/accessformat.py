"""The access log's lines: one HTTP exchange in Traefik's common (CLF) or JSON format, with
``accessLog.fields`` applied; pure formatting, the writing is ``accesslog``'s.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Dict, List, Tuple

from tsproxy.observe.metrics import qualified

if TYPE_CHECKING:
    from tsproxy.config.static import AccessLogFields
    from tsproxy.observe.record import Exchange

REDACTED = "REDACTED"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def canonical_header(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey: ``user-agent`` → ``User-Agent``; a name with a byte that
    is not a token character is left as it is."""
    if not name or any(c not in _TOKEN for c in name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


class FieldModes:
    """``accessLog.fields`` as Traefik applies them: a core field is kept unless its mode (or
    the default mode) is drop (Traefik has no redaction for core fields: redact keeps);
    headers are kept, dropped or redacted, field names matched case-insensitively and header
    names in canonical form."""

    def __init__(self, fields: AccessLogFields) -> None:
        self.default_keep = fields.default_mode != "drop"
        self.names = {name.lower(): mode for name, mode in fields.names}
        self.header_default = fields.headers_default_mode
        self.headers = {canonical_header(name): mode for name, mode in fields.headers}
        #: Any header can show up in the log: worth looking at the headers at all.
        self.any_header = self.header_default != "drop" or any(
            mode != "drop" for mode in self.headers.values()
        )
        self._keep: Dict[str, bool] = {}
        #: Every core field kept and no header: the common line can skip the field table.
        self.plain = self.default_keep and not self.names and not self.any_header

    def keep(self, field: str) -> bool:
        kept = self._keep.get(field)
        if kept is None:
            mode = self.names.get(field.lower())
            if mode == "keep":
                kept = True
            elif mode == "drop":
                kept = False
            else:
                kept = self.default_keep
            self._keep[field] = kept
        return kept

    def header(self, name: str) -> str:
        return self.headers.get(name, self.header_default)


def _split_host_port(value: str) -> Tuple[str, str]:
    """Go's SplitHostPort, or (value, "-") when it fails (Traefik's silentSplitHostPort)."""
    if value.startswith("["):
        end = value.find("]")
        if end > 0 and value[end + 1 : end + 2] == ":" and ":" not in value[end + 2 :]:
            return value[1:end], value[end + 2 :]
        return value, "-"
    host, sep, port = value.rpartition(":")
    if not sep or ":" in host:
        return value, "-"
    return host, port


def _path(target: bytes) -> str:
    """The request path and query as Traefik logs it (an absolute-form target loses its
    scheme and authority)."""
    text = target.decode("utf-8", "replace")
    if not text.startswith("/") and "://" in text:
        rest = text.split("://", 1)[1]
        slash = rest.find("/")
        query = rest.find("?")
        cut = min(i for i in (slash, query, len(rest)) if i >= 0)
        text = rest[cut:]
        if not text.startswith("/"):
            text = "/" + text
    return text


def entry_fields(rec: Exchange, count: int) -> Dict[str, Any]:
    """Traefik's core access-log fields for one exchange, all of them (the caller filters).

    Times stay as clock seconds (``StartUTC``, ``StartLocal``) and durations are
    nanoseconds, as Go's time.Duration marshals.
    """
    duration = int(rec.duration * 1e9)
    ip = rec.client_ip
    port = str(rec.client_port)
    client_host = ip
    if rec.trusted:
        forwarded = rec.header(b"x-forwarded-for")
        if forwarded:
            client_host = forwarded.decode("latin-1")
    fields: Dict[str, Any] = {
        "StartUTC": rec.start,
        "StartLocal": rec.start,
        "Duration": duration,
        "Overhead": duration,
        "ClientAddr": ("[%s]:%s" if ":" in ip else "%s:%s") % (ip, port),
        "ClientHost": client_host,
        "ClientPort": port,
        "ClientUsername": "-",
        "RequestMethod": rec.method.decode("utf-8", "replace"),
        "RequestPath": _path(rec.target),
        "RequestProtocol": rec.version.decode("latin-1"),
        "RequestScheme": "https" if rec.tls else "http",
        "RequestContentSize": rec.request_bytes,
        "DownstreamStatus": rec.status,
        "DownstreamContentSize": rec.response_bytes,
        "RequestCount": count,
        "RetryAttempts": 0,
        "entryPointName": rec.entrypoint,
    }
    host = rec.header(b"host")
    if host:
        addr = host.decode("utf-8", "replace")
        fields["RequestAddr"] = addr
        fields["RequestHost"], fields["RequestPort"] = _split_host_port(addr)
    if rec.router:
        fields["RouterName"] = qualified(rec.router)
    if rec.server_url:
        # The fields Traefik's per-server handler adds: only once a server was picked. Its
        # proxy error answers (502, 504) are written inside that handler, hence origin ones.
        origin = int(rec.origin_duration * 1e9) if rec.origin_duration >= 0 else 0
        fields["ServiceURL"] = rec.server_url
        fields["ServiceAddr"] = rec.server_url.split("://", 1)[-1]
        if rec.services:
            fields["ServiceName"] = qualified(rec.services[-1])
        fields["OriginStatus"] = rec.origin_status or rec.status
        fields["OriginContentSize"] = rec.response_bytes
        fields["OriginDuration"] = origin
        fields["Overhead"] = duration - origin
    return fields


def _header_fields(rec: Exchange, modes: FieldModes, fields: Dict[str, Any]) -> None:
    """Add ``request_<Name>``, ``origin_<Name>`` and ``downstream_<Name>`` per the header
    modes (values of a repeated header joined with commas)."""
    for prefixes, headers in (
        (("request_",), rec.headers),
        (("origin_", "downstream_"), rec.response_headers),
    ):
        seen: Dict[str, List[str]] = {}
        for raw_name, raw_value in headers:
            name = canonical_header(raw_name.decode("latin-1"))
            if name == "Host" and prefixes[0] == "request_":
                continue  # Go keeps Host out of the header map (it is RequestAddr)
            seen.setdefault(name, []).append(raw_value.decode("utf-8", "replace"))
        for name, values in seen.items():
            mode = modes.header(name)
            if mode == "drop":
                continue
            value = REDACTED if mode == "redact" else ",".join(values)
            for prefix in prefixes:
                fields[prefix + name] = value


def _kept(rec: Exchange, count: int, modes: FieldModes) -> Dict[str, Any]:
    fields = entry_fields(rec, count)
    if not modes.default_keep or modes.names:
        fields = {k: v for k, v in fields.items() if modes.keep(k)}
    if modes.any_header:
        _header_fields(rec, modes, fields)
    return fields


def _offset(seconds: int, colon: bool, zulu: bool) -> str:
    if seconds == 0 and zulu:
        return "Z"
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    sep = ":" if colon else ""
    return "%s%02d%s%02d" % (sign, seconds // 3600, sep, seconds % 3600 // 60)


def _struct(t: float, local: bool) -> Tuple[time.struct_time, int]:
    whole = int(t // 1)
    if local:
        tm = time.localtime(whole)
        return tm, tm.tm_gmtoff or 0
    return time.gmtime(whole), 0


#: The last UTC second clf_time formatted, and its text (requests come many per second).
_last_clf: List[Any] = [None, ""]


def clf_time(t: float, local: bool = False) -> str:
    """``10/Nov/2009:23:00:00 +0000`` (Go's layout 02/Jan/2006:15:04:05 -0700)."""
    if not local:
        second = int(t // 1)
        if _last_clf[0] == second:
            return str(_last_clf[1])
        text = _clf_time(t, False)
        _last_clf[:] = [second, text]
        return text
    return _clf_time(t, True)


def _clf_time(t: float, local: bool) -> str:
    tm, offset = _struct(t, local)
    return "%02d/%s/%04d:%02d:%02d:%02d %s" % (
        tm.tm_mday,
        _MONTHS[tm.tm_mon - 1],
        tm.tm_year,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        _offset(offset, False, False),
    )


def rfc3339(t: float, local: bool = False, fraction: bool = True) -> str:
    """Go's RFC3339Nano (trailing zeros of the fraction dropped) or RFC3339."""
    tm, offset = _struct(t, local)
    text = "%04d-%02d-%02dT%02d:%02d:%02d" % tuple(tm[:6])
    if fraction:
        micros = int((t - int(t // 1)) * 1e6)
        if micros:
            text += ("." + "%06d" % micros).rstrip("0")
    return text + _offset(offset, True, True)


def _to_log(fields: Dict[str, Any], key: str, default: str, quoted: bool) -> str:
    """Traefik's toLog: absent or empty → ``default``; strings quoted if asked; numbers as is."""
    value = fields.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        if not value:
            return default
        return '"%s"' % value if quoted else value
    return str(value)


def common_line(rec: Exchange, count: int, modes: FieldModes) -> str:
    """Traefik's common log format line (with its newline)."""
    if modes.plain:
        return _plain_common_line(rec, count)
    fields = _kept(rec, count, modes)
    if "StartUTC" in fields:
        timestamp = clf_time(fields["StartUTC"])
    elif "StartLocal" in fields:
        timestamp = clf_time(fields["StartLocal"], local=True)
    else:
        timestamp = "-"
    millis = fields.get("Duration", 0) // 1000000
    return '%s - %s [%s] "%s %s %s" %s %s %s %s %s %s %s %dms\n' % (
        _to_log(fields, "ClientHost", "-", False),
        _to_log(fields, "ClientUsername", "-", False),
        timestamp,
        _to_log(fields, "RequestMethod", "-", False),
        _to_log(fields, "RequestPath", "-", False),
        _to_log(fields, "RequestProtocol", "-", False),
        _to_log(fields, "DownstreamStatus", "-", True),
        _to_log(fields, "DownstreamContentSize", "-", True),
        _to_log(fields, "request_Referer", '"-"', True),
        _to_log(fields, "request_User-Agent", '"-"', True),
        _to_log(fields, "RequestCount", "-", True),
        _to_log(fields, "RouterName", '"-"', True),
        _to_log(fields, "ServiceURL", '"-"', True),
        millis,
    )


def _plain_common_line(rec: Exchange, count: int) -> str:
    """common_line with the default fields (all core fields, no header): the same line,
    without building the field table (the access log's usual case, once per request)."""
    client = rec.client_ip
    if rec.trusted:
        forwarded = rec.header(b"x-forwarded-for")
        if forwarded:
            client = forwarded.decode("latin-1")
    if rec.server_url:
        url = '"%s"' % rec.server_url
    else:
        url = '"-"'
    return '%s - - [%s] "%s %s %s" %d %d "-" "-" %d %s %s %dms\n' % (
        client or "-",
        clf_time(rec.start),
        rec.method.decode("utf-8", "replace") or "-",
        _path(rec.target) or "-",
        rec.version.decode("latin-1") or "-",
        rec.status,
        rec.response_bytes,
        count,
        '"%s"' % qualified(rec.router) if rec.router else '"-"',
        url,
        int(rec.duration * 1e9) // 1000000,
    )


_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def json_line(rec: Exchange, count: int, modes: FieldModes) -> str:
    """Traefik's JSON line (logrus' JSONFormatter: sorted keys, HTML-safe escapes, ``level``,
    ``msg`` and ``time`` added) with its newline."""
    fields = _kept(rec, count, modes)
    if "StartUTC" in fields:
        fields["StartUTC"] = rfc3339(fields["StartUTC"])
    if "StartLocal" in fields:
        fields["StartLocal"] = rfc3339(fields["StartLocal"], local=True)
    fields["level"] = "info"
    fields["msg"] = ""
    fields["time"] = rfc3339(rec.start + rec.duration, local=True, fraction=False)
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    for char, escape in _GO_ESCAPES:
        if char in text:
            text = text.replace(char, escape)
    return text + "\n"
