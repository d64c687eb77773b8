#!/usr/bin/env python3
"""Attack bench: tsproxy and nginx, configured alike, under slowloris, slow body, slow read,
stalled TLS handshakes and a UDP source-port flood, in one run.

For each proxy and each attack the script reports the attacking connections the proxy still
holds over time (as the attacker sees them: a connection is let go once the proxy closes it),
the proxy's open descriptors and RSS over time, the success rate of a normal client probing
the proxy meanwhile (HTTP, and UDP during the flood), the backend's open descriptors (a
proxy that dials the backend for a stalled client shows there), and how many lines the proxy
logged. A slow reader does not see the proxy close (the FIN waits behind unread data): for
slow read, the proxy's descriptors tell.
Both proxies run pinned to core 0 under the same open-files limit (``--nofile``, default 4096,
below the UDP session cap of 10,000: the case where one socket per session runs out) and the
same timeouts (``--timeout``, default 10 s): tsproxy's readTimeout/writeTimeout/idleTimeout,
nginx's client_header_timeout/client_body_timeout/send_timeout/keepalive_timeout, and a
3 s UDP session timeout on both; the TLS handshake is bounded by readTimeout and by
ssl_handshake_timeout (a TCP route ending TLS, to the same backend).

Safety bounds: everything is on 127.0.0.1, on free ports picked by binding port 0; each
attack opens at most ``--connections`` (default 1,000, max 2,000) TCP connections, or sends
from at most ``--udp-rate`` new source ports a second (default 2,000, max 5,000), for
``--duration`` seconds (default 30, max 60); every process is started here in its own
session and killed by its PID (its process group) on any exit, and the run directory removed
unless --keep.  Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from http_bench import (
    LOOPBACK,
    PROXY_CORE,
    REPO_ROOT,
    Processes,
    _tail,
    check_tsproxy_installed,
    free_ports,
    guarded,
    http_get,
    install_signal_handlers,
    rss_mb,
    snapshot,
    tree,
    tree_revision,
    wait_ready,
)

HOST = "bench.local"
ANSWER = "Hello app-v1\n"
ATTACKS = ("slowloris", "slow-body", "slow-read", "tls-hello", "udp-flood")
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
INSTALL = "apt-get install -y --no-install-recommends nginx libnginx-mod-stream"
#: Seconds between two drips of a slow client (a header line, a body byte).
DRIP_EVERY = 5.0
#: Seconds between two probes of the normal client.
PROBE_EVERY = 0.5
#: Seconds between two samples of held connections, descriptors and RSS.
SAMPLE_EVERY = 5.0
#: Size of the response the slow reader asks for and does not read.
BIG_BYTES = 1 << 20
UDP_SESSION_TIMEOUT = 3
_GONE = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0x2000)

UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    data, peer = s.recvfrom(65535)
    s.sendto(data, peer)
"""


# ---------------------------------------------------------------- configurations


def backend_conf(port: int, root: Path) -> str:
    return f"""# The backend (not under test): a 13-byte answer at /, a 1 MiB file at /big.
user root;
pid nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type text/plain;
    server {{
        listen {LOOPBACK}:{port} backlog=4096;
        location = / {{ return 200 "{ANSWER.strip()}\\n"; }}
        location /big {{ root {root}; }}
    }}
}}
"""


def nginx_conf(
    ports: Tuple[int, int, int], backend: int, echo: int, timeout: int, nofile: int, cert: Path
) -> str:
    http_port, udp_port, tls_port = ports
    return f"""# nginx under attack: 1 worker, the same timeouts as tsproxy.
load_module {NGINX_STREAM_MODULE};
user root;
pid nginx.pid;
error_log stderr warn;
worker_rlimit_nofile {nofile};
events {{ worker_connections {nofile}; }}
http {{
    access_log off;
    client_header_timeout {timeout}s;
    client_body_timeout {timeout}s;
    send_timeout {timeout}s;
    keepalive_timeout {timeout}s;
    upstream app {{
        server {LOOPBACK}:{backend};
        keepalive 64;
    }}
    server {{
        listen {LOOPBACK}:{http_port} backlog=4096;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
stream {{
    server {{
        listen {LOOPBACK}:{tls_port} ssl backlog=4096;
        ssl_certificate {cert}.crt;
        ssl_certificate_key {cert}.key;
        ssl_handshake_timeout {timeout}s;
        proxy_pass {LOOPBACK}:{backend};
    }}
    server {{
        listen {LOOPBACK}:{udp_port} udp;
        proxy_pass {LOOPBACK}:{echo};
        proxy_timeout {UDP_SESSION_TIMEOUT}s;
    }}
}}
"""


