"""The internal endpoints of an entrypoint, answered from parsed request heads (no sockets):
which paths are internal where, ping, metrics, dashboard redirects and files, framing."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from twisted.trial.unittest import TestCase

from tests.api.test_api_model import seed_table
from tsproxy.api.internal import InternalEndpoints, load_assets
from tsproxy.http.wire import find_head_end, parse_request_head

EVERYTHING = ("api", "dashboard", "ping", "metrics")


class StandInMetrics:
    """What the proxy's metrics object offers the internal endpoints."""

    def __init__(self, stats: Dict[str, Dict[str, int]]) -> None:
        self.stats = stats

    def exposition(self) -> Tuple[str, bytes]:
        return "text/plain; version=0.0.4; charset=utf-8", b"traefik_config_reloads_total 1\n"

    def dashboard_stats(self) -> Dict[str, Dict[str, Dict[str, int]]]:
        return {"services": self.stats}


def parse(raw: bytes) -> Tuple[int, Dict[str, str], bytes]:
    """(status, headers by lower-cased name, body) of a whole response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        headers[name.lower()] = value
    return int(lines[0].split(" ")[1]), headers, body


class InternalTests(TestCase):
    def setUp(self) -> None:
        self.table = seed_table()
        self.terminating = False
        self.metrics: Optional[StandInMetrics] = None

    def endpoints(self, serves: Tuple[str, ...] = EVERYTHING) -> InternalEndpoints:
        return InternalEndpoints(
            serves,
            lambda: self.table,
            lambda: self.metrics,
            lambda: self.terminating,
            "2024-05-01T10:00:00Z",
            ping_status=503,
        )

    def ask(
        self,
        target: str,
        method: str = "GET",
        serves: Tuple[str, ...] = EVERYTHING,
        headers: str = "Host: 127.0.0.1:8080\r\n",
        version: str = "HTTP/1.1",
        keep_alive: bool = True,
    ) -> Optional[Tuple[int, Dict[str, str], bytes]]:
        head = f"{method} {target} {version}\r\n{headers}\r\n".encode("latin-1")
        end, _ = find_head_end(head)
        raw = self.endpoints(serves).respond(parse_request_head(head[:end]), keep_alive)
        return None if raw is None else parse(raw)

    def test_which_paths(self) -> None:
        """Each entrypoint answers only what it serves; other paths go on to the routers."""
        cases: List[Tuple[Tuple[str, ...], str, Optional[int]]] = [
            (EVERYTHING, "/ping", 200),
            (EVERYTHING, "/ping/deeper", 200),
            (EVERYTHING, "/api/overview", 200),
            (EVERYTHING, "/apifoo", 404),
            (EVERYTHING, "/dashboard/", 200),
            (EVERYTHING, "/other", None),
            (EVERYTHING, "/metrics", None),  # no metrics object: not answered here
            (("ping",), "/ping", 200),
            (("ping",), "/api/overview", None),
            (("ping",), "/", None),
            (("api",), "/api/overview", 200),
            (("api",), "/dashboard/", None),
            (("api",), "/ping", None),
            (("metrics",), "/ping", None),
            (("api", "dashboard"), "/", 301),
            (("api", "dashboard"), "*", None),
        ]
        for serves, target, status in cases:
            got = self.ask(target, serves=serves)
            self.assertEqual(None if got is None else got[0], status, (serves, target))

    def test_ping(self) -> None:
        """200 OK for any method, the terminating status once a shutdown begins; HEAD has
        no body."""
        for method in ("GET", "POST", "DELETE"):
            self.assertEqual(self.ask("/ping", method)[::2], (200, b"OK"), method)  # type: ignore[index]
        status, headers, body = self.ask("/ping", "HEAD")  # type: ignore[misc]
        self.assertEqual((status, headers["content-length"], body), (200, "2", b""))
        self.terminating = True
        self.assertEqual(self.ask("/ping")[::2], (503, b"Service Unavailable"))  # type: ignore[index]

    def test_metrics(self) -> None:
        """/metrics is the metrics object's exposition, with its content type."""
        self.metrics = StandInMetrics({})
        status, headers, body = self.ask("/metrics", "POST")  # type: ignore[misc]
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        self.assertEqual(body, b"traefik_config_reloads_total 1\n")

    def test_api(self) -> None:
        """The API from the table of the moment, stats from the metrics object."""
        status, headers, body = self.ask("/api/http/routers?per_page=1")  # type: ignore[misc]
        self.assertEqual(
            (status, headers["content-type"], headers["x-next-page"]),
            (200, "application/json", "2"),
        )
        self.assertIn(b"default-app-cookie", body)
        self.metrics = StandInMetrics(
            {"default-app-v1-80@kubernetescrd": {"requests": 4, "errors": 1}}
        )
        self.assertIn(
            b'{"metrics":true,"services":{"default-app-v1-80@kubernetescrd":{"requests":4,"errors":1}},',
            self.ask("/api/tsproxy/stats")[2],  # type: ignore[index]
        )
        status, headers, body = self.ask("/api/overview", "POST")  # type: ignore[misc]
        self.assertEqual((status, headers["content-length"], body), (405, "0", b""))

    def test_dashboard_redirects(self) -> None:
        """/ redirects permanently to the dashboard (308 for other methods), /dashboard to
        /dashboard/; without a usable Host, / serves the page itself."""
        cases = [
            ("GET", "/", "Host: 127.0.0.1:8080\r\n", 301, "http://127.0.0.1:8080/dashboard/"),
            ("POST", "/", "Host: proxy.test\r\n", 308, "http://proxy.test/dashboard/"),
            ("GET", "/", "Host: [::1]:8080\r\n", 301, "http://[::1]:8080/dashboard/"),
            ("GET", "/dashboard", "Host: a\r\n", 302, "/dashboard/"),
            ("GET", "/dashboard?x=1", "Host: a\r\n", 302, "/dashboard/?x=1"),
            ("GET", "/", "Host: a!b\r\n", 200, None),
            ("GET", "/?x=1", "Host: a\r\n", 200, None),
        ]
        for method, target, headers, status, location in cases:
            got_status, got_headers, _ = self.ask(target, method, headers=headers)  # type: ignore[misc]
            self.assertEqual((got_status, got_headers.get("location")), (status, location), target)

    def test_dashboard_files(self) -> None:
        """The page, its script and style with their content types; unknown files are 404."""
        assets = load_assets()
        self.assertEqual(sorted(assets), ["app.js", "index.html", "style.css"])
        cases = [
            ("/dashboard/", "text/html; charset=utf-8", assets["index.html"][1]),
            ("/dashboard/app.js", "text/javascript; charset=utf-8", assets["app.js"][1]),
            ("/dashboard/style.css", "text/css; charset=utf-8", assets["style.css"][1]),
            ("/dashboard/nope.js", "text/plain; charset=utf-8", b"404 page not found\n"),
            ("/dashboard/../internal.py", "text/plain; charset=utf-8", b"404 page not found\n"),
        ]
        for target, content_type, body in cases:
            _, headers, got = self.ask(target)  # type: ignore[misc]
            self.assertEqual((headers["content-type"], got), (content_type, body), target)
        self.assertIn(b'src="/dashboard/app.js"', assets["index.html"][1])
        for name, (_, content) in assets.items():
            self.assertNotIn(b"://", content, f"{name} loads nothing from elsewhere")

    def test_framing(self) -> None:
        """Content-Length always; Connection: close when the connection ends, keep-alive for
        an HTTP/1.0 client that keeps it."""
        _, headers, body = self.ask("/ping")  # type: ignore[misc]
        self.assertEqual((headers["content-length"], "connection" in headers), ("2", False))
        _, headers, _ = self.ask("/ping", keep_alive=False)  # type: ignore[misc]
        self.assertEqual(headers["connection"], "close")
        _, headers, _ = self.ask("/ping", version="HTTP/1.0", headers="Connection: keep-alive\r\n")  # type: ignore[misc]
        self.assertEqual(headers["connection"], "keep-alive")
        status, _, _ = self.ask("http://127.0.0.1:8080/ping", headers="Host: x\r\n")  # type: ignore[misc]
        self.assertEqual(status, 200)
