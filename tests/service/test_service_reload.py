"""Live reconfiguration of a running ProxyService: files rewritten under load, broken files,
balancer state across reloads, and the static configuration. Real listeners on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import threading
from typing import Any, Callable, Dict, List, Tuple

import treq
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.logger import formatEvent, globalLogPublisher

import tsproxy.service
from tests.proxyfixture import CONF, ENDPOINTS, ProxyTestCase
from tsproxy.config.load import load_directory

WRR = "traefikservice-wrr.kubesre.lc"
COPY = "traefikservice-copy.kubesre.lc"

# conf/wrr.yaml with its weights and second service as parameters.
WRR_YAML = """\
# written by the test
apiVersion: traefik.containo.us/v1alpha1
kind: TraefikService
metadata:
  name: app-wrr
spec:
  weighted:
    services:
      - name: app-v1
        port: 80
        weight: {v1}
      - name: {v2_name}
        port: 80
        weight: {v2}
---
apiVersion: traefik.containo.us/v1alpha1
kind: IngressRoute
metadata:
  name: app-wrr
spec:
  entryPoints:
    - web
  routes:
    - match: Host(`traefikservice-wrr.kubesre.lc`)
      services:
        - name: app-wrr
          kind: TraefikService
"""


def wrr_yaml(v1: int, v2: int, v2_name: str = "app-v2") -> str:
    return WRR_YAML.format(v1=v1, v2=v2, v2_name=v2_name)


class LogLines:
    """Every log event from now on, as text; ``wait_for`` fires when a matching one arrives."""

    def __init__(self, test: Any) -> None:
        self.lines: List[str] = []
        self._waiting: List[Tuple[Callable[[str], bool], defer.Deferred[str]]] = []
        globalLogPublisher.addObserver(self)
        test.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event: Dict[str, Any]) -> None:
        text = formatEvent(event)
        self.lines.append(text)
        waiting, self._waiting = self._waiting, []
        for match, d in waiting:
            if match(text):
                d.callback(text)
            else:
                self._waiting.append((match, d))

    def wait_for(self, part: str, timeout: float = 5.0) -> defer.Deferred[str]:
        """The next line holding ``part`` (a reload is debounced, then logs its verdict)."""
        d: defer.Deferred[str] = defer.Deferred()
        self._waiting.append((lambda text: part in text, d))
        return d.addTimeout(timeout, reactor)


class ReloadTestCase(ProxyTestCase):
    """The seed's HTTP scenarios (WRR, sticky, mirroring) on two fresh backends."""

    def setUp(self) -> None:
        super().setUp()
        for name in ("app.yaml", "cookie.yaml", "mirror.yaml"):
            shutil.copy(os.path.join(CONF, name), self.config_dir)
        self.write("tsproxy.yaml", 'entryPoints:\n  web:\n    address: "127.0.0.1:0"\n')
        self.backends = {name: self.start_app(name) for name in ("app-v1", "app-v2")}
        docs = [ENDPOINTS.format(name=name, port=port) for name, port in self.backends.items()]
        self.write("endpoints.yaml", "---\n".join(docs))

    def replace(self, name: str, text: str) -> None:
        """Atomic replace, as tools and Kubernetes do: a hidden temporary file renamed."""
        temporary = os.path.join(self.config_dir, "." + name + ".tmp")
        with open(temporary, "w") as stream:
            stream.write(text)
        os.replace(temporary, os.path.join(self.config_dir, name))

    @defer.inlineCallbacks
    def bodies(self, host: str, count: int) -> Any:
        found = []
        for _ in range(count):
            response, body = yield self.get(host)
            self.assertEqual(response.code, 200)
            found.append(body.decode().strip())
        return found