def tsproxy_static(ports: Tuple[int, int, int], timeout: int) -> str:
    http_port, udp_port, tls_port = ports
    return f"""entryPoints:
  web:
    address: "{LOOPBACK}:{http_port}"
    transport:
      respondingTimeouts:
        readTimeout: {timeout}s
        writeTimeout: {timeout}s
        idleTimeout: {timeout}s
  tls:
    address: "{LOOPBACK}:{tls_port}"
    transport:
      respondingTimeouts: {{readTimeout: {timeout}s}}
  dns:
    address: "{LOOPBACK}:{udp_port}/udp"
    udp: {{timeout: {UDP_SESSION_TIMEOUT}s}}
log:
  level: WARN
"""


def tsproxy_routes(backend: int, echo: int, cert: Path) -> str:
    data = {
        key: base64.b64encode(cert.with_suffix(ext).read_bytes()).decode()
        for key, ext in (("tls.crt", ".crt"), ("tls.key", ".key"))
    }
    docs = [
        "apiVersion: v1\nkind: Secret\nmetadata: {name: cert}\ntype: kubernetes.io/tls\n"
        f"data:\n  tls.crt: {data['tls.crt']}\n  tls.key: {data['tls.key']}\n"
    ]
    for name, port, proto in (("app", backend, "TCP"), ("echo", echo, "UDP")):
        docs.append(
            f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n"
            f"spec: {{ports: [{{name: main, port: 80, protocol: {proto}}}]}}\n"
        )
        docs.append(
            f"apiVersion: v1\nkind: Endpoints\nmetadata: {{name: {name}}}\n"
            f"subsets: [{{addresses: [{{ip: {LOOPBACK}}}],"
            f" ports: [{{name: main, port: {port}}}]}}]\n"
        )
    docs.append(
        "apiVersion: traefik.io/v1alpha1\nkind: IngressRoute\nmetadata: {name: app}\n"
        f"spec:\n  entryPoints: [web]\n  routes:\n    - match: Host(`{HOST}`)\n"
        "      services: [{name: app, port: 80}]\n"
    )
    docs.append(
        "apiVersion: traefik.io/v1alpha1\nkind: IngressRouteTCP\nmetadata: {name: tls}\n"
        "spec:\n  entryPoints: [tls]\n  routes:\n    - match: HostSNI(`*`)\n"
        "      services: [{name: app, port: 80}]\n  tls: {secretName: cert}\n"
    )
    docs.append(
        "apiVersion: traefik.io/v1alpha1\nkind: IngressRouteUDP\nmetadata: {name: echo}\n"
        "spec:\n  entryPoints: [dns]\n  routes:\n    - services: [{name: echo, port: 80}]\n"
    )
    return "---\n".join(docs)


# ---------------------------------------------------------------- measuring


@dataclass
class Sample:
    t: float
    held: int
    fds: int
    rss_mb: float
    backend_fds: int = 0


@dataclass
class Result:
    target: str
    attack: str
    #: Attacking connections established (or UDP source ports used).
    opened: int = 0
    refused: int = 0  # attacking connections that could not connect
    samples: List[Sample] = field(default_factory=list)
    probes_ok: int = 0
    probes: int = 0
    udp_probes_ok: int = 0
    udp_probes: int = 0
    log_lines: int = 0
    #: The backend's descriptors just before the attack (what the attack added is the rest).
    backend_fds_before: int = 0
    error: str = ""

    def at(self, t: float) -> Optional[Sample]:
        return next((s for s in self.samples if s.t >= t - 0.5), None)


