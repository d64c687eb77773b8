#!/usr/bin/env python3
"""What slow readers of a large body cost tsproxy: RSS growth per connection.

The proxy runs in this process (ProxyService on 127.0.0.1, port 0). A backend child process
(tsproxy.testing's app) streams ``/bytes/N``; a client child process opens C connections,
asks each for the body and reads nothing. Once the proxy's RSS has settled (or after
--settle seconds), the growth divided by C is what one slow reader holds: the relay buffers
bound it near 64 KiB plus what the kernel's socket buffers take (not in RSS). Bounded: C at
most 2000, N at most 16 MiB, children killed by PID, 127.0.0.1 only.

    .venv/bin/python bench/slow_readers.py --connections 1000 --size 1048576
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict

BACKEND = r"""
import sys
from twisted.internet import reactor
from tsproxy.testing import listen_app
port = listen_app(reactor, "big")
print(port.getHost().port, flush=True)
reactor.callLater(float(sys.argv[1]), reactor.stop)
reactor.run()
"""

CLIENT = r"""
import socket, sys, time
port, count, size = (int(a) for a in sys.argv[1:4])
wait = float(sys.argv[4])
conns = []
for i in range(count):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: big.test\r\n\r\n" % size)
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

ROUTE = """\
apiVersion: v1
kind: Service
metadata:
  name: big
spec:
  ports:
    - name: http
      port: 80
---
apiVersion: v1
kind: Endpoints
metadata:
  name: big
subsets:
  - addresses:
      - ip: 127.0.0.1
    ports:
      - name: http
        port: {port}
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: big
spec:
  routes:
    - match: Host(`big.test`)
      kind: Rule
      services:
        - name: big
          port: 80
"""


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1 << 20)
    parser.add_argument("--settle", type=float, default=10.0)
    args = parser.parse_args()
    count = max(1, min(args.connections, 2000))
    size = max(1, min(args.size, 16 << 20))
    limit = args.settle + 30
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * count + 200), hard))
    children = []
    try:
        backend = subprocess.Popen(
            [sys.executable, "-c", BACKEND, str(limit)], stdout=subprocess.PIPE, text=True
        )
        children.append(backend)
        backend_port = int(backend.stdout.readline())  # type: ignore[union-attr]

        from twisted.internet import reactor

        from tsproxy.service import ProxyService

        config = tempfile.mkdtemp(prefix="tsproxy-slow-")
        with open(os.path.join(config, "tsproxy.yaml"), "w") as f:
            f.write(STATIC)
        with open(os.path.join(config, "big.yaml"), "w") as f:
            f.write(ROUTE.format(port=backend_port))
        service = ProxyService(config, reactor)
        service.startService()
        port = service.port_of("web")
        result: Dict[str, Any] = {"rss_before": rss_kib()}

        def run_clients() -> None:
            client = subprocess.Popen(
                [sys.executable, "-c", CLIENT, str(port), str(count), str(size), str(limit)],
                stdout=subprocess.PIPE,
                text=True,
            )
            children.append(client)
            client.stdout.readline()  # type: ignore[union-attr]
            deadline = time.monotonic() + args.settle
            last = -1
            while time.monotonic() < deadline:
                time.sleep(1.0)
                now = rss_kib()
                if now == last:
                    break
                last = now
            result["rss_after"] = rss_kib()
            reactor.callFromThread(finish)  # type: ignore[attr-defined]

        def finish() -> None:
            service.stopService()
            reactor.callLater(0.2, reactor.stop)

        reactor.callWhenRunning(lambda: threading.Thread(target=run_clients, daemon=True).start())
        reactor.run()
    finally:
        for child in children:
            child.kill()
            child.wait()
    grown = (result["rss_after"] - result["rss_before"]) * 1024
    print(f"slow readers: {count}, body {size} bytes")
    print(f"RSS {result['rss_before'] / 1024:.0f} -> {result['rss_after'] / 1024:.0f} MB")
    print(f"per slow reader: {grown / count / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
