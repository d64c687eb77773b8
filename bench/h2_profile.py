"""CPU per request of a tsproxy tree under h2load, and optionally where it goes (cProfile).

Starts one nginx backend (core 1) with the two bench apps, tsproxy with the bench's weighted
route (core 0), warms it with h2load for 2 s, then loads it with h2load (100 streams over
10 connections, core 1) for --seconds and prints req/s, the proxy's CPU % and its CPU
milliseconds per request. The CPU per request is the figure to compare on a shared machine:
run it for two trees in alternation (--tree) and take the ratios pairwise.

    python3 bench/h2_profile.py                      # this checkout
    python3 bench/h2_profile.py --tree /tmp/old      # another tree (e.g. `git archive` of a commit)
    python3 bench/h2_profile.py --profile            # also cProfile, top functions printed
"""

from __future__ import annotations

import argparse
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import http_bench as hb

ROOT = Path(__file__).resolve().parent.parent


def h2load(port: int, seconds: int) -> str:
    argv = ["taskset", "-c", "1", "timeout", str(seconds + 15), "h2load", "-t1", "-c10", "-m10"]
    argv += ["-D", str(seconds), "-H", ":authority: bench.local", f"http://127.0.0.1:{port}/"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30).stdout


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=5, help="measured seconds (default 5, max 30)")
    p.add_argument("--tree", type=Path, default=ROOT, help="tsproxy tree to run (default: here)")
    p.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"))
    p.add_argument("--profile", action="store_true", help="run under cProfile, print the top")
    p.add_argument("--sort", default="tottime", help="cProfile order (tottime, cumulative…)")
    p.add_argument("--top", type=int, default=40, help="how many functions to print")
    p.add_argument("--keep", metavar="FILE", help="also copy the cProfile output to FILE")
    args = p.parse_args()
    seconds = max(1, min(args.seconds, 30))
    run = Path(tempfile.mkdtemp(prefix="tsproxy-h2-profile-"))
    port, v1, v2 = hb.free_ports(3)
    (run / "nginx.conf").write_text(hb.nginx_backend_conf(v1, v2))
    cfg = run / "cfg"
    cfg.mkdir()
    (cfg / "tsproxy.yaml").write_text(hb.tsproxy_static_yaml(port))
    (cfg / "app.yaml").write_text(hb.tsproxy_app_yaml(v1, v2))
    nginx = subprocess.Popen(
        ["taskset", "-c", "1", "nginx", "-p", str(run), "-c", str(run / "nginx.conf")]
        + ["-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    argv = ["taskset", "-c", "0", args.python]
    if args.profile:
        argv += ["-m", "cProfile", "-o", str(run / "prof.out")]
    argv += ["-m", "twisted", "tsproxy", "-c", str(cfg)]
    log = open(run / "tsproxy.log", "w")
    proxy = subprocess.Popen(argv, cwd=args.tree, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            answer = hb.curl_h2(port, "bench.local")
            if answer[0] == 200:
                break
            time.sleep(0.2)
        else:
            sys.exit("tsproxy did not answer:\n" + (run / "tsproxy.log").read_text()[-2000:])
        h2load(port, 2)  # warm-up
        c0, t0 = cpu_seconds(proxy.pid), time.monotonic()
        out = h2load(port, seconds)
        c1, t1 = cpu_seconds(proxy.pid), time.monotonic()
        rps, _mean, _worst, errors = hb.parse_h2load(out)
        done = max(1.0, rps * (t1 - t0))
        print(
            f"req/s {rps:,.0f}  proxy CPU {100 * (c1 - c0) / (t1 - t0):.0f} %  "
            f"CPU ms/request {1000 * (c1 - c0) / done:.3f}  errors {errors}"
        )
    finally:
        proxy.send_signal(signal.SIGINT)
        proxy.wait(30)
        nginx.terminate()
        nginx.wait(10)
    if args.profile:
        if args.keep:
            shutil.copy(run / "prof.out", args.keep)
        stats = pstats.Stats(str(run / "prof.out"))
        stats.sort_stats(args.sort).print_stats(args.top)
    shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    main()
