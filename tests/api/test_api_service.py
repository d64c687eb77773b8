"""The internal entrypoint of a running proxy, over real sockets: /ping (and 503 once a
shutdown begins), the API's JSON, 405, redirects, dashboard files, reloads shown at once.
The dashboard in a browser: tests/service/test_dashboard_browser.py."""

from __future__ import annotations

import json
import os
import signal
import socket
from typing import Any

import treq
from twisted.internet import defer, reactor
from twisted.internet.error import ProcessDone
from twisted.internet.task import deferLater

from tests.proxyfixture import ProxyTestCase, free_port, raw_exchange
from tests.service.test_tap import spawn_proxy
from tsproxy.api.internal import load_assets

STATIC = """\
entryPoints:
  web:
    address: "127.0.0.1:0"
  websecure:
    address: "127.0.0.1:0"
  tcp:
    address: "127.0.0.1:0"
  udp:
    address: "127.0.0.1:0/udp"
    transport: {lifeCycle: {graceTimeOut: 0s}}
  traefik:
    address: "127.0.0.1:0"
api: {insecure: true, dashboard: true}
ping: {}
log:
  level: ERROR
"""

WRR_HOST = "traefikservice-wrr.kubesre.lc"
WRR_SERVICE = "default-app-wrr@kubernetescrd"
PING = b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@defer.inlineCallbacks
def receive(sock: socket.socket, until_closed: bool = False) -> Any:
    """What a non-blocking socket receives: one whole response (its Content-Length) or, with
    ``until_closed``, everything until the peer closes. Gives the reactor a turn while waiting."""
    data = b""
    for _ in range(20000):
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            yield deferLater(reactor, 0.001, lambda: None)
            continue
        if not chunk:
            return data
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep and not until_closed:
            length = [
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            if length and len(body) >= length[0]:
                return data
    raise AssertionError(f"no complete answer, got {data!r}")


class InternalEntrypointTests(ProxyTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.use_seed_config()
        self.write("tsproxy.yaml", STATIC)
        self.start_proxy()

    def url(self, path: str) -> str:
        assert self.service is not None
        return "http://127.0.0.1:%d%s" % (self.service.port_of("traefik"), path)

    @defer.inlineCallbacks
    def fetch(self, path: str, method: str = "GET", data: Any = None) -> Any:
        response = yield treq.request(
            method, self.url(path), data=data, agent=self.agent, allow_redirects=False
        )
        body = yield treq.content(response)
        return response, body

    @defer.inlineCallbacks
    def test_ping_then_shutdown(self) -> None:
        """/ping answers 200 OK, and 503 on a connection open when the shutdown begins."""
        assert self.service is not None
        sock = socket.create_connection(("127.0.0.1", self.service.port_of("traefik")))
        self.addCleanup(sock.close)
        sock.setblocking(False)
        sock.sendall(PING)
        first = yield receive(sock)
        self.assertTrue(first.startswith(b"HTTP/1.1 200 OK\r\n"), first)
        self.assertTrue(first.endswith(b"\r\n\r\nOK"), first)
        # From a timed call, so the request below is read before the listeners stop.
        yield deferLater(reactor, 0, lambda: None)
        sock.sendall(PING)
        stopping = self.service.stopService()
        rest = yield receive(sock, until_closed=True)
        yield stopping
        self.assertTrue(rest.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), rest)
        self.assertTrue(rest.endswith(b"\r\n\r\nService Unavailable"), rest)

    @defer.inlineCallbacks
    def test_api(self) -> None:
        """The API answers JSON from the table in force, with X-Next-Page."""
        response, body = yield self.fetch("/api/http/services?search=wrr")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("Content-Type"), ["application/json"])
        self.assertEqual(response.headers.getRawHeaders("X-Next-Page"), ["1"])
        self.assertEqual([s["name"] for s in json.loads(body)], [WRR_SERVICE])
        response, body = yield self.fetch("/api/entrypoints")
        self.assertEqual(
            [e["name"] for e in json.loads(body)], ["tcp", "traefik", "udp", "web", "websecure"]
        )
        response, body = yield self.fetch("/api/http/routers/nope")
        self.assertEqual((response.code, body), (404, b'{"message":"router not found: nope"}\n'))

    @defer.inlineCallbacks
    def test_other_methods(self) -> None:
        """POST to the API is 405; its body is skipped, so the next request on the connection
        is read as one."""
        assert self.service is not None
        answer = yield raw_exchange(
            self.service.port_of("traefik"),
            b"POST /api/overview HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" + PING,
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n"), answer)
        self.assertEqual(answer.count(b"HTTP/1.1 "), 2)
        self.assertTrue(answer.endswith(b"\r\n\r\nOK"), answer)
        response, _ = yield self.fetch("/api/overview", "POST", data=b"x" * 300000)
        self.assertEqual(response.code, 405)

    @defer.inlineCallbacks
    def test_dashboard(self) -> None:
        """/ redirects to /dashboard/, which serves the page, its script and style."""
        response, _ = yield self.fetch("/")
        self.assertEqual(response.code, 301)
        self.assertEqual(response.headers.getRawHeaders("Location"), [self.url("/dashboard/")])
        assets = load_assets()
        for path, name in (("/dashboard/", "index.html"), ("/dashboard/app.js", "app.js")):
            response, body = yield self.fetch(path)
            self.assertEqual(response.code, 200)
            self.assertEqual(response.headers.getRawHeaders("Content-Type"), [assets[name][0]])
            self.assertEqual(body, assets[name][1])
        response, body = yield self.fetch("/elsewhere")
        self.assertEqual((response.code, body), (404, b"404 page not found\n"))

    @defer.inlineCallbacks
    def test_only_where_configured(self) -> None:
        """The web entrypoint serves no internal path: they go to its routers (404 here)."""
        response, body = yield self.get("anything", "/api/overview")
        self.assertEqual((response.code, body), (404, b"404 page not found\n"))
        response, _ = yield self.get("anything", "/ping")
        self.assertEqual(response.code, 404)

    @defer.inlineCallbacks
    def test_reload_shows_at_once(self) -> None:
        """After a reload, the API shows the new table."""
        assert self.service is not None
        os.remove(os.path.join(self.config_dir, "mirror.yaml"))
        self.assertTrue(self.service.reload())
        _, body = yield self.fetch("/api/http/services")
        self.assertNotIn("default-app-mirror@kubernetescrd", [s["name"] for s in json.loads(body)])


# -- the dashboard in a browser --------------------------------------------------------------


class InstalledTests(ProxyTestCase):
    """The installed package (``pip install .``) serves the dashboard's files."""

    timeout = 60

    @defer.inlineCallbacks
    def test_dashboard_files_installed(self) -> None:
        """`twist tsproxy` from the installed package answers /ping and the dashboard's
        files, the same bytes as in the checkout, and exits 0 on SIGTERM."""
        self.use_seed_config()
        port = free_port()
        self.write(
            "tsproxy.yaml",
            STATIC.replace(
                'traefik:\n    address: "127.0.0.1:0"', f'traefik:\n    address: "127.0.0.1:{port}"'
            ),
        )
        base = "http://127.0.0.1:%d" % port
        transport, proc, response, body = yield spawn_proxy(
            self, ["twist", "tsproxy"], base + "/ping", "a"
        )
        self.assertEqual((response.code, body), (200, b"OK"))
        for name, (content_type, content) in load_assets().items():
            response = yield treq.get(base + "/dashboard/" + name, agent=self.agent)
            got = yield treq.content(response)
            self.assertEqual(response.headers.getRawHeaders("Content-Type"), [content_type])
            self.assertEqual(got, content, name)
        transport.signalProcess(signal.SIGTERM)
        reason = yield proc.ended
        self.assertIsInstance(reason, ProcessDone, b"".join(proc.output))
