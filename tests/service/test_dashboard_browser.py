"""The dashboard as a person sees it, in headless Chromium against a running proxy.

The page stays open while the canary gets traffic, its weights change and its canary server
dies; the test reads what the page shows (through the DevTools protocol) and keeps
screenshots as artifacts (``$TSPROXY_ARTIFACTS`` or ``_trial_temp/artifacts``).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, List

from twisted.internet import defer, reactor

from tests.api.test_api_service import STATIC
from tests.browser import Browser, find_chromium
from tests.proxyfixture import ProxyTestCase
from tsproxy.testing import listen_app

WRR_HOST = "traefikservice-wrr.kubesre.lc"
COOKIE_HOST = "traefikservice-cokie.kubesre.lc"
COPY_HOST = "traefikservice-copy.kubesre.lc"
V1 = "default-app-v1-80"
V2 = "default-app-v2-80"
ROUTER_WRR = "default-app-wrr-846b2c19626676e0a8ba@kubernetescrd"


def children(service: str) -> str:
    """JavaScript: the rows a weighted service's card shows for its children, as JSON."""
    return (
        "JSON.stringify(Array.from(document.querySelectorAll("
        "'.service[data-service=\"%s@kubernetescrd\"] > table.children > tbody > tr.child'"
        ")).map(function (r) { return [r.dataset.child, r.dataset.weight, r.dataset.requests,"
        " r.dataset.configuredShare, r.dataset.liveShare, r.dataset.errors]; }))" % service
    )


def rows(*items: List[Any]) -> str:
    return json.dumps([[str(v) for v in item] for item in items], separators=(",", ":"))


