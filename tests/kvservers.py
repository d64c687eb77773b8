"""Real etcd and Redis servers for the key-value provider tests: started on free 127.0.0.1
ports with their data in the test's temporary directory, stopped by PID.

Writes go through small blocking clients (etcd's JSON gateway with urllib, Redis' protocol
on a socket): the proxy under test reads the stores with its own Twisted clients.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

from .proxyfixture import free_port

ETCD = shutil.which("etcd")
REDIS = shutil.which("redis-server")
NO_ETCD = "etcd is not installed (Debian package etcd-server)"
NO_REDIS = "redis-server is not installed (Debian package redis-server)"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class _Server:
    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)
        os.makedirs(directory, exist_ok=True)
        self.process: Optional[subprocess.Popen[bytes]] = None

    def command(self) -> List[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        log = open(os.path.join(self.directory, "server.log"), "ab")
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.directory
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command()[0]} exited: see {self.directory}")
            try:
                if self.ready():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.command()[0]} did not start within 15 s")

    def stop(self) -> None:
        """Kill the server (SIGKILL: a crash, not a goodbye) and reap it."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


class EtcdServer(_Server):
    """One etcd member; its data directory survives a stop, so a restart keeps the keys.
    With ``tls`` (paths of the CA, the server's certificate and key, a client's certificate
    and key) it serves HTTPS only and asks clients for a certificate of that CA."""

    def __init__(
        self, directory: str, tls: Optional[Tuple[str, str, str, str, str]] = None
    ) -> None:
        super().__init__(directory)
        self.port = free_port()
        self.peer = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.tls = tls
        self.token = ""
        self.scheme = "https" if tls else "http"

    def _context(self) -> Any:
        if self.tls is None:
            return None
        context = ssl.create_default_context(cafile=self.tls[0])
        context.load_cert_chain(self.tls[3], self.tls[4])
        return context

    def command(self) -> List[str]:
        client = f"{self.scheme}://127.0.0.1:{self.port}"
        peer = f"http://127.0.0.1:{self.peer}"
        extra = []
        if self.tls is not None:
            ca, cert, key = self.tls[:3]
            extra = [
                f"--cert-file={cert}",
                f"--key-file={key}",
                f"--trusted-ca-file={ca}",
                "--client-cert-auth",
            ]
        return [
            str(ETCD),
            *extra,
            "--name=test",
            f"--data-dir={os.path.join(self.directory, 'data')}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=test={peer}",
            "--log-level=error",
        ]

    def ready(self) -> bool:
        url = f"{self.scheme}://{self.endpoint}/health"
        with urllib.request.urlopen(url, timeout=1, context=self._context()) as answer:
            return bool(json.loads(answer.read()).get("health") == "true")

    def call(self, path: str, body: Dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = self.token
        request = urllib.request.Request(
            f"{self.scheme}://{self.endpoint}{path}",
            data=json.dumps(body).encode(),
            headers=headers,
        )
        with urllib.request.urlopen(request, timeout=5, context=self._context()) as answer:
            return json.loads(answer.read())

    def put(self, pairs: Dict[str, str]) -> None:
        """Put every pair in one transaction (one revision, one watch message)."""
        success = [
            {"request_put": {"key": _b64(key), "value": _b64(value)}}
            for key, value in pairs.items()
        ]
        self.call("/v3/kv/txn", {"success": success})

    def delete(self, key: str) -> None:
        self.call("/v3/kv/deleterange", {"key": _b64(key)})


class RedisServer(_Server):
    """One Redis server; with an append-only file synced on every write, so a restart after a
    kill keeps the keys."""

    def __init__(self, directory: str, *extra: str) -> None:
        super().__init__(directory)
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.extra = extra

    def command(self) -> List[str]:
        return [
            str(REDIS),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            self.directory,
            *self.extra,
        ]

    def ready(self) -> bool:
        try:
            return bool(self.command_(["PING"]) == "PONG")
        except RuntimeError as exc:
            return "NOAUTH" in str(exc)  # up, with a password

    def command_(self, words: List[str]) -> Any:
        """Send one command, read one reply (simple strings, integers, errors, bulk)."""
        payload = f"*{len(words)}\r\n".encode()
        for word in words:
            data = word.encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(payload)
            reader = sock.makefile("rb")
            line = reader.readline().rstrip(b"\r\n")
            if line[:1] == b"-":
                raise RuntimeError(line[1:].decode())
            if line[:1] == b"$":
                size = int(line[1:])
                return None if size < 0 else reader.read(size + 2)[:-2].decode()
            return line[1:].decode()

    def put(self, pairs: Dict[str, str]) -> None:
        words = ["MSET"]
        for key, value in pairs.items():
            words += [key, value]
        self.command_(words)

    def delete(self, key: str) -> None:
        self.command_(["DEL", key])