def proc_fds(pids: set) -> int:
    count = 0
    for pid in pids:
        try:
            count += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return count


def client_hello() -> bytes:
    """The ClientHello Python's ssl client sends (made in memory): the whole attack is to
    send it and nothing more."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="bench.local")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class Prober(threading.Thread):
    """The normal client: an HTTP GET on a fresh connection (and a UDP echo) every
    PROBE_EVERY seconds, each with a 2 s (1 s for UDP) timeout."""

    def __init__(self, http_port: int, udp_port: Optional[int]) -> None:
        super().__init__(daemon=True)
        self.http_port = http_port
        self.udp_port = udp_port
        self.stop_event = threading.Event()
        self.ok = self.count = self.udp_ok = self.udp_count = 0

    def run(self) -> None:
        udp = None
        if self.udp_port is not None:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.settimeout(1.0)
        try:
            while not self.stop_event.wait(PROBE_EVERY):
                self.count += 1
                try:
                    status, body = http_get(self.http_port, HOST, timeout=2.0)
                    self.ok += status == 200 and body == ANSWER
                except Exception:
                    pass
                if udp is not None:
                    self.udp_count += 1
                    try:
                        udp.sendto(b"probe %d" % self.udp_count, (LOOPBACK, self.udp_port))
                        while True:
                            data = udp.recv(100)
                            if data == b"probe %d" % self.udp_count:
                                self.udp_ok += 1
                                break
                    except OSError:
                        pass
        finally:
            if udp is not None:
                udp.close()

    def finish(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)


class Attack:
    """One attack on one proxy, for ``duration`` seconds."""

    def __init__(
        self,
        kind: str,
        args: argparse.Namespace,
        ports: Tuple[int, int, int],
        pid: int,
        backend_pid: int,
    ) -> None:
        self.kind = kind
        self.args = args
        self.http_port, self.udp_port, self.tls_port = ports
        self.pid = pid
        self.backend_pid = backend_pid

    def sample(self, result: Result, start: float, held: int) -> None:
        snap = snapshot()
        pids = tree(snap, self.pid)
        result.samples.append(
            Sample(
                round(time.monotonic() - start, 1),
                held,
                proc_fds(pids),
                rss_mb(pids),
                proc_fds(tree(snap, self.backend_pid)),
            )
        )

    def run(self, result: Result) -> None:
        result.backend_fds_before = proc_fds(tree(snapshot(), self.backend_pid))
        prober = Prober(self.http_port, self.udp_port if self.kind == "udp-flood" else None)
        prober.start()
        try:
            if self.kind == "udp-flood":
                self.udp_flood(result)
            else:
                self.slow_tcp(result)
        finally:
            prober.finish()
        result.probes_ok, result.probes = prober.ok, prober.count
        result.udp_probes_ok, result.udp_probes = prober.udp_ok, prober.udp_count

    def slow_tcp(self, result: Result) -> None:
        """Open the connections, send the start of a request, then drip (or not read)."""
        first, drip = {
            "slowloris": (f"GET / HTTP/1.1\r\nHost: {HOST}\r\n".encode(), b"X-a: b\r\n"),
            "slow-body": (
                f"POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 1000000\r\n\r\n".encode(),
                b"a",
            ),
            "slow-read": (f"GET /big HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode(), b""),
            "tls-hello": (client_hello(), b""),
        }[self.kind]
        port = self.tls_port if self.kind == "tls-hello" else self.http_port
        poller = select.poll()
        connecting: Dict[int, socket.socket] = {}
        held: Dict[int, socket.socket] = {}
        start = time.monotonic()
        end = start + self.args.duration
        try:
            for _ in range(self.args.connections):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                if self.kind == "slow-read":
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.setblocking(False)
                s.connect_ex((LOOPBACK, port))
                connecting[s.fileno()] = s
                poller.register(s, select.POLLOUT | _GONE)
            next_drip = start + DRIP_EVERY
            next_sample = start
            while True:
                now = time.monotonic()
                if now >= next_sample:
                    self.sample(result, start, len(held))
                    next_sample += SAMPLE_EVERY
                if now >= end:
                    break
                for fd, events in poller.poll(200):
                    waiting = connecting.pop(fd) if fd in connecting else None
                    if waiting is not None:
                        s = waiting
                        if events & _GONE or s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                            result.refused += 1
                            poller.unregister(fd)
                            s.close()
                            continue
                        result.opened += 1
                        try:
                            s.send(first)
                        except OSError:
                            poller.unregister(fd)
                            s.close()
                            continue
                        held[fd] = s
                        poller.modify(fd, _GONE)
                    elif events & _GONE and fd in held:
                        poller.unregister(fd)
                        held.pop(fd).close()
                if drip and time.monotonic() >= next_drip:
                    next_drip += DRIP_EVERY
                    for fd, s in list(held.items()):
                        try:
                            s.send(drip)
                        except OSError:
                            poller.unregister(fd)
                            held.pop(fd).close()
        finally:
            for s in list(connecting.values()) + list(held.values()):
                s.close()

    def udp_flood(self, result: Result) -> None:
        """New source ports at ``--udp-rate`` a second: a socket, one datagram, closed."""
        start = time.monotonic()
        end = start + self.args.duration
        per_tick = max(1, self.args.udp_rate // 10)
        next_tick = next_sample = start
        while True:
            now = time.monotonic()
            if now >= next_sample:
                self.sample(result, start, 0)
                next_sample += SAMPLE_EVERY
            if now >= end:
                break
            if now < next_tick:
                time.sleep(min(next_tick, next_sample) - now)
                continue
            next_tick += 0.1
            socks = []
            try:
                for _ in range(per_tick):
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    socks.append(s)
                    try:
                        s.sendto(b"flood", (LOOPBACK, self.udp_port))
                        result.opened += 1
                    except OSError:
                        result.refused += 1
            finally:
                for s in socks:
                    s.close()
        # The attacker's view has no "held": report the proxy's descriptors instead.
        for sample in result.samples:
            sample.held = -1


# ---------------------------------------------------------------- the bench


class Bench:
    def __init__(self, args: argparse.Namespace, run_dir: Path, procs: Processes) -> None:
        self.args = args
        self.run_dir = run_dir
        self.procs = procs
        self.backend_port, self.http_port, tls_port = free_ports(3)
        self.echo_port, udp_port = free_ports(2, socket.SOCK_DGRAM)
        self.ports = (self.http_port, udp_port, tls_port)
        self.cert = run_dir / "cert"
        self.backend_pid = 0

    def start_backends(self) -> None:
        prefix = self.run_dir / "backend"
        (prefix / "www").mkdir(parents=True)
        (prefix / "www" / "big").write_bytes(b"x" * BIG_BYTES)
        (prefix / "nginx.conf").write_text(backend_conf(self.backend_port, prefix / "www"))
        argv = ["nginx", "-p", f"{prefix}/", "-c", "nginx.conf", "-e", "stderr"]
        argv += ["-g", "daemon off; worker_processes 1;"]
        proc = self.procs.start(argv, prefix / "out.log")
        self.backend_pid = proc.pid
        try:
            wait_ready(proc, self.backend_port, None, 10.0)
        except RuntimeError as exc:
            raise RuntimeError(f"backend nginx: {exc}\n{_tail(prefix / 'out.log')}") from None
        self.procs.start(
            [sys.executable, "-c", UDP_ECHO, str(self.echo_port)], self.run_dir / "echo.log"
        )
        argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        argv += ["-nodes", "-days", "2", "-subj", "/CN=bench.local"]
        argv += ["-keyout", f"{self.cert}.key", "-out", f"{self.cert}.crt"]
        subprocess.run(argv, check=True, capture_output=True, timeout=60)

    def limited(self, argv: List[str]) -> List[str]:
        """``argv`` on core 0 with the open-files limit of the run."""
        nofile = self.args.nofile
        return ["prlimit", f"--nofile={nofile}:{nofile}", "taskset", "-c", PROXY_CORE, *argv]

    def start_target(self, name: str) -> Tuple[subprocess.Popen, Path]:
        a = self.args
        prefix = self.run_dir / name
        prefix.mkdir()
        log = prefix / "out.log"
        if name == "nginx":
            conf = nginx_conf(
                self.ports, self.backend_port, self.echo_port, a.timeout, a.nofile, self.cert
            )
            (prefix / "nginx.conf").write_text(conf)
            argv = ["nginx", "-p", f"{prefix}/", "-c", "nginx.conf", "-e", "stderr"]
            argv += ["-g", "daemon off; worker_processes 1;"]
            proc = self.procs.start(self.limited(argv), log)
        else:
            (prefix / "tsproxy.yaml").write_text(tsproxy_static(self.ports, a.timeout))
            routes = tsproxy_routes(self.backend_port, self.echo_port, self.cert)
            (prefix / "routes.yaml").write_text(routes)
            argv = [a.tsproxy_python, "-m", "twisted", "tsproxy", "-c", str(prefix)]
            proc = self.procs.start(self.limited(argv), log, cwd=REPO_ROOT)
        try:
            wait_ready(proc, self.http_port, HOST, 30.0)
        except RuntimeError as exc:
            self.procs.stop(proc)
            raise RuntimeError(f"{name}: {exc}\n{_tail(log)}") from None
        return proc, log

    def run_target(self, name: str) -> List[Result]:
        results = []
        proc, log = self.start_target(name)
        try:
            for kind in self.args.attacks:
                print(f"-- {name}: {kind} ...", flush=True)
                result = Result(name, kind)
                lines_before = _count_lines(log)
                try:
                    attack = Attack(kind, self.args, self.ports, proc.pid, self.backend_pid)
                    attack.run(result)
                except OSError as exc:
                    result.error = f"{type(exc).__name__}: {exc}"
                result.log_lines = _count_lines(log) - lines_before
                print("   " + summary(result), flush=True)
                results.append(result)
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited during {kind}:\n{_tail(log)}")
                # Let the attack's leftovers (UDP sessions, closing sockets) go first.
                time.sleep(UDP_SESSION_TIMEOUT + 2)
        finally:
            self.procs.stop(proc)
        return results


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def _pct(ok: int, count: int) -> str:
    return f"{ok}/{count} ({100.0 * ok / count:.0f} %)" if count else "-"


def summary(r: Result) -> str:
    if r.error:
        return f"error: {r.error}"
    if r.attack == "udp-flood":
        text = f"{r.opened} source ports; proxy fds "
        text += " ".join(f"{s.t:g}s:{s.fds}" for s in r.samples)
    else:
        text = "held (proxy fds, backend fds) "
        text += " ".join(f"{s.t:g}s:{s.held}({s.fds},{s.backend_fds})" for s in r.samples)
    rss = max((s.rss_mb for s in r.samples), default=0.0)
    text += f"; probes {_pct(r.probes_ok, r.probes)}"
    if r.udp_probes:
        text += f", UDP probes {_pct(r.udp_probes_ok, r.udp_probes)}"
    return text + f"; max RSS {rss:.0f} MB, {r.log_lines} log lines"


def print_table(results: List[Result], duration: int) -> None:
    marks = [t for t in (5, 10, 15, 20, 30, 45, 60) if t <= duration]
    columns = ["proxy", "attack", "opened"] + [f"held (fds) {t}s" for t in marks]
    columns += ["HTTP probes ok", "UDP probes ok", "max fds", "backend fds added", "max RSS MB"]
    columns += ["log lines"]
    print("| " + " | ".join(columns) + " |")
    print("|---" * len(columns) + "|")
    for r in results:
        if r.error:
            print(f"| {r.target} | {r.attack} | error: {r.error} |" + " |" * (len(columns) - 3))
            continue
        held = []
        for t in marks:
            at = r.at(t)
            if at is None:
                held.append("")
            else:
                held.append(f"({at.fds})" if at.held < 0 else f"{at.held} ({at.fds})")
        cells = [r.target, r.attack, str(r.opened), *held, _pct(r.probes_ok, r.probes)]
        cells += [_pct(r.udp_probes_ok, r.udp_probes)]
        cells += [str(max((s.fds for s in r.samples), default=0))]
        added = max((s.backend_fds for s in r.samples), default=0) - r.backend_fds_before
        cells += [str(max(added, 0))]
        cells += [f"{max((s.rss_mb for s in r.samples), default=0.0):.0f}", str(r.log_lines)]
        print("| " + " | ".join(cells) + " |")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--tsproxy-python",
        default=str(REPO_ROOT / ".venv" / "bin" / "python"),
        help="interpreter with tsproxy's dependencies (default: %(default)s)",
    )
    p.add_argument("--skip-tsproxy", action="store_true", help="nginx only (check the harness)")
    p.add_argument("--skip-nginx", action="store_true", help="tsproxy only")
    p.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated subset")
    p.add_argument("--duration", type=int, default=30, help="seconds per attack (max 60)")
    p.add_argument("--connections", type=int, default=1000, help="per TCP attack (max 2000)")
    p.add_argument("--udp-rate", type=int, default=2000, help="new source ports/s (max 5000)")
    p.add_argument("--timeout", type=int, default=10, help="the proxies' timeouts, seconds")
    p.add_argument("--nofile", type=int, default=4096, help="the proxies' open-files limit")
    p.add_argument("--json", type=Path, default=None, help="also save the results to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary run directory")
    args = p.parse_args(argv)
    args.attacks = [a for a in args.attacks.split(",") if a]
    unknown = [a for a in args.attacks if a not in ATTACKS]
    if unknown:
        p.error(f"unknown attacks {unknown}; known: {', '.join(ATTACKS)}")
    if not 1 <= args.duration <= 60:
        p.error("--duration must be between 1 and 60 seconds")
    if not 1 <= args.connections <= 2000:
        p.error("--connections must be between 1 and 2000")
    if not 1 <= args.udp_rate <= 5000:
        p.error("--udp-rate must be between 1 and 5000")
    if not 256 <= args.nofile <= 65536:
        p.error("--nofile must be between 256 and 65536")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    tools = ("nginx", "taskset", "prlimit", "openssl")
    missing = [tool for tool in tools if not shutil.which(tool)]
    if not os.path.exists(NGINX_STREAM_MODULE):
        missing.append("libnginx-mod-stream")
    if missing:
        print(f"missing: {', '.join(missing)}; install with:\n  {INSTALL}", file=sys.stderr)
        return 2
    if not args.skip_tsproxy:
        check_tsproxy_installed(args.tsproxy_python)
    install_signal_handlers()
    procs = Processes()
    run_dir = Path(tempfile.mkdtemp(prefix="tsproxy-attack-bench-"))
    started = time.time()

    def run() -> int:
        bench = Bench(args, run_dir, procs)
        print(
            f"run dir {run_dir}; {args.connections} connections or {args.udp_rate} source "
            f"ports/s per attack, {args.duration}s each; proxies on core {PROXY_CORE} with "
            f"timeouts {args.timeout}s and ulimit -n {args.nofile}"
        )
        if not args.skip_tsproxy:
            print(f"  tsproxy tree: {tree_revision()}")
        bench.start_backends()
        targets = [] if args.skip_nginx else ["nginx"]
        targets += [] if args.skip_tsproxy else ["tsproxy"]
        results: List[Result] = []
        for name in targets:
            results.extend(bench.run_target(name))
        print()
        print_table(results, args.duration)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            data = {
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                "settings": {
                    k: v for k, v in vars(args).items() if k not in ("json", "tsproxy_python")
                },
                "results": [asdict(r) for r in results],
            }
            args.json.write_text(json.dumps(data, indent=2) + "\n")
            print(f"saved {args.json}")
        return 0 if not any(r.error for r in results) else 1

    return guarded(run, procs, run_dir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
