"""Entrypoints with proxyProtocol through a running proxy (tsproxy.tcp.proxyaccept): PROXY
v1 and v2 headers read before HTTP, TLS and TCP routing, with real clients on 127.0.0.1.

What each case expects was seen on Traefik 3.7.15 with the same setup (docs/security.md)."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
from typing import Any, List, Sequence, Union

from twisted.internet import defer, reactor, task, threads

from tests.certs import make_ca, make_leaf, secret_yaml
from tests.proxyfixture import ENDPOINTS, SERVICE
from tests.tcpfixture import (
    BACKEND,
    HAPROXY,
    HAPROXY_CFG,
    TCPProxyTestCase,
    free_tcp_port,
    wait_listening,
)
from tests.tlsclient import client_context
from tsproxy.tcp import proxyproto

CA = make_ca()
FRONT = make_leaf(CA, "web.test", dns=["web.test"])

STATIC = """\
entryPoints:
  web:
    address: "127.0.0.1:0"
    proxyProtocol: {trustedIPs: ["127.0.0.1"]}
    transport:
      lifeCycle: {graceTimeOut: 0s}
      respondingTimeouts: {readTimeout: 5s}
  other:
    address: "127.0.0.1:0"
    proxyProtocol: {trustedIPs: ["10.0.0.0/8"]}
    transport: {lifeCycle: {graceTimeOut: 0s}}
  tcp:
    address: "127.0.0.1:0"
    proxyProtocol: {insecure: true}
    transport: {lifeCycle: {graceTimeOut: 0s}}
log:
  level: ERROR
"""

ROUTES = """\
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: only-one}
spec: {ipAllowList: {sourceRange: ["1.2.3.4/32"]}}
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: plain}
spec:
  entryPoints: [web, other]
  routes:
    - match: Host(`web.test`)
      services: [{name: web-app, port: 80}]
    - match: Host(`web.test`) && PathPrefix(`/allow`)
      middlewares: [{name: only-one}]
      services: [{name: web-app, port: 80}]
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: secure}
spec:
  entryPoints: [web]
  routes:
    - match: Host(`web.test`)
      services: [{name: web-app, port: 80}]
  tls: {secretName: front}
---
apiVersion: traefik.io/v1alpha1
kind: IngressRouteTCP
metadata: {name: by-ip}
spec:
  entryPoints: [tcp]
  routes:
    - match: ClientIP(`1.2.3.4`)
      services: [{name: chosen, port: 7000, proxyProtocol: {version: 1}}]
    - match: HostSNI(`*`)
      services: [{name: rest, port: 7000}]
"""


SIG = proxyproto.SIGNATURE
V1 = b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\n"
V2 = proxyproto.encode_v2(("1.2.3.4", 1111), ("5.6.7.8", 80))
V2_LOCAL = SIG + b"\x20" + V2[13:]
#: v2 with a 60,000-byte TLV (type 0xE0, custom) after the addresses.
BIG = (
    SIG
    + b"\x21\x11"
    + (12 + 3 + 60000).to_bytes(2, "big")
    + V2[16:]
    + b"\xe0\xea\x60"
    + b"t" * 60000
)
REQUEST = b"GET /headers HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n"

Piece = Union[bytes, float, str]  # bytes to send, seconds to wait, or FIN (half-close)
FIN = "fin"


def _session(port: int, pieces: Sequence[Piece], tls: bool = False) -> bytes:
    """Send the pieces (TLS after them, with ``tls``), read until closed; b"" if refused."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in pieces:
            if isinstance(piece, float):
                time.sleep(piece)
            elif piece == FIN:
                sock.shutdown(socket.SHUT_WR)
            else:
                sock.sendall(piece)  # type: ignore[arg-type]
        conn: Any = sock
        if tls:
            conn = client_context().wrap_socket(sock, server_hostname="web.test")
            conn.sendall(REQUEST)
        got = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                break
            if not chunk:
                break
            got += chunk
        return got


def _forwarded(answer: bytes) -> List[str]:
    """The X-Forwarded-For and X-Real-Ip lines the backend saw, or the status line."""
    if not answer.startswith(b"HTTP/1.1 200"):
        return [answer.split(b"\r\n")[0].decode("latin-1")]
    body = answer.split(b"\r\n\r\n", 1)[1].decode("latin-1")
    return [
        line for line in body.splitlines() if line.startswith(("x-forwarded-for:", "x-real-ip:"))
    ]


