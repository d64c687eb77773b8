#!/usr/bin/env python3
"""UDP throughput benchmark: dnsperf against dnsmasq directly, through tsproxy and nginx stream.

One dnsmasq (static record example.test -> 10.0.0.1, nothing forwarded) and dnsperf share
core 1; the proxy under test runs alone on core 0 (`taskset -c 0`), as in
shared/reference/perf-anchors.md. Rows: dnsmasq direct (the ceiling), nginx `stream` UDP
(1 worker, `listen ... udp reuseport`: one upstream socket per client address, like tsproxy's
sessions), tsproxy on CPython and, if a PyPy venv is given or found, on PyPy. Each proxy row
is checked first (one query must come back with 10.0.0.1), warmed up, then measured with
`dnsperf -l 10 -c 10 -q 100`: queries/s, lost queries, the proxy's CPU % and RSS. Ratios are
to nginx in the same run: compare ratios, not absolute numbers.

Safety bounds: 127.0.0.1 only, free ports picked by binding port 0, every dnsperf run bounded
by -l and by `timeout`, every process started here in its own session and stopped by its PID
(process group) on any exit; the run directory is removed unless --keep. Reuses the process
and CPU accounting helpers of http_bench.py.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from http_bench import (
    FOREIGN_CPU_RETRY_PCT,
    LOAD_CORE,
    LOOPBACK,
    MAX_ATTEMPTS,
    PROXY_CORE,
    REPO_ROOT,
    CpuWindow,
    Processes,
    check_tsproxy_installed,
    free_ports,
    guarded,
    install_signal_handlers,
    rss_mb,
    tree,
    wait_quiet,
)

RECORD = ("example.test", "10.0.0.1")
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
INSTALL = (
    "apt-get install -y --no-install-recommends dnsperf dnsmasq-base nginx libnginx-mod-stream"
)


def dns_query(name: str, ident: int) -> bytes:
    """A minimal DNS query for the A record of ``name``, recursion desired."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", 1, 1)


