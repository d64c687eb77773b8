"""Headless Chromium driven over the DevTools protocol, for tests of the dashboard.

One browser per test: `Browser.start` launches it on a fresh profile with a DevTools port
(read from the profile's DevToolsActivePort file), `open` navigates its page, `evaluate`
runs JavaScript and returns the value, `wait_for` polls an expression until it is truthy
(bounded), `screenshot` writes a PNG. The websocket is wsproto over a Twisted TCP
connection; the browser's process group is killed by its leader's PID at the end.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
from typing import Any, Dict, Optional

import treq
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import ProcessProtocol, Protocol
from twisted.internet.task import deferLater
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)

#: The longest one call to the browser may take.
CALL_TIMEOUT = 30.0


def find_chromium() -> Optional[str]:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path is not None:
            return path
    return None


class _Quiet(ProcessProtocol):
    def __init__(self) -> None:
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.err = b""

    def errReceived(self, data: bytes) -> None:
        self.err = (self.err + data)[-4000:]

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)


class _DevTools(Protocol):
    """One websocket to a page target: JSON commands with ids, answers by id."""

    def __init__(self, path: str) -> None:
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.path = path
        self.opened: defer.Deferred[None] = defer.Deferred()
        self.waiting: Dict[int, defer.Deferred[Any]] = {}
        self.next_id = 0
        self.text = ""

    def connectionMade(self) -> None:
        self.transport.write(self.ws.send(Request(host="127.0.0.1", target=self.path)))

    def dataReceived(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self.opened.callback(None)
            elif isinstance(event, TextMessage):
                self.text += event.data
                if event.message_finished:
                    message, self.text = json.loads(self.text), ""
                    waiter = self.waiting.pop(message.get("id", -1), None)
                    if waiter is not None:
                        waiter.callback(message)
            elif isinstance(event, Ping):
                self.transport.write(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        waiting, self.waiting = self.waiting, {}
        for waiter in waiting.values():
            waiter.errback(reason)

    def call(self, method: str, **params: Any) -> defer.Deferred[Any]:
        self.next_id += 1
        waiter: defer.Deferred[Any] = defer.Deferred()
        self.waiting[self.next_id] = waiter
        message = json.dumps({"id": self.next_id, "method": method, "params": params})
        self.transport.write(self.ws.send(TextMessage(data=message)))
        return waiter.addTimeout(CALL_TIMEOUT, reactor)


class Browser:
    """A headless Chromium with one page, driven over DevTools."""

    def __init__(self, chromium: str, profile: str) -> None:
        self.chromium = chromium
        self.profile = profile
        self.pid = 0
        self.process: Optional[_Quiet] = None
        self.devtools: Optional[_DevTools] = None

    @defer.inlineCallbacks
    def start(self) -> Any:
        os.makedirs(self.profile, exist_ok=True)
        self.process = _Quiet()
        argv = [
            "setsid",
            self.chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1600",
            "--hide-scrollbars",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--user-data-dir=" + self.profile,
            "about:blank",
        ]
        spawned = reactor.spawnProcess(
            self.process, shutil.which("setsid") or "setsid", argv, env=None
        )
        self.pid = spawned.pid
        active = os.path.join(self.profile, "DevToolsActivePort")
        for _ in range(300):
            if os.path.exists(active):
                with open(active) as f:
                    lines = f.read().split()
                if lines:
                    break
            yield deferLater(reactor, 0.05, lambda: None)
        else:
            raise RuntimeError("chromium did not open its DevTools port: %r" % self.process.err)
        port = int(lines[0])
        response = yield treq.get("http://127.0.0.1:%d/json/list" % port, persistent=False)
        targets = yield response.json()
        page = next(t for t in targets if t.get("type") == "page")
        path = "/" + page["webSocketDebuggerUrl"].split("/", 3)[3]
        self.devtools = _DevTools(path)
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), self.devtools)
        yield self.devtools.opened
        yield self.devtools.call("Page.enable")

    @defer.inlineCallbacks
    def open(self, url: str) -> Any:
        assert self.devtools is not None
        yield self.devtools.call("Page.navigate", url=url)

    @defer.inlineCallbacks
    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able values)."""
        assert self.devtools is not None
        answer = yield self.devtools.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        result = answer.get("result", {})
        if "exceptionDetails" in result:
            raise RuntimeError("page error: %r" % (result["exceptionDetails"],))
        return result.get("result", {}).get("value")

    @defer.inlineCallbacks
    def wait_for(self, expression: str, what: str, seconds: float = 15.0) -> Any:
        """Poll `expression` every 100 ms until it is truthy; its value, or fail after
        `seconds` (the dashboard redraws every 2 s)."""
        last = None
        for _ in range(int(seconds * 10)):
            try:
                last = yield self.evaluate(expression)
            except RuntimeError as e:
                last = str(e)
            else:
                if last:
                    return last
            yield deferLater(reactor, 0.1, lambda: None)
        where = yield self.evaluate(
            "[location.href, document.body.dataset.page, document.getElementById('state')"
            ".textContent, Array.from(document.querySelectorAll('.service')).map(function (s) { return s.dataset.service; }).join(' ')]"
        )
        raise AssertionError(f"the dashboard never showed {what} (last: {last!r}, at {where})")

    @defer.inlineCallbacks
    def screenshot(self, path: str) -> Any:
        assert self.devtools is not None
        answer = yield self.devtools.call("Page.captureScreenshot", format="png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(answer["result"]["data"]))

    @defer.inlineCallbacks
    def stop(self) -> Any:
        if self.devtools is not None and self.devtools.transport is not None:
            self.devtools.transport.loseConnection()
        if self.pid:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if self.process is not None:
                yield self.process.ended