def _from(ip: str) -> List[str]:
    return [f"x-forwarded-for: {ip}", f"x-real-ip: {ip}"]


class _Behind(TCPProxyTestCase):
    """The proxy with the entrypoints of STATIC and the routes of ROUTES."""

    def start(self, clock: Any = None, extra: str = "") -> None:
        app = self.start_app("web-app")
        docs = [SERVICE.format(name="web-app"), ENDPOINTS.format(name="web-app", port=app)]
        docs.append(secret_yaml("front", {"tls.crt": FRONT.cert_pem, "tls.key": FRONT.key_pem}))
        for name in ("chosen", "rest"):
            docs.append(BACKEND.format(name=name, port=self.start_greeter(name)))
        self.write("tsproxy.yaml", STATIC + extra)
        self.write("routes.yaml", "---\n".join(docs + [ROUTES]))
        self.start_proxy(clock=clock)

    def port(self, name: str) -> int:
        assert self.service is not None
        return self.service.port_of(name)

    def talk(self, name: str, *pieces: Piece, tls: bool = False) -> Any:
        return threads.deferToThread(_session, self.port(name), pieces, tls)


class ProxyAcceptTests(_Behind):
    """HTTP, HTTPS and TCP routers behind a load balancer sending PROXY headers."""

    @defer.inlineCallbacks
    def test_http(self) -> None:
        """From a trusted peer the header's source is the client HTTP backends are told of,
        in v1 and v2, IPv6 too, split anywhere; no header, v1 UNKNOWN and v2 LOCAL keep the
        peer's address."""
        self.start()
        v6 = proxyproto.encode_v1(("2001:db8::1", 1111), ("2001:db8::2", 80))
        cases = [
            ((V1 + REQUEST,), _from("1.2.3.4")),
            ((V2 + REQUEST,), _from("1.2.3.4")),
            ((v6 + REQUEST,), _from("2001:db8::1")),
            ((proxyproto.encode_v2(("2001:db8::1", 1), ("2001:db8::2", 2)), REQUEST), _from("2001:db8::1")),
            ((V1[:3], 0.05, V1[3:20], 0.05, V1[20:], 0.05, REQUEST), _from("1.2.3.4")),
            ((V2[:10], 0.05, V2[10:20], 0.05, V2[20:] + REQUEST), _from("1.2.3.4")),
            ((BIG[:15], 0.05, BIG[15:30000], 0.05, BIG[30000:] + REQUEST), _from("1.2.3.4")),
            ((REQUEST,), _from("127.0.0.1")),
            ((b"PROXY UNKNOWN\r\n" + REQUEST,), _from("127.0.0.1")),
            ((V2_LOCAL + REQUEST,), _from("127.0.0.1")),
        ]  # fmt: skip
        for pieces, expected in cases:
            got = yield self.talk("web", *pieces)
            self.assertEqual(_forwarded(got), expected, pieces)

    @defer.inlineCallbacks
    def test_accessLog(self) -> None:
        """The access log's client is the header's source, port included."""
        path = os.path.join(self.config_dir, "access.log")
        self.start(extra=f"accessLog: {{filePath: {path!r}, format: json}}\n")
        got = yield self.talk("web", V1 + REQUEST)
        self.assertEqual(_forwarded(got), _from("1.2.3.4"))
        assert self.service is not None
        yield self.service.stopService()
        with open(path) as log:
            entry = json.loads(log.readline())
        self.assertEqual(
            (entry["ClientAddr"], entry["ClientHost"], entry["ClientPort"]),
            ("1.2.3.4:1111", "1.2.3.4", "1111"),
        )

    @defer.inlineCallbacks
    def test_malformed(self) -> None:
        """A malformed header closes the connection without a byte, from any peer."""
        self.start()
        for data in (
            b"PROXY TCP4 1.2.3 5.6.7.8 1111 80\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\n",
            b"PROXY TCP4 " + b"1" * 120 + b"\r\n",
            SIG + b"\x21\x00\x00\x00",
            SIG + b"\x31" + V2[13:],
        ):
            for name in ("web", "other", "tcp"):
                got = yield self.talk(name, data + REQUEST)
                self.assertEqual(got, b"", (name, data))
        yield self.wait_no_connections()

    @defer.inlineCallbacks
    def test_untrusted(self) -> None:
        """From a peer outside trustedIPs the header is read and dropped (go-proxyproto's
        IGNORE policy): the request is served, and the client is the peer."""
        self.start()
        for pieces in ((V1 + REQUEST,), (V2 + REQUEST,), (REQUEST,)):
            got = yield self.talk("other", *pieces)
            self.assertEqual(_forwarded(got), _from("127.0.0.1"), pieces)

    @defer.inlineCallbacks
    def test_ipAllowList(self) -> None:
        """ipAllowList judges the header's source."""
        self.start()
        allow = REQUEST.replace(b"/headers", b"/allow/headers")
        got = yield self.talk("web", V1 + allow)
        self.assertTrue(got.startswith(b"HTTP/1.1 200 OK\r\n"), got)
        other = b"PROXY TCP4 1.2.3.5 5.6.7.8 1111 80\r\n"
        got = yield self.talk("web", other + allow)
        self.assertEqual(_forwarded(got), ["HTTP/1.1 403 Forbidden"])
        got = yield self.talk("web", allow)
        self.assertEqual(_forwarded(got), ["HTTP/1.1 403 Forbidden"])

    @defer.inlineCallbacks
    def test_https(self) -> None:
        """The header comes before the ClientHello: TLS ends here, and the backend is told
        of the header's source."""
        self.start()
        for header in (V1, V2):
            got = yield self.talk("web", header, tls=True)
            self.assertEqual(_forwarded(got), _from("1.2.3.4"))

    @defer.inlineCallbacks
    def test_tcpClientIP(self) -> None:
        """A TCP router's ClientIP matches the header's source, and the PROXY header sent on
        to its backend carries the header's source and destination (Traefik's LocalAddr of
        such a connection); others go to the catch-all router, with the header dropped."""
        self.start()
        for header in (V1, V2):
            got = yield self.talk("tcp", header, b"ping", FIN)
            self.assertTrue(got.startswith(b"HELLO chosen"), got)
        for header in (b"PROXY TCP4 1.2.3.9 5.6.7.8 1111 80\r\n", V2_LOCAL, b""):
            got = yield self.talk("tcp", header + b"ping", FIN)
            self.assertTrue(got.startswith(b"HELLO rest"), got)
        yield self.wait_no_connections()
        received = self.greeters["chosen"].received
        self.assertEqual(b"".join(received), (V1 + b"ping") * 2)
        self.assertEqual(b"".join(self.greeters["rest"].received), b"ping" * 3)

    @defer.inlineCallbacks
    def test_readTimeout(self) -> None:
        """A header begun and not over within readTimeout closes the connection."""
        clock = task.Clock()
        self.start(clock=clock)
        done = self.talk("web", V1[:20])
        yield task.deferLater(reactor, 0.2, lambda: None)
        self.assertFalse(done.called)
        clock.advance(5)
        got = yield done
        self.assertEqual(got, b"")

    @defer.inlineCallbacks
    def test_shutdown(self) -> None:
        """A connection still waiting for its header is closed when the proxy stops."""
        self.start()
        done = self.talk("web", b"PROXY")
        yield task.deferLater(reactor, 0.2, lambda: None)
        assert self.service is not None
        yield self.service.stopService()
        got = yield done
        self.assertEqual(got, b"")


class HAProxyFrontTests(_Behind):
    """A real HAProxy in front (``send-proxy``, ``send-proxy-v2``): the client it passes on
    (here the one of the header our client sends it, ``accept-proxy``) is the client."""

    if HAPROXY is None:
        skip = "haproxy is not installed"

    @defer.inlineCallbacks
    def haproxy(self, target: int, send: str) -> Any:
        front = free_tcp_port()
        path = os.path.join(self.config_dir, "haproxy.cfg")
        with open(path, "w") as cfg:
            cfg.write(HAPROXY_CFG % (front, target, send))
        proc = subprocess.Popen(
            [str(HAPROXY), "-db", "-q", "-f", path],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        yield wait_listening(front)
        return front

    @defer.inlineCallbacks
    def test_haproxy(self) -> None:
        """HTTP through HAProxy with PROXY v1 and v2 towards the proxy."""
        self.start()
        for send in ("send-proxy", "send-proxy-v2"):
            front = yield self.haproxy(self.port("web"), send)
            got = yield threads.deferToThread(_session, front, (V1 + REQUEST,))
            self.assertEqual(_forwarded(got), _from("1.2.3.4"), send)
