#!/usr/bin/env python3
"""What an idle keep-alive HTTP connection costs tsproxy, in bytes (target: under 4 KiB).

The proxy runs in this process (ProxyService on 127.0.0.1, port 0) under tracemalloc; a
child process opens N connections, sends one request on each (answered 404 by the proxy
itself: no backend) and keeps them open and idle. The report is the Python heap growth
(tracemalloc, everything allocated and still held) and the RSS growth of this process,
both divided by N. Bounded: N is capped at 5000, the child is killed by its PID at the end
and after --timeout seconds at most; only 127.0.0.1 is used.

    .venv/bin/python bench/idle_memory.py --connections 1000
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import subprocess
import sys
import tempfile
import threading
import tracemalloc
from typing import Any, Dict

CLIENT = r"""
import socket, sys, time
port, count, wait = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
conns = []
for i in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /%d HTTP/1.1\r\nHost: nowhere.test\r\n\r\n" % i)
    got = b""
    while b"404 page not found" not in got:
        got += s.recv(4096)
    conns.append(s)
print("ready", flush=True)
time.sleep(wait)
"""

STATIC = """\
entryPoints:
  web:
    address: "127.0.0.1:0"
log:
  level: ERROR
"""


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument(
        "--rss-only", action="store_true", help="no tracemalloc (its own overhead inflates RSS)"
    )
    args = parser.parse_args()
    count = max(1, min(args.connections, 5000))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 200), hard))

    from twisted.internet import reactor

    from tsproxy.service import ProxyService

    config = tempfile.mkdtemp(prefix="tsproxy-idle-")
    with open(os.path.join(config, "tsproxy.yaml"), "w") as f:
        f.write(STATIC)
    service = ProxyService(config, reactor)
    service.startService()
    port = service.port_of("web")
    result: Dict[str, Any] = {}

    def run_clients() -> None:
        child = subprocess.Popen(
            [sys.executable, "-c", CLIENT, str(port), str(count), str(args.timeout)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            line = child.stdout.readline() if child.stdout is not None else ""
            result["ready"] = line.strip() == "ready"
            done = threading.Event()
            reactor.callFromThread(measure, done)  # type: ignore[attr-defined]
            done.wait(args.timeout)
        finally:
            child.kill()
            child.wait()
            reactor.callFromThread(finish)  # type: ignore[attr-defined]

    def measure(done: threading.Event) -> None:
        gc.collect()
        result["after"] = None if args.rss_only else tracemalloc.take_snapshot()
        result["rss_after"] = rss_kib()
        (factory,) = [f for f in service.factories if f.name == "web"]
        result["open"] = len(list(factory.connections))
        done.set()

    def finish() -> None:
        service.stopService()
        reactor.callLater(0.2, reactor.stop)

    def start() -> None:
        gc.collect()
        if not args.rss_only:
            tracemalloc.start()
        result["before"] = None if args.rss_only else tracemalloc.take_snapshot()
        result["rss_before"] = rss_kib()
        threading.Thread(target=run_clients, daemon=True).start()

    reactor.callWhenRunning(start)
    reactor.run()
    if not result.get("ready") or "after" not in result:
        print("clients did not get ready", file=sys.stderr)
        return 1
    print(f"idle keep-alive connections: {count} (proxy sees {result['open']} open)")
    rss = (result["rss_after"] - result["rss_before"]) * 1024
    print(f"RSS per connection: {rss / count:.0f} bytes (pages, noisy)")
    if args.rss_only:
        return 0
    stats = result["after"].compare_to(result["before"], "lineno")
    heap = sum(s.size_diff for s in stats)
    print(f"heap (tracemalloc) per connection: {heap / count:.0f} bytes")
    print("largest holders:")
    for stat in stats[:6]:
        frame = stat.traceback[0]
        print(f"  {stat.size_diff / count:8.0f} B/conn  {frame.filename}:{frame.lineno}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