class DashboardLiveTests(ProxyTestCase):
    """A canary's life seen live on one open page."""

    timeout = 120

    def setUp(self) -> None:
        super().setUp()
        chromium = find_chromium()
        if chromium is None:
            raise self.skipTest("chromium is not installed (Debian package: chromium)")
        self.chromium = chromium
        self.listening: dict = {}
        self.channels: dict = {}
        self.use_seed_config()
        self.write("tsproxy.yaml", STATIC + "metrics:\n  prometheus: {}\n")

    def start_app(self, name: str) -> int:
        """An app backend whose connections are remembered, so the test can kill it."""
        port = listen_app(reactor, name)
        self.addCleanup(port.stopListening)
        self.apps[name] = port.app
        self.listening[name] = port
        made = self.channels[name] = []
        build = port.factory.buildProtocol

        def remember(addr: Any) -> Any:
            channel = build(addr)
            made.append(channel)
            return channel

        port.factory.buildProtocol = remember
        return int(port.getHost().port)

    def kill_app(self, name: str) -> Any:
        """The backend dies: it stops listening and its open connections are cut."""
        stopped = self.listening[name].stopListening()
        for channel in self.channels[name]:
            # Twisted's HTTP channel sits inside a protocol that picks HTTP/1.1 or HTTP/2.
            inner = getattr(channel, "_channel", channel)
            transport = getattr(inner, "transport", None)
            if transport is not None:
                transport.abortConnection()
        return stopped

    def artifact(self, name: str) -> str:
        folder = os.environ.get("TSPROXY_ARTIFACTS") or os.path.abspath("artifacts")
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, name)

    @defer.inlineCallbacks
    def send(self, host: str, count: int) -> Any:
        codes = []
        for _ in range(count):
            response, _ = yield self.get(host)
            codes.append(response.code)
        return codes

    @defer.inlineCallbacks
    def test_canaryLive(self) -> Any:
        """On one open page: the canary's 1:2 split counted per parent (the cookie service
        sending the same children 3:6 does not blur it), the mirror's served and mirrored
        counts, a weight change to 1:1 with its new configured and live shares, unrouted
        requests per entrypoint, and the canary server killed: shown DOWN by its health check
        while app-v1 takes its traffic without a client error."""
        service = self.start_proxy()
        browser = Browser(self.chromium, os.path.abspath(self.mktemp()))
        self.addCleanup(browser.stop)
        yield browser.start()
        base = "http://127.0.0.1:%d/dashboard/" % service.port_of("traefik")
        yield browser.open(base + "#/http/services")
        yield browser.wait_for("document.body.dataset.refreshes > 0", "a first drawing")

        yield self.send(WRR_HOST, 30)
        yield self.send(COOKIE_HOST, 9)
        yield self.send(COPY_HOST, 20)
        yield service.mirrors.idle()  # type: ignore[union-attr]
        yield browser.wait_for(
            "%s === %r"
            % (
                children("default-app-wrr"),
                rows([V1, 1, 10, "0.3333", "0.3333", 0], [V2, 2, 20, "0.6667", "0.6667", 0]),
            ),
            "the canary's 1:2 split",
        )
        yield browser.wait_for(
            "%s === %r"
            % (
                children("default-app-cookie"),
                rows([V1, 1, 3, "0.3333", "0.3333", 0], [V2, 2, 6, "0.6667", "0.6667", 0]),
            ),
            "the cookie service's own 3:6",
        )
        mirror = yield browser.evaluate(
            "(function (p) { return [p.dataset.served, p.dataset.mirrored]; })("
            "document.querySelector('.service[data-service=\"default-app-mirror@kubernetescrd\"] .mirroring .counts'))"
        )
        self.assertEqual(mirror, ["20", "2"])
        yield browser.screenshot(self.artifact("dashboard.png"))

        # The canary's weight goes to 1:1 and every reference to the apps gets a health
        # check (the same settings everywhere: one balancer per Service), the page open.
        for name in ("wrr.yaml", "cookie.yaml", "mirror.yaml"):
            with open(os.path.join(self.config_dir, name)) as f:
                text = f.read()
            text = re.sub(
                r"(?m)^( +)port: 80\n",
                r"\1port: 80\n\1healthCheck: {path: /health, interval: 1s, timeout: 1s}\n",
                text,
            )
            if name == "wrr.yaml":
                text = text.replace("weight: 2", "weight: 1")
                text = text.replace("  weighted:\n", "  weighted:\n    healthCheck: {}\n")
            self.write(name, text)
        self.assertTrue(service.reload())
        codes = yield self.send(WRR_HOST, 30)
        self.assertEqual(set(codes), {200})
        yield browser.wait_for(
            "%s === %r"
            % (
                children("default-app-wrr"),
                rows([V1, 1, 25, "0.5000", "0.4167", 0], [V2, 1, 35, "0.5000", "0.5833", 0]),
            ),
            "the new weights and the shares since start",
        )

        # The canary's router: entrypoint → service, with its children and servers.
        yield browser.open(base + "#/http/routers/" + ROUTER_WRR)
        chain = yield browser.wait_for(
            "(function (steps) { return steps.length ? JSON.stringify(steps.map(function (s) {"
            " return [s.dataset.step, s.dataset.name]; })) : null; })("
            "Array.from(document.querySelectorAll('.chain .step')))",
            "the router's chain",
        )
        self.assertEqual(json.loads(chain), [["entrypoint", "web"], ["service", "default-app-wrr"]])
        yield browser.screenshot(self.artifact("dashboard-router.png"))

        # Requests nobody routes, on the overview.
        yield self.send("nowhere.test", 2)
        yield browser.open(base + "#/")
        yield browser.wait_for(
            "(function (r) { return r && r.dataset.notFound === '2'; })("
            "document.querySelector('tr[data-entrypoint=\"web\"]'))",
            "two unrouted requests on web",
        )
        yield browser.screenshot(self.artifact("dashboard-overview.png"))

        # The canary's server dies: within a health interval the page shows it DOWN, and
        # the canary's traffic goes to app-v1 without a client error.
        yield self.kill_app("app-v2")
        yield browser.open(base + "#/http/services")
        yield browser.wait_for(
            "(function (r) { return r && r.dataset.health === 'DOWN'; })(document.querySelector("
            '\'.service[data-service="default-app-wrr@kubernetescrd"] tr.child[data-child="%s"]\'))'
            % V2,
            "the canary's server DOWN",
        )
        codes = yield self.send(WRR_HOST, 10)
        self.assertEqual(set(codes), {200})
        yield browser.wait_for(
            "%s === %r"
            % (
                children("default-app-wrr"),
                rows([V1, 1, 35, "0.5000", "0.5000", 0], [V2, 1, 35, "0.5000", "0.5000", 0]),
            ),
            "app-v1 taking the canary's traffic",
        )
        yield browser.screenshot(self.artifact("dashboard-canary-down.png"))