class CanaryUnderLoadTests(ReloadTestCase):
    """The issue's canary run: weights rewritten ten times while clients keep asking."""

    timeout = 30

    @defer.inlineCallbacks
    def test_tenRewritesNoFailure(self) -> None:
        """Ten rewrites (atomic rename and in-place write, both ways): every request of the
        loop succeeds, each client switches once per rewrite and never back, and each new
        split is in force within 1 s of its write."""
        self.write("wrr.yaml", wrr_yaml(1, 0))
        self.start_proxy(watch=True)
        workers = 3
        # (start time, answer) per worker, in order; config i sends everything to expected[i].
        answers: List[List[Tuple[float, str]]] = [[] for _ in range(workers)]
        failures: List[str] = []
        expected = ["Hello app-v1"]
        writes: List[float] = []
        switched: List[float] = []
        waiting: List[defer.Deferred[None]] = []
        done = [False]
        hard_stop = reactor.seconds() + 15

        def all_switched() -> bool:
            since = writes[-1]
            return all(
                any(t >= since and a == expected[-1] for t, a in worker[-50:]) for worker in answers
            )

        @defer.inlineCallbacks
        def client(index: int) -> Any:
            while not done[0] and reactor.seconds() < hard_stop:
                started = reactor.seconds()
                try:
                    response, body = yield self.get(WRR)
                except Exception as exc:
                    failures.append("%s: %r" % (index, exc))
                    continue
                if response.code != 200:
                    failures.append("%s: status %d" % (index, response.code))
                answers[index].append((started, body.decode().strip()))
                if waiting and all_switched():
                    switched.append(reactor.seconds())
                    waiting.pop().callback(None)

        running = [client(i) for i in range(workers)]
        yield deferLater(reactor, 0.2, lambda: None)
        for number in range(1, 11):
            v1, v2 = (0, 1) if number % 2 else (1, 0)
            expected.append("Hello app-v2" if v2 else "Hello app-v1")
            d: defer.Deferred[None] = defer.Deferred()
            waiting.append(d)
            writes.append(reactor.seconds())
            if number % 4 in (1, 2):
                self.replace("wrr.yaml", wrr_yaml(v1, v2))
            else:
                self.write("wrr.yaml", wrr_yaml(v1, v2))
            yield d.addTimeout(3.0, reactor)  # the watcher's debounce plus a loaded machine
            yield deferLater(reactor, 0.1, lambda: None)  # traffic on the new split
        done[0] = True
        yield defer.gatherResults(running)

        self.assertEqual(failures, [])
        total = sum(len(worker) for worker in answers)
        self.assertGreaterEqual(total, 300)
        latencies = [s - w for s, w in zip(switched, writes)]
        self.assertEqual(len(latencies), 10)
        self.assertLess(max(latencies), 3.0, latencies)
        for worker in answers:
            # Between write i and write i+1 a client sees the old split, then only the new.
            for number, since in enumerate(writes, 1):
                until = writes[number] if number < len(writes) else hard_stop
                seen = [a for t, a in worker if since <= t < until]
                old, new = expected[number - 1], expected[number]
                switch = seen.index(new) if new in seen else len(seen)
                self.assertEqual(seen, [old] * switch + [new] * (len(seen) - switch), number)
                self.assertIn(new, seen, number)


class BrokenFileTests(ReloadTestCase):
    """A broken file is logged with file:line and never applied; fixing it applies it."""

    timeout = 20

    @defer.inlineCallbacks
    def test_brokenThenFixed(self) -> None:
        """Bad YAML, then an unknown service: both logged, routing unchanged; then the fix."""
        self.write("wrr.yaml", wrr_yaml(1, 2))
        service = self.start_proxy(watch=True)
        logs = LogLines(self)
        table = service.table
        first = yield self.bodies(WRR, 2)
        self.assertEqual(first, ["Hello app-v2", "Hello app-v1"])

        refused = logs.wait_for("configuration not applied")
        self.write("wrr.yaml", wrr_yaml(1, 2) + "---\nkey: [oops\n")
        yield refused
        self.assertIn(
            "wrr.yaml:30: invalid YAML: expected ',' or ']', but got '<stream end>'"
            " (while parsing a flow sequence at line 29)",
            logs.lines,
        )
        self.assertIn(
            "configuration not applied (1 error): still serving the last good one", logs.lines
        )
        refused = logs.wait_for("configuration not applied")
        self.replace("wrr.yaml", wrr_yaml(1, 0, v2_name="app-v3"))
        yield refused
        for line in (
            "wrr.yaml:12: TraefikService default/app-wrr: service default/app-v3 not found",
            "wrr.yaml:26: IngressRoute default/app-wrr: TraefikService default/app-wrr has"
            " errors (see wrr.yaml:12)",
            "configuration not applied (2 errors): still serving the last good one",
        ):
            self.assertIn(line, logs.lines)
        self.assertIs(service.table, table)
        # Still the 1:2 split, and still where it was: v2, v1, then v2, v2, v1, v2.
        more = yield self.bodies(WRR, 4)
        self.assertEqual(more, ["Hello app-v2", "Hello app-v2", "Hello app-v1", "Hello app-v2"])

        applied = logs.wait_for("configuration applied")
        self.write("wrr.yaml", wrr_yaml(1, 0))
        yield applied
        fixed = yield self.bodies(WRR, 3)
        self.assertEqual(fixed, ["Hello app-v1"] * 3)


