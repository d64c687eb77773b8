"""The access log: one line per HTTP exchange in Traefik's common or JSON format.

Lines are formatted in the reactor thread and collected; a batch (``bufferingSize`` lines, or
what one reactor turn produced when that is 0, or whatever is waiting after a second) goes to
a writer thread, so a slow disk or a blocked stdout never holds a request. The writer's queue
is bounded: past it, batches are dropped and counted rather than kept in memory.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from tsproxy.logs import get_logger
from tsproxy.observe.metrics import qualified

if TYPE_CHECKING:
    from tsproxy.config.static import AccessLogConfig, AccessLogFields
    from tsproxy.observe.record import Exchange

__all__ = [
    "AccessLog",
    "FieldModes",
    "canonical_header",
    "common_line",
    "entry_fields",
    "json_line",
]

log = get_logger(__name__)

#: Seconds a line may wait in the buffer before it is handed to the writer.
FLUSH_INTERVAL = 1.0
#: Without bufferingSize, lines are handed over this soon: often enough to read as "at
#: once", rarely enough that waking the writer thread (and the GIL hand-off) is not paid
#: per reactor turn under load.
UNBUFFERED_DELAY = 0.02
#: Batches the writer thread may have waiting before new ones are dropped.
MAX_PENDING_BATCHES = 1024
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


def _open(path: str) -> int:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o664)


_REOPEN = object()
_STOP = object()


class _Writer:
    """The thread that owns the file descriptor and writes batches in order."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = _open(path) if path else 1
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=MAX_PENDING_BATCHES)
        self.thread = threading.Thread(target=self._run, name="tsproxy-access-log", daemon=True)
        self.thread.start()

    def submit(self, item: Any) -> bool:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            return False
        return True

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is _STOP:
                    return
                if item is _REOPEN:
                    self._reopen()
                else:
                    self._write(item)
            finally:
                self.queue.task_done()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as e:
            log.error("access log {path}: write failed: {e}", path=self.path or "stdout", e=e)

    def _reopen(self) -> None:
        if not self.path:
            return
        try:
            fd = _open(self.path)
        except OSError as e:
            log.error("access log {path}: cannot reopen: {e}", path=self.path, e=e)
            return
        old, self.fd = self.fd, fd
        os.close(old)

    def stop(self, timeout: float) -> None:
        """Write what is queued and end the thread, within ``timeout`` seconds; a writer stuck
        on its destination (a full pipe, a hung disk) is left behind as a daemon thread."""
        deadline = time.monotonic() + timeout
        try:
            self.queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.error(
                "access log {path}: writer stuck, {n} batches not written",
                path=self.path or "stdout",
                n=self.queue.qsize(),
            )
            return
        self.thread.join(max(0.0, deadline - time.monotonic()))
        if self.thread.is_alive():
            log.error("access log {path}: writer stuck at shutdown", path=self.path or "stdout")
        elif self.path:
            os.close(self.fd)


class AccessLog:
    """Writes one line per exchange to ``config.file_path`` (stdout when "").

    ``reactor`` schedules the flushes (a Clock in tests). Opening the file happens here, so a
    path that cannot be written fails at startup (OSError).
    """

    def __init__(self, config: AccessLogConfig, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        self.modes = FieldModes(config.fields)
        self.format: Callable[[Exchange, int, FieldModes], str] = (
            json_line if config.format == "json" else common_line
        )
        self.limit = max(config.buffering_size, 0)
        self.count = 0
        self.dropped = 0
        self.lines: List[str] = []
        self.timer: Any = None
        self.writer: Optional[_Writer] = _Writer(config.file_path)

    def log(self, rec: Exchange) -> None:
        """Format the line now; write it with its batch later, in the writer thread."""
        self.count += 1
        try:
            line = self.format(rec, self.count, self.modes)
        except Exception:
            log.failure("access log: cannot format an exchange")
            return
        lines = self.lines
        lines.append(line)
        if self.limit and len(lines) >= self.limit:
            self.flush()
        elif self.timer is None:
            # Unbuffered: within UNBUFFERED_DELAY, so a burst's lines make one write.
            delay = FLUSH_INTERVAL if self.limit else UNBUFFERED_DELAY
            self.timer = self.reactor.callLater(delay, self._timed_flush)

    def _timed_flush(self) -> None:
        self.timer = None
        self.flush()

    def flush(self) -> None:
        """Hand the lines waiting to the writer thread (never waits for it)."""
        timer, self.timer = self.timer, None
        if timer is not None and timer.active():
            timer.cancel()
        lines = self.lines
        if not lines or self.writer is None:
            return
        self.lines = []
        data = "".join(lines).encode("utf-8", "replace")
        if not self.writer.submit(data):
            self.dropped += len(lines)
            log.warn(
                "access log: writer behind, {n} lines dropped ({total} in all)",
                n=len(lines),
                total=self.dropped,
            )

    def reopen(self) -> None:
        """Reopen the file at its path (after a log rotation moved it): lines logged before
        this go to the old file, later ones to the new."""
        self.flush()
        if self.writer is not None and not self.writer.submit(_REOPEN):
            log.error("access log: writer behind, cannot reopen now")

    def sync(self, timeout: float = 10.0) -> bool:
        """Flush and wait (at most ``timeout`` seconds) until the writer thread has written
        everything; whether it did."""
        self.flush()
        writer = self.writer
        if writer is None:
            return True
        deadline = time.monotonic() + timeout
        while writer.queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Write what is left and stop the writer thread (waits at most ``timeout``)."""
        self.flush()
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.stop(timeout)