def answers(port: int, timeout: float = 0.5) -> bool:
    """Whether 127.0.0.1:port answers the A query for RECORD with RECORD's address."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(dns_query(RECORD[0], 0x5453), (LOOPBACK, port))
        reply = s.recv(512)
    except OSError:
        return False
    finally:
        s.close()
    return reply[:2] == b"\x54\x53" and socket.inet_aton(RECORD[1]) in reply


def wait_answering(proc: subprocess.Popen, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode}")
        if answers(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"no DNS answer on port {port} within {timeout:.0f}s")


@dataclass
class Row:
    setup: str
    qps: Optional[float] = None
    lost: str = ""
    cpu_pct: Optional[float] = None
    rss: Optional[float] = None
    foreign_pct: Optional[float] = None
    core_idle_pct: Optional[float] = None
    status: str = "ok"
    reason: str = ""

    @property
    def per_core(self) -> Optional[float]:
        if self.qps is None or not self.cpu_pct:
            return None
        return self.qps / (self.cpu_pct / 100.0)


def run_dnsperf(port: int, seconds: int, args: argparse.Namespace, queries: Path) -> tuple:
    """(queries/s, lost text) of one bounded dnsperf run pinned to core 1."""
    argv = [
        "timeout",
        str(seconds + 20),
        "taskset",
        "-c",
        LOAD_CORE,
        "dnsperf",
        "-s",
        LOOPBACK,
        "-p",
        str(port),
        "-d",
        str(queries),
        "-l",
        str(seconds),
        "-c",
        str(args.clients),
        "-q",
        str(args.outstanding),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    qps = re.search(r"Queries per second:\s+([0-9.]+)", out.stdout)
    lost = re.search(r"Queries lost:\s+(\d+ \([0-9.]+%\))", out.stdout)
    if out.returncode != 0 or qps is None:
        raise RuntimeError(
            f"dnsperf failed (rc {out.returncode}): {(out.stdout + out.stderr)[-300:]}"
        )
    return float(qps.group(1)), lost.group(1) if lost else "?"


class Bench:
    def __init__(self, args: argparse.Namespace, run_dir: Path, procs: Processes) -> None:
        self.args = args
        self.run_dir = run_dir
        self.procs = procs
        self.dns_port, self.nginx_port, self.tsproxy_port = free_ports(3, socket.SOCK_DGRAM)
        self.queries = run_dir / "queries.txt"
        self.queries.write_text(f"{RECORD[0]} A\n")

    def start_dnsmasq(self) -> None:
        argv = [
            "taskset",
            "-c",
            LOAD_CORE,
            shutil.which("dnsmasq", path=_SBIN) or "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--bind-interfaces",
            f"--listen-address={LOOPBACK}",
            f"--port={self.dns_port}",
            f"--address=/{RECORD[0]}/{RECORD[1]}",
            "--cache-size=0",
        ]
        if os.geteuid() == 0:
            argv.append("--user=root")
        proc = self.procs.start(argv, self.run_dir / "dnsmasq.log")
        wait_answering(proc, self.dns_port, 10)

    def nginx(self) -> List[str]:
        conf_dir = self.run_dir / "nginx"
        conf_dir.mkdir(exist_ok=True)
        (conf_dir / "nginx.conf").write_text(
            f"load_module {NGINX_STREAM_MODULE};\n"
            "pid nginx.pid;\nerror_log stderr warn;\nworker_processes 1;\n"
            "events { worker_connections 4096; }\n"
            "stream {\n  server {\n"
            f"    listen {LOOPBACK}:{self.nginx_port} udp reuseport;\n"
            f"    proxy_pass {LOOPBACK}:{self.dns_port};\n"
            "    proxy_timeout 10s;\n  }\n}\n"
        )
        return [
            "taskset",
            "-c",
            PROXY_CORE,
            "nginx",
            "-p",
            str(conf_dir),
            "-c",
            "nginx.conf",
            "-e",
            "stderr",
            "-g",
            "daemon off;",
        ]

    def tsproxy(self, python: str, name: str) -> List[str]:
        conf_dir = self.run_dir / f"tsproxy-{name}"
        conf_dir.mkdir(exist_ok=True)
        (conf_dir / "tsproxy.yaml").write_text(
            f'entryPoints:\n  dns:\n    address: "{LOOPBACK}:{self.tsproxy_port}/udp"\n'
            "log:\n  level: ERROR\n"
        )
        (conf_dir / "dns.yaml").write_text(
            "apiVersion: traefik.io/v1alpha1\nkind: IngressRouteUDP\nmetadata: {name: dns}\n"
            "spec:\n  entryPoints: [dns]\n  routes:\n    - services:\n"
            "        - {name: dnsmasq, port: 53}\n---\n"
            "apiVersion: v1\nkind: Service\nmetadata: {name: dnsmasq}\n"
            "spec: {ports: [{name: dns, port: 53, protocol: UDP}]}\n---\n"
            "apiVersion: v1\nkind: Endpoints\nmetadata: {name: dnsmasq}\n"
            f"subsets: [{{addresses: [{{ip: {LOOPBACK}}}],"
            f" ports: [{{name: dns, port: {self.dns_port}}}]}}]\n"
        )
        return [
            "taskset",
            "-c",
            PROXY_CORE,
            python,
            "-m",
            "twisted",
            "tsproxy",
            "-c",
            str(conf_dir),
        ]

    def measure(self, setup: str, port: int, argv: Optional[List[str]], warmup: int) -> Row:
        row = Row(setup)
        proc = None
        foreign = wait_quiet(self.args.quiet_wait)
        if foreign >= 10:
            print(f"   (other processes still use {foreign:.0f}% CPU)", flush=True)
        try:
            if argv is not None:
                log = self.run_dir / (re.sub(r"\W+", "-", setup) + ".log")
                proc = self.procs.start(argv, log, cwd=REPO_ROOT)
                wait_answering(proc, port, 30)
            if warmup:
                run_dnsperf(port, warmup, self.args, self.queries)
            # Other sessions share the machine: measure again while they disturb the window,
            # and keep the quietest attempt.
            for attempt in range(MAX_ATTEMPTS):
                window = CpuWindow()
                qps, lost = run_dnsperf(port, self.args.duration, self.args, self.queries)
                window.close()
                if row.foreign_pct is None or window.foreign_pct < row.foreign_pct:
                    row.qps, row.lost, row.foreign_pct = qps, lost, window.foreign_pct
                    row.core_idle_pct = window.core_idle_pct
                    if proc is not None:
                        row.cpu_pct = window.cpu_pct(proc.pid)
                        row.rss = rss_mb(tree(window.end_snap, proc.pid))
                if window.foreign_pct < FOREIGN_CPU_RETRY_PCT:
                    break
                print(f"   attempt {attempt + 1}: foreign CPU {window.foreign_pct:.0f}%, again")
                wait_quiet(self.args.quiet_wait)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            row.status, row.reason = "BROKEN", str(exc)
        finally:
            if proc is not None:
                self.procs.stop(proc)
        return row


_SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def _fmt(value: Optional[float], spec: str) -> str:
    return "" if value is None else format(value, spec)


def print_table(rows: List[Row]) -> None:
    nginx = next((r for r in rows if r.setup.startswith("nginx") and r.qps), None)
    columns = ["setup", "q/s", "lost", "proxy CPU %", "q/s per proxy core", "÷nginx"]
    columns += ["÷nginx per core", "RSS MB", "core 0 idle %", "foreign CPU %"]
    print("| " + " | ".join(columns) + " |")
    print("|---" * len(columns) + "|")
    for r in rows:
        ratio = per_core = None
        if nginx is not None and r.qps is not None:
            ratio = r.qps / nginx.qps  # type: ignore[operator]
            if r.per_core is not None and nginx.per_core:
                per_core = r.per_core / nginx.per_core
        if r.status != "ok":
            print(f"| {r.setup} | {r.status}: {r.reason.splitlines()[0][:80]} |" + " |" * 8)
            continue
        print(
            f"| {r.setup} | {r.qps:,.0f} | {r.lost} | {_fmt(r.cpu_pct, '.0f')} | "
            f"{_fmt(r.per_core, ',.0f')} | {_fmt(ratio, '.2f')} | {_fmt(per_core, '.2f')} | "
            f"{_fmt(r.rss, '.0f')} | {_fmt(r.core_idle_pct, '.0f')} | "
            f"{_fmt(r.foreign_pct, '.0f')} |"
        )


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="dnsperf -l seconds (max 30)")
    parser.add_argument("--clients", type=int, default=10, help="dnsperf -c (client sockets)")
    parser.add_argument("--outstanding", type=int, default=100, help="dnsperf -q")
    parser.add_argument("--warmup", type=int, default=3, help="discarded dnsperf seconds")
    parser.add_argument("--pypy-warmup", type=int, default=10, help="warm-up for PyPy's JIT")
    parser.add_argument("--tsproxy-python", default=str(REPO_ROOT / ".venv" / "bin" / "python"))
    parser.add_argument("--pypy-python", default=None, help="default: bench/.venv-pypy if present")
    parser.add_argument("--skip-pypy", action="store_true")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="seconds to wait for other processes to calm down before each row",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 30:
        parser.error("--duration must be 1..30 seconds")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    missing = [t for t in ("dnsperf", "nginx", "taskset", "timeout") if not shutil.which(t)]
    if not shutil.which("dnsmasq", path=_SBIN):
        missing.append("dnsmasq")
    if missing:
        print(f"missing: {', '.join(missing)}; install with:\n  {INSTALL}", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) < 2:
        print("needs 2 cores (proxy on core 0, dnsperf and dnsmasq on core 1)", file=sys.stderr)
        return 2
    pypy = args.pypy_python
    default_pypy = REPO_ROOT / "bench" / ".venv-pypy" / "bin" / "python"
    if pypy is None and default_pypy.exists():
        pypy = str(default_pypy)
    install_signal_handlers()
    procs = Processes()
    run_dir = Path(tempfile.mkdtemp(prefix="tsproxy-udp-bench-"))

    def run() -> int:
        bench = Bench(args, run_dir, procs)
        bench.start_dnsmasq()
        print(
            f"run dir {run_dir}; dnsmasq on {bench.dns_port}; dnsperf -l {args.duration} "
            f"-c {args.clients} -q {args.outstanding} after {args.warmup}s warm-up"
        )
        targets: List[Tuple[str, int, Optional[List[str]], int]] = [
            ("dnsmasq direct (dnsperf and dnsmasq share core 1) = ceiling", bench.dns_port, None, 0)
        ]
        if os.path.exists(NGINX_STREAM_MODULE):
            targets.append(
                ("nginx stream udp, 1 worker", bench.nginx_port, bench.nginx(), args.warmup)
            )
        else:
            print(f"  nginx row skipped: no {NGINX_STREAM_MODULE} ({INSTALL})")
        check_tsproxy_installed(args.tsproxy_python)
        targets.append(
            (
                "tsproxy, CPython",
                bench.tsproxy_port,
                bench.tsproxy(args.tsproxy_python, "cpython"),
                args.warmup,
            )
        )
        if pypy and not args.skip_pypy:
            check_tsproxy_installed(pypy)
            targets.append(
                ("tsproxy, PyPy", bench.tsproxy_port, bench.tsproxy(pypy, "pypy"), args.pypy_warmup)
            )
        rows = []
        for setup, port, argv_, warmup in targets:
            print(f"-- {setup} ...", flush=True)
            row = bench.measure(setup, port, argv_, warmup)
            print(f"   {row.status} {_fmt(row.qps, ',.0f')} q/s {row.reason}", flush=True)
            rows.append(row)
        print()
        print_table(rows)
        nginx = next((r for r in rows if r.setup.startswith("nginx") and r.qps), None)
        direct = rows[0]
        for r in rows:
            if r.setup.startswith("tsproxy") and r.qps:
                parts = (
                    [f"{r.setup}: ÷direct {r.qps / direct.qps:.2f}"] if direct.qps else [r.setup]
                )
                if nginx is not None:
                    parts.append(f"÷nginx {r.qps / nginx.qps:.2f}")  # type: ignore[operator]
                    if r.per_core and nginx.per_core:
                        parts.append(f"÷nginx per proxy core {r.per_core / nginx.per_core:.2f}")
                print(", ".join(parts))
        return 0 if all(r.status == "ok" for r in rows) else 1

    return guarded(run, procs, run_dir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