class StateTests(ReloadTestCase):
    """Services whose definition did not change keep their balancer state across reloads."""

    @defer.inlineCallbacks
    def test_unchangedServicesKeepState(self) -> None:
        """A reload for another file continues the WRR sequence and the mirror count; a
        changed service starts afresh; unchanged files are not rebuilt at all."""
        self.write("wrr.yaml", wrr_yaml(1, 2))
        service = self.start_proxy()
        self.assertFalse(service.reload())  # nothing changed
        before = yield self.bodies(WRR, 2)
        for _ in range(5):
            yield self.get(COPY)
        nodes = dict(service.table.services)
        self.write("other.yaml", SERVICE_ONLY)
        self.assertTrue(service.reload())
        for name, node in nodes.items():
            self.assertIs(service.table.services[name], node, name)
        after = yield self.bodies(WRR, 4)
        self.assertEqual(before + after, ["Hello app-v2", "Hello app-v1", "Hello app-v2"] * 2)
        mirror = service.table.services["default-app-mirror"]
        self.assertEqual(list(mirror.counter.next()), [])  # request 6 of 10%: not mirrored

        self.write("wrr.yaml", wrr_yaml(2, 1))
        self.assertTrue(service.reload())
        self.assertIsNot(service.table.services["default-app-wrr"], nodes["default-app-wrr"])
        fresh = yield self.bodies(WRR, 3)
        self.assertEqual(fresh, ["Hello app-v1", "Hello app-v1", "Hello app-v2"])

    @defer.inlineCallbacks
    def test_reloadSoonCoalesces(self) -> None:
        """The watcher's reload parses off the reactor thread; reloads asked for while one
        runs make one more run (forced if any of them was), not one each."""
        self.write("wrr.yaml", wrr_yaml(1, 2))
        service = self.start_proxy()
        loads: List[str] = []
        applied: List[bool] = []
        finished: List[defer.Deferred[None]] = []

        def load(path: str) -> Any:
            loads.append(threading.current_thread().name)
            return load_directory(path)

        original_apply, original_done = service._apply, service._reload_done

        def apply(loaded: Any, force: bool) -> bool:
            applied.append(force)
            return original_apply(loaded, force)

        def done(ignored: object) -> None:
            original_done(ignored)
            if not service._reloading:
                finished.pop().callback(None)

        self.patch(tsproxy.service, "load_directory", load)
        self.patch(service, "_apply", apply)
        self.patch(service, "_reload_done", done)
        finished.append(defer.Deferred())
        service.reload_soon()
        service.reload_soon(force=True)
        service.reload_soon()
        yield finished[0]
        self.assertEqual(applied, [False, True])
        self.assertNotIn(threading.current_thread().name, loads)
        self.assertEqual(len(loads), 2)


SERVICE_ONLY = """\
apiVersion: v1
kind: Service
metadata: {name: unrelated}
spec: {ports: [{port: 80}]}
"""

ALL_ENTRYPOINTS = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: everywhere}
spec:
  routes:
    - match: Host(`everywhere.test`)
      services: [{name: app-v1, port: 80}]
"""


class StaticChangeTests(ReloadTestCase):
    """A new entrypoint opens live; other static changes wait for a restart, logged."""

    @defer.inlineCallbacks
    def test_entrypoints(self) -> None:
        """Added: listening and routing at once. Changed: logged, old port kept. A new one
        that cannot listen: the whole reload is refused."""
        self.write("wrr.yaml", wrr_yaml(1, 2))
        self.write("everywhere.yaml", ALL_ENTRYPOINTS)
        service = self.start_proxy()
        logs = LogLines(self)
        web = service.port_of("web")
        self.write(
            "tsproxy.yaml",
            'entryPoints:\n  web:\n    address: "127.0.0.1:0"\n'
            '  admin:\n    address: "127.0.0.1:0"\n',
        )
        self.assertTrue(service.reload())
        admin = service.port_of("admin")
        response, body = yield self.get("everywhere.test")
        self.assertEqual(body, b"Hello app-v1\n")
        response = yield treq.get(
            "http://127.0.0.1:%d/" % (admin,),
            headers={"Host": ["everywhere.test"]},
            agent=self.agent,
        )
        body = yield treq.content(response)
        self.assertEqual(body, b"Hello app-v1\n")

        self.write(
            "tsproxy.yaml",
            'entryPoints:\n  web:\n    address: "127.0.0.1:1"\n'
            '  admin:\n    address: "127.0.0.1:0"\n',
        )
        self.assertTrue(service.reload())
        self.assertIn(
            "tsproxy.yaml:2: entrypoint web: address changed; the old settings stay until a"
            " restart",
            logs.lines,
        )
        self.assertEqual(service.port_of("web"), web)

        busy = self.backends["app-v1"]  # certainly in use
        table = service.table
        self.write(
            "tsproxy.yaml",
            'entryPoints:\n  web:\n    address: "127.0.0.1:1"\n'
            '  admin:\n    address: "127.0.0.1:0"\n'
            '  clash:\n    address: "127.0.0.1:%d"\n' % (busy,),
        )
        self.assertFalse(service.reload())
        self.assertIs(service.table, table)
        self.assertNotIn("clash", service.ports)
        self.assertTrue(any("entrypoint clash: cannot listen on" in line for line in logs.lines))
