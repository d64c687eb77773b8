"""The internal entrypoint of a running proxy, over real sockets: /ping (and 503 once a
shutdown begins), the API's JSON, 405, redirects, dashboard files, reloads shown at once;
and the dashboard itself in headless Chromium, after requests through the WRR route."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
from html.parser import HTMLParser
from typing import Any, Dict, List, Optional, Tuple

import treq
from twisted.internet import defer, reactor
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from tests.proxyfixture import ProxyTestCase, free_port, raw_exchange
from tests.test_tap import spawn_proxy
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
#: How long one Chromium run may take before it is killed.
CHROMIUM_TIMEOUT = 60.0


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


def find_chromium() -> Optional[str]:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path is not None:
            return path
    return None


class _Collect(ProcessProtocol):
    """Gathers a process's stdout; ``ended`` fires with (exit code or signal, stdout)."""

    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.ended: defer.Deferred[Tuple[Any, bytes]] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback((reason.value, self.out))


@defer.inlineCallbacks
def run_chromium(chromium: str, profile: str, *arguments: str) -> Any:
    """Run headless Chromium in its own process group and return its stdout; the group is
    killed (by its leader's PID) after CHROMIUM_TIMEOUT or once it has ended."""
    collect = _Collect()
    argv = [
        "setsid",
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--user-data-dir=" + profile,
        *arguments,
    ]
    process = reactor.spawnProcess(collect, shutil.which("setsid") or "setsid", argv, env=None)
    pid = process.pid

    def kill() -> None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    timer = reactor.callLater(CHROMIUM_TIMEOUT, kill)
    try:
        _, out = yield collect.ended
    finally:
        if timer.active():
            timer.cancel()
        kill()  # helpers it may have left behind
    return out


class _Dashboard(HTMLParser):
    """Reads the dumped DOM: the rows of one service card's children, router and
    entrypoint rows, the body's refresh count."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self.depth = 0  # divs open inside the service card, 0 outside it
        self.children: List[Dict[str, str]] = []
        self.routers: List[str] = []
        self.entrypoints: List[str] = []
        self.refreshes = 0

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "body":
            self.refreshes = int(found.get("data-refreshes", "0"))
        if tag == "div":
            if self.depth:
                self.depth += 1
            elif found.get("class") == "service" and found.get("data-service") == self.service:
                self.depth = 1
        if tag == "tr":
            if "data-router" in found:
                self.routers.append(found["data-router"])
            if "data-entrypoint" in found:
                self.entrypoints.append(found["data-entrypoint"])
            if self.depth and "data-child" in found:
                self.children.append(found)

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self.depth:
            self.depth -= 1


class DashboardBrowserTests(ProxyTestCase):
    """The dashboard as a browser draws it."""

    def setUp(self) -> None:
        super().setUp()
        self.chromium = find_chromium()
        if self.chromium is None:
            self.skipTest("chromium is not installed (Debian package: chromium)")
        self.use_seed_config()
        # With metrics: the page shows the proxy's own request counts.
        self.write("tsproxy.yaml", STATIC + "metrics:\n  prometheus: {}\n")

    @defer.inlineCallbacks
    def test_weighted_service(self) -> None:
        """After three requests to the WRR host, the page shows the WRR service with its
        children's weights 1 and 2 and their live request counts 1 and 2."""
        service = self.start_proxy()
        for _ in range(3):
            response, _ = yield self.get(WRR_HOST)
            self.assertEqual(response.code, 200)
        received = {name: len(app.requests) for name, app in self.apps.items()}
        self.assertEqual(received, {"app-v1": 1, "app-v2": 2})

        url = "http://127.0.0.1:%d/dashboard/" % service.port_of("traefik")
        assert self.chromium is not None
        profile = os.path.abspath(self.mktemp())
        dom = yield run_chromium(
            self.chromium, profile, "--virtual-time-budget=5000", "--dump-dom", url
        )
        page = _Dashboard(WRR_SERVICE)
        page.feed(dom.decode("utf-8"))
        rows = [
            (row["data-child"], row["data-weight"], row["data-requests"]) for row in page.children
        ]
        self.assertEqual(
            rows,
            [
                ("default-app-v1-80", "1", str(received["app-v1"])),
                ("default-app-v2-80", "2", str(received["app-v2"])),
            ],
            dom[:2000],
        )
        self.assertEqual([row["data-live-share"] for row in page.children], ["0.3333", "0.6667"])
        self.assertEqual(len(page.routers), 6)  # four HTTP routers (one HTTPS), a TCP, a UDP
        self.assertEqual(page.entrypoints, ["tcp", "traefik", "udp", "web", "websecure"])
        self.assertGreaterEqual(page.refreshes, 2, "the page redraws on its own")

        artifacts = os.environ.get("TSPROXY_ARTIFACTS") or os.path.abspath("artifacts")
        os.makedirs(artifacts, exist_ok=True)
        screenshot = os.path.join(artifacts, "dashboard.png")
        if os.path.exists(screenshot):
            os.remove(screenshot)
        yield run_chromium(
            self.chromium,
            profile,
            "--virtual-time-budget=3000",
            "--window-size=1280,2000",  # tall enough for the weighted children
            "--hide-scrollbars",
            "--screenshot=" + screenshot,
            url,
        )
        with open(screenshot, "rb") as f:
            png = f.read()
        self.assertTrue(png.startswith(b"\x89PNG\r\n\x1a\n"), "a PNG")
        self.assertGreater(len(png), 10000)


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
