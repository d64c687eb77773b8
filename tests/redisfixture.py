"""A real redis-server for the distributed rateLimit tests, on a free port of 127.0.0.1,
stopped by its PID when the test ends; tests skip when redis-server is not installed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Optional, Tuple

from twisted.trial.unittest import SkipTest

__all__ = ["RedisServer"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """Start with `start()`, stop with `stop()` (both synchronous, bounded in time)."""

    def __init__(
        self, password: Optional[str] = None, tls: Optional[Tuple[bytes, bytes]] = None
    ) -> None:
        """`tls`: (certificate PEM, key PEM) to serve TLS only (no client certificates)."""
        self.password = password
        self.tls = tls
        self.port = 0
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.directory = ""

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SkipTest("redis-server is not installed (Debian package redis-server)")
        self.directory = tempfile.mkdtemp(prefix="tsproxy-redis-")
        self.port = _free_port()
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", self.directory, "--protected-mode", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        if self.tls is not None:
            cert, key = os.path.join(self.directory, "c.pem"), os.path.join(self.directory, "k.pem")
            for path, pem in ((cert, self.tls[0]), (key, self.tls[1])):
                with open(path, "wb") as stream:
                    stream.write(pem)
            args[2] = "0"
            args += ["--tls-port", str(self.port), "--tls-cert-file", cert]
            args += ["--tls-key-file", key, "--tls-auth-clients", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if self.tls is not None:
                        return self  # listening; the TLS handshake is the client's test
                    sock.sendall(b"PING\r\n")
                    reply = sock.recv(64)
                    if reply.startswith((b"+PONG", b"-NOAUTH")):
                        return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = ""
