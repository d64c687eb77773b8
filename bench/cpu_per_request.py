#!/usr/bin/env python3
"""CPU per request of tsproxy trees, interleaved, on http_bench.py's setup.

    python3 bench/cpu_per_request.py before=/tmp/old-tree after=. [--rounds 3]
    python3 bench/cpu_per_request.py pypy=.:/work/pypy-bench/bin/python --gc

Each variant is LABEL=TREE[:PYTHON]: a checkout whose tsproxy/ is run (from that directory,
as http_bench.py does) with PYTHON (default: this checkout's .venv/bin/python). The rows run
one after the other, round after round, against one nginx backend (http_bench.py's, on core
1 with wrk); the proxy is pinned alone on core 0. Each row: ready check, warm-up (3x longer on
PyPy), then `wrk -c50` for --duration seconds; it prints req/s, the proxy's CPU %, CPU
microseconds per request (CPU % / req/s, the figure to compare on a machine other jobs share:
it moves less than req/s), p99 and the foreign CPU of the window. At the end, the median of
each variant.

--h2c loads it with h2load over h2c (the bench's h2c rows: 10 connections x 10 streams)
instead of wrk; --grpc with h2load's gRPC unary calls to h2c gRPC backends (the bench's gRPC
rows; the first call is awaited with plain HTTP/2 requests, not a grpcio client).

--strace counts the proxy's system calls per request (strace -c -f, which slows it: only
the counts mean anything); --profile PREFIX runs it under cProfile and writes PREFIX-LABEL-N.prof
and prints the Python function calls per request; --gc (PyPy) records the collector's pauses
with gc.hooks and prints them (PYPY_GC_* variables in the environment reach the proxy);
--pyspy PY_SPY samples the proxy during the measured window with that py-spy binary (not a
dependency: `pip install py-spy` in a scratch venv) and prints the functions with the most
time of their own and the most time under them. A sampler does not inflate small functions
as cProfile does.

Safety as http_bench.py: 127.0.0.1 only, free ports, wrk bounded by -d and `timeout`, every
process started here in its own session and stopped by its PID at the end.
"""

from __future__ import annotations

import argparse
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import http_bench as hb  # noqa: E402

#: Run by --gc in place of `-m twisted`: installs PyPy's gc.hooks, writes their totals at exit.
GC_LAUNCHER = r"""
import atexit, gc, os, runpy, sys
sys.path.insert(0, os.getcwd())
rec = {"minor": [], "major step": []}
gc.hooks.on_gc_minor = lambda s: rec["minor"].append((s.count, s.duration, s.duration_max))
gc.hooks.on_gc_collect_step = lambda s: rec["major step"].append(
    (s.count, s.duration, s.duration_max))
def dump():
    with open(os.environ["GC_REPORT"], "w") as f:
        for kind, rows in rec.items():
            top = sorted((r[2] for r in rows), reverse=True)[:3]
            f.write("   gc %s: %d, %.3f s in all, longest %s\n" % (
                kind, sum(r[0] for r in rows), sum(r[1] for r in rows),
                ", ".join("%.1f ms" % (t * 1000) for t in top) or "-"))
atexit.register(dump)
sys.argv = ["twisted"] + sys.argv[1:]
runpy.run_module("twisted", run_name="__main__", alter_sys=True)
"""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("variants", nargs="+", help="LABEL=TREE[:PYTHON]")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=5, help="measured seconds (1-30)")
    p.add_argument("--warmup", type=int, default=3, help="warm-up seconds (x3 on PyPy)")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--strace", action="store_true", help="system calls per request")
    p.add_argument("--profile", metavar="PREFIX", help="cProfile each run (CPython)")
    p.add_argument("--gc", action="store_true", help="PyPy's GC pauses (gc.hooks)")
    p.add_argument("--pyspy", metavar="PY_SPY", help="sample the proxy with this py-spy")
    p.add_argument("--top", type=int, default=25, help="functions listed by --pyspy")
    p.add_argument("--h2c", action="store_true", help="h2load (h2c) instead of wrk")
    p.add_argument("--grpc", action="store_true", help="h2load gRPC unary calls, h2c both sides")
    a = p.parse_args()
    if a.strace and a.pyspy:
        p.error("--strace and --pyspy each slow the proxy: one at a time")
    a.duration = max(1, min(30, a.duration))
    return a


def syscalls(path: Path, requests: float) -> str:
    """The strace -c summary's interesting calls, per request."""
    out = []
    for line in path.read_text().splitlines():
        f = line.split()
        if len(f) >= 5 and f[-1] in ("epoll_ctl", "epoll_wait", "sendto", "recvfrom"):
            out.append("%s %.2f" % (f[-1], int(f[3]) / requests))
        elif len(f) >= 5 and f[-1] == "total":
            out.append("all %.2f" % (int(f[3]) / requests))
    return "   syscalls per request: " + ", ".join(out)


def calls_per_request(path: str) -> str:
    """Python function calls per request: those made at least once every other request."""
    stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
    served = max(v[1] for k, v in stats.items() if k[2] == "_start_exchange")
    calls = sum(v[1] for v in stats.values() if v[1] >= served / 2)
    return "   Python function calls per request: %.0f (%d requests)" % (calls / served, served)


