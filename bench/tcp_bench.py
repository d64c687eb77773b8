#!/usr/bin/env python3
"""TCP throughput benchmark: redis-benchmark against redis-server directly, through HAProxy
`mode tcp` and through tsproxy's IngressRouteTCP relay, in one run.

One redis-server (127.0.0.1, no persistence) and redis-benchmark share core 1; the proxy under
test runs alone on core 0 (`taskset -c 0`), as in shared/reference/perf-anchors.md. Rows:
redis direct (the ceiling of core 1), HAProxy `mode tcp` (nbthread 1), tsproxy on CPython and,
if a PyPy venv is given or found, tsproxy on PyPy: an entrypoint with one IngressRouteTCP
`HostSNI(`*`)` (so each connection is routed at accept) to a Service whose Endpoints are the
redis-server. Each row is checked first (PING; a SET through the row must be readable from the
redis-server itself and through the row), warmed up, then measured with
`redis-benchmark -t get,set -n N -c 50 -P 1 -q --csv` and, pipelined, with `-P 16`:
requests/s of SET and GET, the proxy's CPU % and RSS, and the ratio to HAProxy in the same
run. Compare ratios, not absolute numbers.

Safety bounds: 127.0.0.1 only, free ports picked by binding port 0; every redis-benchmark run
is bounded by `timeout` (--max-seconds); every process is started here in its own session and
stopped by its PID (process group) on any exit (normal, error, Ctrl-C, SIGTERM); the run
directory is removed unless --keep. Once --budget seconds have passed, measurements are no
longer repeated or delayed for a busy machine. Python 3 standard library only; reuses the
process, CPU and table helpers of http_bench.py.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pstats
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Optional

from http_bench import (
    LOAD_CORE,
    LOOPBACK,
    MAX_ATTEMPTS,
    PROXY_CORE,
    REPO_ROOT,
    CpuWindow,
    Processes,
    _fmt,
    _median,
    _tail,
    add_interpreter_args,
    check_tsproxy_installed,
    free_ports,
    guarded,
    install_signal_handlers,
    markdown_table,
    measure_quietest,
    pypy_python,
    rss_mb,
    tree,
    versions,
)

INSTALL = "apt-get install -y --no-install-recommends redis-server redis-tools haproxy"
TOOLS = {
    "redis-server": ["redis-server", "--version"],
    "redis-benchmark": ["redis-benchmark", "--version"],
    "haproxy": ["haproxy", "-v"],
}
TESTS = ("SET", "GET")  # the order redis-benchmark runs `-t get,set` in


# ---------------------------------------------------------------- RESP checks


def redis_call(port: int, *words: str, timeout: float = 2.0) -> Optional[bytes]:
    """One command on a fresh connection to 127.0.0.1:port.

    Returns a bulk reply's bytes (None for nil), or a status/error/integer reply's line
    (b"+OK", b"-ERR ...", b":1").
    """
    request = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        request.append(b"$%d\r\n%s\r\n" % (len(data), data))
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        sock.sendall(b"".join(request))
        reply = sock.makefile("rb")
        line = reply.readline()
        if not line.endswith(b"\r\n"):
            raise OSError(f"connection closed mid-reply ({line!r})")
        if line.startswith(b"$"):
            size = int(line[1:])
            return None if size < 0 else reply.read(size + 2)[:size]
        return line[:-2]


def wait_redis(proc: Optional[subprocess.Popen], port: int, timeout: float) -> None:
    """Poll (bounded) until PING through port answers +PONG, or the process exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with code {proc.returncode} before answering PING")
        try:
            reply = redis_call(port, "PING", timeout=1.0)
            if reply == b"+PONG":
                return
            last = repr(reply)
        except (OSError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    raise RuntimeError(f"no PONG on port {port} after {timeout:.0f}s ({last})")


def check_row(port: int, redis_port: int) -> str:
    """SET a fresh value through the row; it must be in the redis-server under test and come
    back through the row (so the row reaches this redis, not some other listener)."""
    key, value = f"tcpbench:check:{port}", os.urandom(8).hex()
    steps = [
        (f"SET through :{port}", port, ("SET", key, value), b"+OK"),
        (f"GET from redis :{redis_port}", redis_port, ("GET", key), value.encode()),
        (f"GET through :{port}", port, ("GET", key), value.encode()),
    ]
    for what, target, words, expected in steps:
        reply = redis_call(target, *words)
        if reply != expected:
            raise RuntimeError(f"check failed: {what} answered {reply!r}, expected {expected!r}")
    redis_call(redis_port, "DEL", key)
    return "PING, SET, GET ok"


# ---------------------------------------------------------------- redis-benchmark


@dataclass
class Measurement:
    """One redis-benchmark run (SET then GET) and what the proxy used meanwhile."""

    pipeline: int
    requests: int  # per test
    set_rps: Optional[float] = None
    get_rps: Optional[float] = None
    set_p50_ms: Optional[float] = None
    get_p50_ms: Optional[float] = None
    set_p99_ms: Optional[float] = None
    get_p99_ms: Optional[float] = None
    wall_s: Optional[float] = None
    cpu_pct: Optional[float] = None  # of the measured process tree; 100 = one core
    rss_mb: Optional[float] = None
    foreign_cpu_pct: float = 0.0
    core0_idle_pct: Optional[float] = None
    per_core: Optional[float] = None  # requests (SET+GET) per CPU-second of the measured tree
    attempts: int = 1
    ratio_set: Optional[float] = None  # ÷ HAProxy's, same round and pipeline depth
    ratio_get: Optional[float] = None
    ratio_per_core: Optional[float] = None


def parse_csv(text: str) -> Dict[str, Dict[str, float]]:
    """redis-benchmark --csv output -> {"SET": {"rps": ..., "p99_latency_ms": ...}, ...}."""
    header: List[str] = []
    found: Dict[str, Dict[str, float]] = {}
    for cells in csv.reader(line for line in text.splitlines() if line.startswith('"')):
        if cells and cells[0] == "test":
            header = cells
        elif header and cells and cells[0] in TESTS and len(cells) == len(header):
            found[cells[0]] = {name: float(v) for name, v in zip(header[1:], cells[1:])}
    return found


def run_benchmark(
    procs: Processes,
    run_dir: Path,
    port: int,
    requests: int,
    pipeline: int,
    args: argparse.Namespace,
    measured_pid: Optional[int],
) -> Measurement:
    """redis-benchmark on core 1, bounded by `timeout`; samples /proc around it."""
    argv = [
        "taskset",
        "-c",
        LOAD_CORE,
        "timeout",
        "-k",
        "5",
        str(args.max_seconds),
        "redis-benchmark",
        "-h",
        LOOPBACK,
        "-p",
        str(port),
        "-t",
        "get,set",
        "-n",
        str(requests),
        "-c",
        str(args.clients),
        "-P",
        str(pipeline),
        "-q",
        "--csv",
    ]
    out_path = run_dir / "redis-benchmark.out"
    out_path.write_bytes(b"")
    window = CpuWindow()
    proc = procs.start(argv, out_path)
    try:
        proc.wait(timeout=args.max_seconds + 15)
    finally:
        procs.stop(proc)
    window.close()
    text = out_path.read_text(errors="replace")
    if proc.returncode != 0:
        why = (
            f"did not finish {requests} requests per test within {args.max_seconds}s"
            if proc.returncode in (124, 137, -9)
            else f"exited with code {proc.returncode}"
        )
        raise RuntimeError(f"redis-benchmark -P {pipeline} {why}:\n{text[-1000:]}")
    results = parse_csv(text)
    missing = [t for t in TESTS if t not in results]
    if missing:
        raise RuntimeError(f"redis-benchmark printed no {'/'.join(missing)} line:\n{text[-1000:]}")
    m = Measurement(pipeline, requests)
    m.set_rps, m.get_rps = results["SET"]["rps"], results["GET"]["rps"]
    m.set_p50_ms, m.get_p50_ms = (results[t].get("p50_latency_ms") for t in TESTS)
    m.set_p99_ms, m.get_p99_ms = (results[t].get("p99_latency_ms") for t in TESTS)
    m.wall_s, m.foreign_cpu_pct = window.wall, window.foreign_pct
    m.core0_idle_pct = window.core_idle_pct
    if measured_pid is not None:
        m.cpu_pct = window.cpu_pct(measured_pid)
        m.rss_mb = rss_mb(tree(window.end_snap, measured_pid))
        if m.cpu_pct:
            m.per_core = 2 * requests / (m.cpu_pct / 100.0 * window.wall)
    return m


# ---------------------------------------------------------------- configurations


def haproxy_conf(port: int, redis_port: int) -> str:
    return f"""# HAProxy peer: one thread, plain TCP relay to one redis-server.
global
    nbthread 1
    maxconn 4000

defaults
    mode tcp
    timeout connect 5s
    timeout client  30s
    timeout server  30s

frontend redis_in
    bind {LOOPBACK}:{port}
    default_backend redis

backend redis
    server r1 {LOOPBACK}:{redis_port}
"""


def tsproxy_static_yaml(port: int) -> str:
    return f"""entryPoints:
  redis:
    address: "{LOOPBACK}:{port}"
log:
  level: ERROR
"""


def tsproxy_routes_yaml(redis_port: int) -> str:
    return f"""apiVersion: v1
kind: Service
metadata: {{name: redis, namespace: default}}
spec:
  ports:
    - {{name: redis, port: 6379}}
---
apiVersion: v1
kind: Endpoints
metadata: {{name: redis, namespace: default}}
subsets:
  - addresses: [{{ip: {LOOPBACK}}}]
    ports: [{{name: redis, port: {redis_port}}}]
---
apiVersion: traefik.io/v1alpha1
kind: IngressRouteTCP
metadata: {{name: redis, namespace: default}}
spec:
  entryPoints: [redis]
  routes:
    - match: HostSNI(`*`)
      services:
        - {{name: redis, port: 6379}}
"""


# ---------------------------------------------------------------- rows


@dataclass
class Row:
    setup: str
    status: str = "ok"  # ok | broken (reason says why; what was measured is kept)
    reason: str = ""
    check: str = ""
    command: str = ""
    measurements: List[Measurement] = field(default_factory=list)
    rounds: List[Row] = field(default_factory=list)  # summary rows only: the rounds' rows

    def at(self, pipeline: int) -> Optional[Measurement]:
        return next((m for m in self.measurements if m.pipeline == pipeline), None)


@dataclass
class Target:
    setup: str
    kind: str  # direct | haproxy | tsproxy
    port: int
    warmup_requests: int
    python: Optional[str] = None  # tsproxy rows: the interpreter that runs it
    profile: Optional[Path] = None  # tsproxy rows: run under cProfile, stats written here


class Bench:
    """The redis-server (shared by all rows) and the rows, run one at a time on core 0."""

    def __init__(self, args: argparse.Namespace, run_dir: Path, procs: Processes) -> None:
        self.args = args
        self.run_dir = run_dir
        self.procs = procs
        self.redis_port = free_ports(1)[0]
        self.redis: Optional[subprocess.Popen] = None
        self.started = time.monotonic()

    def start_redis(self) -> None:
        data = self.run_dir / "redis"
        data.mkdir()
        argv = [
            "taskset",
            "-c",
            LOAD_CORE,
            "redis-server",
            "--port",
            str(self.redis_port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data),
        ]
        self.redis = self.procs.start(argv, data / "redis.log")
        try:
            wait_redis(self.redis, self.redis_port, 10.0)
        except RuntimeError as exc:
            raise RuntimeError(f"redis-server: {exc}\n{_tail(data / 'redis.log')}") from None

    def targets(self) -> List[Target]:
        a = self.args
        ports = free_ports(3)
        rows = [
            Target(
                "redis direct (redis + client share core 1) = ceiling",
                "direct",
                self.redis_port,
                a.warmup_requests,
            ),
            Target("haproxy mode tcp, nbthread 1", "haproxy", ports[0], a.warmup_requests),
        ]
        if not a.skip_tsproxy:
            rows.append(
                Target(
                    "tsproxy, CPython",
                    "tsproxy",
                    ports[1],
                    a.warmup_requests,
                    a.tsproxy_python,
                    a.profile,
                )
            )
        pypy = pypy_python(a)
        if pypy:
            rows.append(Target("tsproxy, PyPy", "tsproxy", ports[2], a.pypy_warmup_requests, pypy))
        return rows

    def argv(self, target: Target) -> List[str]:
        conf = self.run_dir / f"{target.kind}-{target.port}"
        conf.mkdir(exist_ok=True)
        if target.kind == "haproxy":
            (conf / "haproxy.cfg").write_text(haproxy_conf(target.port, self.redis_port))
            return ["taskset", "-c", PROXY_CORE, "haproxy", "-db", "-f", str(conf / "haproxy.cfg")]
        assert target.python is not None
        (conf / "tsproxy.yaml").write_text(tsproxy_static_yaml(target.port))
        (conf / "redis.yaml").write_text(tsproxy_routes_yaml(self.redis_port))
        python = ["taskset", "-c", PROXY_CORE, target.python]
        if target.profile is not None:
            python += ["-m", "cProfile", "-o", str(target.profile)]
        return python + ["-m", "twisted", "tsproxy", "-c", str(conf)]

    def over_budget(self) -> bool:
        return time.monotonic() - self.started > self.args.budget

    def run_target(self, target: Target) -> Row:
        row = Row(target.setup)
        proc = None
        log_path = self.run_dir / f"{target.kind}-{target.port}.log"
        try:
            if target.kind == "direct":
                assert self.redis is not None
                measured_pid = self.redis.pid
            else:
                if target.python:
                    check_tsproxy_installed(target.python)
                argv = self.argv(target)
                row.command = " ".join(argv)
                # tsproxy runs from the checkout, as in http_bench: `-m` puts the cwd first on
                # sys.path, so the tree's code is measured and the venv gives the dependencies.
                proc = self.procs.start(argv, log_path, cwd=REPO_ROOT if target.python else None)
                measured_pid = proc.pid
                wait_redis(proc, target.port, 30.0)
            row.check = check_row(target.port, self.redis_port)
            for pipeline in self.pipelines():
                row.measurements.append(self.measure(target, pipeline, measured_pid))
        except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as exc:
            row.status = "broken"
            row.reason = (
                str(exc) if isinstance(exc, RuntimeError) else f"{type(exc).__name__}: {exc}"
            )
            if proc is not None and log_path.exists():
                row.reason += "\n" + _tail(log_path)
        finally:
            if proc is not None:
                self.procs.stop(proc)
        return row

    def pipelines(self) -> List[int]:
        return [1] + ([self.args.pipeline] if self.args.pipeline > 1 else [])

    def measure(self, target: Target, pipeline: int, measured_pid: int) -> Measurement:
        a = self.args
        requests = a.requests if pipeline == 1 else a.pipelined_requests

        def attempt(number: int) -> Measurement:
            if number == 1 and pipeline == 1 and target.warmup_requests > 0:
                run_benchmark(
                    self.procs, self.run_dir, target.port, target.warmup_requests, 1, a, None
                )
            return run_benchmark(
                self.procs, self.run_dir, target.port, requests, pipeline, a, measured_pid
            )

        late = self.over_budget()
        best, attempts = measure_quietest(
            attempt,
            0.0 if late else a.quiet_wait,
            lambda m: f"SET {m.set_rps:,.0f} GET {m.get_rps:,.0f} req/s",
            1 if late else MAX_ATTEMPTS,
        )
        best.attempts = attempts
        print(
            f"   -P {pipeline}: SET {best.set_rps:,.0f} req/s, GET {best.get_rps:,.0f} req/s, "
            f"CPU {_fmt(best.cpu_pct, '.0f')} %",
            flush=True,
        )
        return best


# ---------------------------------------------------------------- report


def set_ratios(rows: List[Row]) -> None:
    """Ratios to the HAProxy row of the same round, at the same pipeline depth."""
    haproxy = next((r for r in rows if r.setup.startswith("haproxy")), None)
    for row in rows:
        for m in row.measurements:
            h = haproxy.at(m.pipeline) if haproxy else None
            if h is None or not h.set_rps or not h.get_rps:
                continue
            m.ratio_set = m.set_rps / h.set_rps if m.set_rps else None
            m.ratio_get = m.get_rps / h.get_rps if m.get_rps else None
            mine, theirs = m.per_core, h.per_core
            m.ratio_per_core = mine / theirs if mine and theirs else None


def median_measurement(runs: List[Measurement]) -> Measurement:
    """Each number the median over the rounds (attempts summed); ratios stay per round."""
    values: Dict[str, object] = {}
    for f in fields(Measurement):
        column = [getattr(m, f.name) for m in runs]
        if f.name in ("pipeline", "requests"):
            values[f.name] = column[0]
        elif f.name == "attempts":
            values[f.name] = sum(column)
        else:
            values[f.name] = _median(column)
    return Measurement(**values)  # type: ignore[arg-type]


def summarize(rounds: List[List[Row]], pipelines: List[int]) -> List[Row]:
    if len(rounds) == 1:
        return rounds[0]
    summary = []
    for index, first in enumerate(rounds[0]):
        runs = [r[index] for r in rounds]
        row = Row(first.setup, check=first.check, command=first.command, rounds=runs)
        for pipeline in pipelines:
            measured = [m for m in (r.at(pipeline) for r in runs) if m is not None]
            if measured:
                row.measurements.append(median_measurement(measured))
        broken = [n + 1 for n, r in enumerate(runs) if r.status != "ok"]
        if broken:
            row.status = "broken"
            row.reason = f"broken in round(s) {broken}: {runs[broken[0] - 1].reason}"
        summary.append(row)
    return summary


def print_table(rows: List[Row], pipelines: List[int]) -> None:
    header = [
        "setup",
        "-P",
        "SET req/s",
        "GET req/s",
        "SET ÷HAProxy",
        "GET ÷HAProxy",
        "p99 SET/GET ms",
        "proxy CPU %",
        "RSS MB",
        "req per proxy CPU-s",
        "÷HAProxy per core",
        "core 0 idle %",
        "foreign CPU %",
    ]
    with_rounds = any(r.rounds for r in rows)
    if with_rounds:
        header.append("SET/GET req/s by round")
    body = []
    for pipeline in pipelines:
        for r in rows:
            m = r.at(pipeline)
            if m is None:
                body.append([r.setup, str(pipeline), r.status.upper()] + [""] * (len(header) - 3))
                continue
            cells = [
                r.setup,
                str(pipeline),
                _fmt(m.set_rps, ",.0f"),
                _fmt(m.get_rps, ",.0f"),
                _fmt(m.ratio_set, ".2f"),
                _fmt(m.ratio_get, ".2f"),
                f"{_fmt(m.set_p99_ms, '.3g')}/{_fmt(m.get_p99_ms, '.3g')}",
                _fmt(m.cpu_pct, ".0f"),
                _fmt(m.rss_mb, ".1f"),
                _fmt(m.per_core, ",.0f"),
                _fmt(m.ratio_per_core, ".2f"),
                _fmt(m.core0_idle_pct, ".1f"),
                _fmt(m.foreign_cpu_pct, ".1f"),
            ]
            if with_rounds:
                cells.append(
                    " · ".join(
                        f"{_fmt(x.set_rps, ',.0f')}/{_fmt(x.get_rps, ',.0f')}"
                        if x is not None
                        else "-"
                        for x in (run.at(pipeline) for run in r.rounds)
                    )
                )
            body.append(cells)
    for text in markdown_table(header, body):
        print(text)
    for r in rows:
        if r.status != "ok":
            print(f"\n{r.setup}: {r.status}: {r.reason}")
    if with_rounds:
        print(
            "\nEach number is the median over the rounds; ratios are medians of per-round ratios."
        )
    print(
        "\n'redis direct' CPU is redis-server's; that row is the ceiling of core 1 (redis +"
        " redis-benchmark), which no proxied row can pass, so a peer close to it is held back by"
        " core 1: compare 'req per proxy CPU-s' too. Proxy CPU % leaves out the kernel's softirq"
        " time; core 0 idle near 0 means the proxy's core was saturated."
    )


def ratio_lines(rows: List[Row], pipelines: List[int]) -> List[str]:
    lines = []
    for r in rows:
        if not r.setup.startswith("tsproxy"):
            continue
        impl = r.setup.split(", ", 1)[1]
        for pipeline in pipelines:
            m = r.at(pipeline)
            if m is None or m.ratio_set is None or m.ratio_get is None:
                lines.append(f"tsproxy/haproxy ratio -P {pipeline} ({impl}): broken")
                continue
            per_core = f", per proxy core {m.ratio_per_core:.2f}" if m.ratio_per_core else ""
            lines.append(
                f"tsproxy/haproxy ratio -P {pipeline} ({impl}): SET {m.ratio_set:.2f},"
                f" GET {m.ratio_get:.2f}{per_core}"
            )
    return lines


def print_profile(path: Path, top: int = 25) -> None:
    if not path.exists():
        print(f"no profile written to {path}")
        return
    print(f"\ncProfile of the CPython row (its req/s are lowered by profiling), {path}:")
    stats = pstats.Stats(str(path), stream=sys.stdout)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)