def sampled(path: Path, top: int) -> str:
    """py-spy's folded stacks ("frame;frame;leaf count" lines): self and inclusive shares."""
    own: Dict[str, int] = {}
    under: Dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        # "function (file:line)" -> "function (file)": one entry per function.
        frames = [f.rpartition(":")[0] + ")" if f.endswith(")") else f for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            under[frame] = under.get(frame, 0) + n
    if not total:
        return "   py-spy: no samples"
    out = ["   py-spy, %d samples; own time:" % total]
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        out.append("   %5.1f %%  %s" % (100.0 * n / total, frame))
    out.append("   with what it calls:")
    for frame, n in sorted(under.items(), key=lambda kv: -kv[1])[:top]:
        out.append("   %5.1f %%  %s" % (100.0 * n / total, frame))
    return "\n".join(out)


def main() -> int:
    a = parse_args()
    hb.install_signal_handlers()
    procs = hb.Processes()
    run_dir = Path(tempfile.mkdtemp(prefix="cpu-per-request-"))
    results: Dict[str, List[float]] = {}
    try:
        # Only the backend is used (its gRPC servers with --grpc); no Caddy.
        bench = hb.Bench(
            argparse.Namespace(grpc=a.grpc, skip_caddy=True, caddy=None), run_dir, procs
        )
        bench.start_backend()
        launcher = run_dir / "gc_launcher.py"
        launcher.write_text(GC_LAUNCHER)
        for rnd in range(a.rounds):
            for variant in a.variants:
                label, _, rest = variant.partition("=")
                tree, _, python = rest.partition(":")
                tree = str(Path(tree).resolve())
                python = python or str(hb.REPO_ROOT / ".venv" / "bin" / "python")
                us = run_row(a, procs, run_dir, bench, launcher, label, tree, python, rnd)
                if us is not None:
                    results.setdefault(label, []).append(us)
        for label, values in results.items():
            ordered = sorted(values)
            print(
                "%s: median %.1f us/request of %s"
                % (label, ordered[len(ordered) // 2], ", ".join("%.1f" % v for v in values))
            )
    finally:
        procs.stop_all()
    return 0


def run_row(
    a: argparse.Namespace,
    procs: hb.Processes,
    run_dir: Path,
    bench: hb.Bench,
    launcher: Path,
    label: str,
    tree: str,
    python: str,
    rnd: int,
) -> Optional[float]:
    port = hb.free_ports(1)[0]
    conf = run_dir / f"conf-{port}"
    conf.mkdir()
    (conf / "tsproxy.yaml").write_text(hb.tsproxy_static_yaml(port))
    if a.grpc:
        app = hb.tsproxy_app_yaml(bench.g1_port, bench.g2_port, scheme="h2c")
    else:
        app = hb.tsproxy_app_yaml(bench.v1_port, bench.v2_port)
    (conf / "app.yaml").write_text(app)
    argv = ["taskset", "-c", hb.PROXY_CORE, python]
    prof = f"{a.profile}-{label}-{rnd}.prof" if a.profile else None
    if prof:
        argv += ["-m", "cProfile", "-o", prof]
    gc_report = run_dir / f"gc-{label}-{rnd}.txt"
    if a.gc:
        os.environ["GC_REPORT"] = str(gc_report)
        argv += [str(launcher)]
    else:
        argv += ["-m", "twisted"]
    argv += ["tsproxy", "-c", str(conf)]
    proc = procs.start(argv, run_dir / f"{label}-{rnd}.log", cwd=Path(tree))
    notes: List[str] = []
    try:
        if a.grpc:
            hb.wait_ready_h2(proc, port, hb.HOST_HEADER, 30)
        else:
            hb.wait_ready(proc, port, hb.HOST_HEADER, 30)
        grpc_request = bench.grpc_request if a.grpc else None

        def load(duration: int, measured: Optional[int]) -> hb.WrkResult:
            if a.h2c or a.grpc:
                return hb.run_h2load(
                    procs, run_dir, port, hb.HOST_HEADER, duration, measured, grpc_request
                )
            return hb.run_wrk(
                procs, run_dir, port, hb.HOST_HEADER, duration, a.connections, True, measured
            )

        load(a.warmup * (3 if "pypy" in python else 1), None)
        tracer = None
        trace_out = run_dir / f"strace-{label}-{rnd}.txt"
        if a.strace:
            tracer = subprocess.Popen(
                ["strace", "-c", "-f", "-o", str(trace_out), "-p", str(proc.pid)],
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        spy = None
        spy_out = run_dir / f"pyspy-{label}-{rnd}.txt"
        if a.pyspy:
            spy = subprocess.Popen(
                [a.pyspy, "record", "-p", str(proc.pid), "--format", "raw", "-r", "200"]
                + ["-d", str(a.duration), "-o", str(spy_out)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        r = load(a.duration, proc.pid)
        if tracer is not None:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(10)
            notes.append(syscalls(trace_out, r.requests_per_s * r.wall_s))
        if spy is not None:
            spy.wait(a.duration + 30)
            if spy_out.exists():
                notes.append(sampled(spy_out, a.top))
    finally:
        if prof or a.gc:
            # A clean stop (Twisted's SIGTERM handler) lets cProfile and atexit write out.
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        procs.stop(proc)
    if prof:
        notes.append(calls_per_request(prof))
    if a.gc and gc_report.exists():
        notes.append(gc_report.read_text().rstrip())
    if not r.requests_per_s or r.proxy_cpu_pct is None:
        print(f"{label} round {rnd}: no requests served ({r.errors})")
        return None
    us = r.proxy_cpu_pct / 100 / r.requests_per_s * 1e6
    print(
        f"{label} round {rnd}: {r.requests_per_s:,.0f} req/s, proxy CPU {r.proxy_cpu_pct:.0f} %,"
        f" {us:.1f} us/request, p99 {r.p99_ms} ms, foreign CPU {r.foreign_cpu_pct:.0f} %"
        + (f", wrk errors: {r.errors}" if r.errors else ""),
        flush=True,
    )
    for note in notes:
        print(note, flush=True)
    return us


if __name__ == "__main__":
    sys.exit(main())