def _row_json(row: Row) -> dict:
    data = asdict(row)
    data["rounds"] = [_row_json(r) for r in row.rounds]
    return data


# ---------------------------------------------------------------- main


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_interpreter_args(p)
    p.add_argument(
        "--requests", type=int, default=100000, help="redis-benchmark -n at -P 1 (default 100000)"
    )
    p.add_argument(
        "--pipeline",
        type=int,
        default=16,
        help="-P of the second, pipelined measurement (default 16; 0 or 1 = none)",
    )
    p.add_argument(
        "--pipelined-requests",
        type=int,
        default=1000000,
        help="redis-benchmark -n of the pipelined measurement (default 1000000)",
    )
    p.add_argument("--clients", type=int, default=50, help="redis-benchmark -c (default 50)")
    p.add_argument(
        "--warmup-requests",
        type=int,
        default=20000,
        help="discarded -P 1 run before measuring (default 20000)",
    )
    p.add_argument(
        "--pypy-warmup-requests",
        type=int,
        default=200000,
        help="the same for PyPy, whose JIT needs it (default 200000)",
    )
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds, medians reported")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        help="before each measurement, wait up to this many seconds for other processes "
        "to use < 10 %% CPU (default 10; 0 = don't wait)",
    )
    p.add_argument(
        "--max-seconds",
        type=int,
        default=60,
        help="bound of each redis-benchmark run; a row slower than that is broken (default 60)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="after this many seconds, stop waiting for quiet and retrying disturbed "
        "measurements (default 150 per round)",
    )
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run the CPython row under cProfile, save the stats here and print the top "
        "functions (its req/s are then not comparable)",
    )
    p.add_argument("--json", type=Path, default=None, help="also save the results to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary run directory")
    args = p.parse_args(argv)
    if not 1000 <= args.requests <= 10_000_000 or not 1000 <= args.pipelined_requests <= 50_000_000:
        p.error("--requests and --pipelined-requests must be between 1000 and 10 million")
    if not 0 <= args.pipeline <= 1000:
        p.error("--pipeline must be between 0 and 1000")
    if not 1 <= args.clients <= 1000:
        p.error("--clients must be between 1 and 1000")
    if not 1 <= args.rounds <= 9:
        p.error("--rounds must be between 1 and 9")
    if not 5 <= args.max_seconds <= 600:
        p.error("--max-seconds must be between 5 and 600")
    if args.budget is None:
        args.budget = 150.0 * args.rounds
    if args.profile is not None:
        args.profile = args.profile.resolve()
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    needed = ("redis-server", "redis-benchmark", "haproxy", "taskset", "timeout")
    missing = [tool for tool in needed if not shutil.which(tool)]
    if missing:
        print(f"missing: {', '.join(missing)}; install with:\n  {INSTALL}", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) < 2:
        print("needs 2 cores (proxy on core 0, redis and its client on core 1)", file=sys.stderr)
        return 2

    install_signal_handlers()
    procs = Processes()
    run_dir = Path(tempfile.mkdtemp(prefix="tsproxy-tcp-bench-"))
    started = time.time()

    def run() -> int:
        bench = Bench(args, run_dir, procs)
        pypy = pypy_python(args)
        info = versions(args, pypy, TOOLS)
        pipelines = bench.pipelines()
        print(
            f"run dir {run_dir}; redis-server on {bench.redis_port}; redis-benchmark -t get,set "
            f"-c {args.clients}: -n {args.requests} -P 1"
            + (f", -n {args.pipelined_requests} -P {args.pipeline}" if len(pipelines) > 1 else "")
        )
        for key, value in info.items():
            print(f"  {key}: {value}")
        if not args.skip_pypy and not args.skip_tsproxy and not pypy:
            print("  PyPy row skipped: no bench/.venv-pypy (see bench/README.md), no --pypy-python")
        bench.start_redis()
        targets = bench.targets()
        rounds = []
        for number in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f"== round {number}/{args.rounds}", flush=True)
            round_rows = []
            for target in targets:
                print(f"-- {target.setup} ...", flush=True)
                row = bench.run_target(target)
                if row.status != "ok":
                    print(f"   {row.status}: {row.reason.splitlines()[0]}", flush=True)
                round_rows.append(row)
            set_ratios(round_rows)
            rounds.append(round_rows)
        rows = summarize(rounds, pipelines)
        print()
        print_table(rows, pipelines)
        print()
        for line in ratio_lines(rows, pipelines):
            print(line)
        if args.profile is not None:
            print_profile(args.profile)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            settings = {
                name: getattr(args, name)
                for name in (
                    "requests",
                    "pipeline",
                    "pipelined_requests",
                    "clients",
                    "warmup_requests",
                    "pypy_warmup_requests",
                    "rounds",
                    "quiet_wait",
                    "max_seconds",
                    "budget",
                )
            }
            settings["profiled"] = args.profile is not None
            args.json.write_text(
                json.dumps(
                    {
                        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                        "elapsed_s": round(time.time() - started, 1),
                        "settings": settings,
                        "versions": info,
                        "rows": [_row_json(r) for r in rows],
                    },
                    indent=2,
                )
                + "\n"
            )
            print(f"saved {args.json}")
        print(f"elapsed {time.time() - started:.0f}s")
        return 0 if all(r.status == "ok" for r in rows) else 1

    return guarded(run, procs, run_dir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
