"""The supervisor of `twistd -n tsproxy --workers 2`: its restart policy (table), and the real
processes: both workers serve, /metrics and the API sum them, a sticky cookie holds on either,
a killed worker is restarted, a configuration change reaches both, SIGTERM drains and exits
0, a worker that cannot start makes the supervisor give up with status 1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
from typing import Any, Dict, FrozenSet, List, Tuple

import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, reactor
from twisted.internet.error import ConnectionRefusedError, ProcessDone, ProcessTerminated
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import server
from twisted.web.client import Agent, HTTPConnectionPool

from tests.proxyfixture import CONF, ENDPOINTS, SERVICE, ProxyTestCase, free_port
from tests.service.test_service_shutdown import ROUTE, HeldApp, connect
from tests.service.test_tap import _Collect, spawn_proxy
from tsproxy.testing import listen_udp_echo
from tsproxy.workers.supervisor import Decision, RestartPolicy

Samples = Dict[Tuple[str, FrozenSet[Tuple[str, str]]], float]

STATIC = """\
entryPoints:
  web:
    address: "127.0.0.1:{web}"
    transport: {{lifeCycle: {{graceTimeOut: 10s}}}}
  traefik:
    address: "127.0.0.1:{traefik}"
api:
  insecure: true
ping: {{}}
metrics:
  prometheus: {{}}
log:
  level: INFO
"""

WRR = "traefikservice-wrr.kubesre.lc"
COOKIE = "traefikservice-cokie.kubesre.lc"

NEW_ROUTE = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: fresh}
spec:
  routes:
    - match: Host(`fresh.test`)
      services: [{name: app-v1, port: 80}]
"""

BROKEN_ROUTE = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: broken}
spec:
  routes:
    - match: Host(`broken.test`)
      services: [{name: no-such-service, port: 80}]
"""


class RestartPolicyTests(SynchronousTestCase):
    """RestartPolicy.after_exit: backoff, a fresh start after a stable run, giving up."""

    def test_table(self) -> None:
        """Each row: (failures, start failures, was ready, seconds lived) -> Decision."""
        policy = RestartPolicy(first=0.1, longest=1.0, stable=10.0, start_failures=3)
        rows = [
            ((0, 0, True, 2.0), Decision(1, 0, 0.1)),
            ((1, 0, True, 2.0), Decision(2, 0, 0.2)),
            ((3, 0, True, 2.0), Decision(4, 0, 0.8)),
            ((5, 0, True, 2.0), Decision(6, 0, 1.0)),
            ((5, 0, True, 10.0), Decision(1, 0, 0.1)),
            ((0, 0, False, 0.5), Decision(1, 1, 0.1)),
            ((1, 1, False, 0.5), Decision(2, 2, 0.2)),
            ((2, 2, False, 0.5), Decision(3, 3, None)),
            ((2, 2, True, 0.5), Decision(3, 0, 0.4)),
        ]
        for args, expected in rows:
            with self.subTest(args=args):
                self.assertEqual(policy.after_exit(*args), expected)


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def named(found: Samples, name: str) -> Dict[FrozenSet[Tuple[str, str]], float]:
    return {labels: value for (n, labels), value in found.items() if n == name}


def by_worker(found: Samples, name: str) -> Dict[str, Tuple[str, float]]:
    """{worker index: (pid, value)} of a per-worker family."""
    result = {}
    for labels, value in named(found, name).items():
        values = dict(labels)
        result[values["worker"]] = (values.get("pid", ""), value)
    return result


class _UDPClient(DatagramProtocol):
    def __init__(self) -> None:
        self.got: List[Tuple[bytes, Any]] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.got.append((data, addr))


class SupervisorTests(ProxyTestCase):
    """`twistd -n --pidfile= tsproxy --workers 2 -c DIR` from the installed package."""

    timeout = 90

    def setUp(self) -> None:
        super().setUp()
        # New connection per request: SO_REUSEPORT spreads connections, not requests.
        self.fresh = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
        self.web, self.traefik = free_port(), free_port()
        self.write("tsproxy.yaml", STATIC.format(web=self.web, traefik=self.traefik))
        for name in ("app.yaml", "wrr.yaml", "cookie.yaml"):
            shutil.copy(os.path.join(CONF, name), self.config_dir)
        docs = [ENDPOINTS.format(name=n, port=self.start_app(n)) for n in ("app-v1", "app-v2")]
        self.write("endpoints.yaml", "---\n".join(docs))

    @defer.inlineCallbacks
    def start(self) -> Any:
        """Run the supervisor; return once both workers answer its scrapes."""
        argv = ("twistd", "-n", "--pidfile=", "tsproxy", "--workers", "2")
        transport, proc, _, _ = yield spawn_proxy(
            self, argv, "http://127.0.0.1:%d/" % self.web, WRR
        )
        self.transport, self.proc = transport, proc
        yield self.until(lambda found: self.up(found) == 2, "both workers up")
        return transport, proc

    def output(self) -> str:
        return b"".join(self.proc.output).decode(errors="replace")

    @staticmethod
    def up(found: Samples) -> int:
        return int(sum(value for _, value in by_worker(found, "tsproxy_worker_up").values()))

    @defer.inlineCallbacks
    def scrape(self) -> Any:
        response = yield treq.get("http://127.0.0.1:%d/metrics" % self.traefik, agent=self.fresh)
        body = yield treq.content(response)
        self.assertEqual(response.code, 200, body)
        return samples(body.decode("utf-8"))

    @defer.inlineCallbacks
    def until(self, check: Any, what: str) -> Any:
        """Scrape until ``check(samples)`` holds (bounded, ~20 s)."""
        for _ in range(200):
            try:
                found = yield self.scrape()
            except Exception:
                # A connection queued on a worker as it died is reset (see docs/workers.md).
                found = None
            if found is not None and check(found):
                return found
            yield deferLater(reactor, 0.1, lambda: None)
        self.fail("never: %s\n%s" % (what, self.output()))

    @defer.inlineCallbacks
    def wait_output(self, *needles: str) -> Any:
        for _ in range(200):
            if all(needle in self.output() for needle in needles):
                return
            yield deferLater(reactor, 0.1, lambda: None)
        self.fail("never logged %r:\n%s" % (needles, self.output()))

    @defer.inlineCallbacks
    def requests(self, host: str, count: int, cookie: str = "") -> Any:
        """``count`` requests on new connections; returns the bodies (all must be 200)."""
        headers = {"Host": [host]}
        if cookie:
            headers["Cookie"] = [cookie]
        bodies = []
        for _ in range(count):
            response = yield treq.get(
                "http://127.0.0.1:%d/" % self.web, headers=headers, agent=self.fresh
            )
            body = yield treq.content(response)
            self.assertEqual(response.code, 200, body)
            bodies.append(body)
        return bodies

    def served(self, found: Samples) -> Dict[str, float]:
        return {w: v for w, (_, v) in by_worker(found, "tsproxy_worker_requests_total").items()}

    @defer.inlineCallbacks
    def stop(self) -> Any:
        self.transport.signalProcess(signal.SIGTERM)
        reason = yield self.proc.ended
        self.assertIsInstance(reason, ProcessDone, self.output())

    @defer.inlineCallbacks
    def test_bothServeAndMetricsSum(self) -> None:
        """Both workers (children of the supervisor, distinct PIDs) answer requests; /metrics
        and /api/tsproxy/stats count every request once, summed over the workers."""
        yield self.start()
        before = yield self.scrape()
        yield self.requests(WRR, 30)
        found = yield self.scrape()
        pids = {pid for pid, _ in by_worker(found, "tsproxy_worker_up").values()}
        self.assertEqual(len(pids), 2)
        for pid in pids:
            with open("/proc/%s/stat" % pid) as f:
                self.assertEqual(int(f.read().rsplit(")", 1)[1].split()[1]), self.transport.pid)
        served = self.served(found)
        earlier = self.served(before)
        self.assertEqual(sorted(served), ["0", "1"])
        self.assertTrue(all(served[w] > earlier.get(w, 0) for w in served), (earlier, served))
        total = sum(named(found, "traefik_entrypoint_requests_total").values())
        self.assertEqual(total, sum(served.values()))
        self.assertEqual(
            total, sum(named(before, "traefik_entrypoint_requests_total").values()) + 30
        )
        response = yield treq.get(
            "http://127.0.0.1:%d/api/tsproxy/stats" % self.traefik, agent=self.fresh
        )
        stats = yield response.json()
        self.assertEqual(stats["services"]["default-app-wrr@kubernetescrd"]["requests"], total)
        yield self.stop()

    @defer.inlineCallbacks
    def test_udpRepliesFromTheEntrypoint(self) -> None:
        """UDP on a shared port: each client's replies come from the address it sent to
        (its socket is connected, so others would be dropped), all from one session's server;
        the sessions of every worker show in traefik_open_connections."""
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        udp = probe.getsockname()[1]
        probe.close()
        static = STATIC.format(web=self.web, traefik=self.traefik).replace(
            "api:",
            '  udp:\n    address: "127.0.0.1:%d/udp"\n    transport: {lifeCycle: {graceTimeOut: 0s}}\napi:'
            % udp,
        )
        self.write("tsproxy.yaml", static)
        shutil.copy(os.path.join(CONF, "udp.yaml"), self.config_dir)
        docs = []
        for name in ("echo-1", "echo-2"):
            port = listen_udp_echo(reactor, name, prefix=name.encode() + b" ")
            self.addCleanup(port.stopListening)
            docs.append(
                ENDPOINTS.format(name=name, port=port.getHost().port).replace(
                    "name: http", "name: dns"
                )
            )
        self.write("udp-endpoints.yaml", "---\n".join(docs))
        yield self.start()
        clients = []
        for _ in range(12):
            client = _UDPClient()
            port = reactor.listenUDP(0, client, interface="127.0.0.1")
            self.addCleanup(port.stopListening)
            client.transport.connect("127.0.0.1", udp)
            clients.append(client)
        for round in range(3):
            for client in clients:
                client.transport.write(b"ping %d" % round)
            for _ in range(100):
                if all(len(c.got) == round + 1 for c in clients):
                    break
                yield deferLater(reactor, 0.02, lambda: None)
        servers = set()
        for client in clients:
            self.assertEqual([addr for _, addr in client.got], [("127.0.0.1", udp)] * 3)
            names = {data.split(b" ")[0] for data, _ in client.got}
            self.assertEqual(len(names), 1, client.got)
            servers |= names
        self.assertEqual(servers, {b"echo-1", b"echo-2"})
        found = yield self.scrape()
        opened = named(found, "traefik_open_connections")
        self.assertEqual(opened[frozenset({"entrypoint": "udp", "protocol": "UDP"}.items())], 12)
        yield self.stop()

    @defer.inlineCallbacks
    def test_stickyCookieOnEitherWorker(self) -> None:
        """The cookie one worker set sends every later request to the same server, whichever
        worker takes the connection (both take some)."""
        yield self.start()
        response = yield treq.get(
            "http://127.0.0.1:%d/" % self.web, headers={"Host": [COOKIE]}, agent=self.fresh
        )
        first = yield treq.content(response)
        cookie = response.headers.getRawHeaders("Set-Cookie")[0].split(";")[0]
        before = yield self.scrape()
        bodies = yield self.requests(COOKIE, 30, cookie)
        self.assertEqual(set(bodies), {first})
        after = self.served((yield self.scrape()))
        earlier = self.served(before)
        self.assertTrue(all(after[w] > earlier[w] for w in after), (earlier, after))
        yield self.stop()

    @defer.inlineCallbacks
    def test_killedWorkerRestarts(self) -> None:
        """A worker killed with SIGKILL is reported and restarted; the proxy keeps serving."""
        yield self.start()
        found = yield self.scrape()
        pid = by_worker(found, "tsproxy_worker_up")["0"][0]
        os.kill(int(pid), signal.SIGKILL)
        yield self.until(
            lambda f: self.up(f) == 2 and by_worker(f, "tsproxy_worker_up")["0"][0] != pid,
            "worker 0 back",
        )
        found = yield self.scrape()
        self.assertEqual(by_worker(found, "tsproxy_worker_restarts_total")["0"][1], 1)
        self.assertIn("worker 0 (pid %s) killed by signal 9; restarting" % pid, self.output())
        yield self.requests(WRR, 10)
        yield self.stop()

    @defer.inlineCallbacks
    def test_reloadReachesBoth(self) -> None:
        """A new route reaches both workers (each reports applying it); a configuration with
        an error is refused by both and they keep serving the last good one."""
        yield self.start()
        found = yield self.scrape()
        before = self.served(found)
        pids = {w: pid for w, (pid, _) in by_worker(found, "tsproxy_worker_up").items()}
        self.write("fresh.yaml", NEW_ROUTE)
        yield self.wait_output(
            *("worker %s (pid %s): configuration applied" % item for item in pids.items())
        )
        bodies = yield self.requests("fresh.test", 20)
        self.assertEqual(set(bodies), {b"Hello app-v1\n"})
        after = self.served((yield self.scrape()))
        self.assertTrue(all(after[w] > before[w] for w in after), (before, after))
        self.write("broken.yaml", BROKEN_ROUTE)
        yield self.wait_output(
            *("worker %s (pid %s): configuration refused" % item for item in pids.items())
        )
        bodies = yield self.requests("fresh.test", 4)
        self.assertEqual(set(bodies), {b"Hello app-v1\n"})
        yield self.stop()

    @defer.inlineCallbacks
    def test_sigtermDrains(self) -> None:
        """SIGTERM: the request in flight gets its whole answer, new connections are refused,
        and the supervisor exits 0 once every worker has."""
        app = HeldApp()
        site = server.Site(app)
        site.noisy = False
        held = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(held.stopListening)
        self.addCleanup(app.release)
        backend = ENDPOINTS.format(name="slow", port=held.getHost().port)
        self.write("slow.yaml", SERVICE.format(name="slow") + "---\n" + backend + "---\n" + ROUTE)
        yield self.start()
        arrived = app.arrival()
        request = treq.get(
            "http://127.0.0.1:%d/" % self.web, headers={"Host": ["slow.test"]}, agent=self.fresh
        )
        yield arrived
        self.transport.signalProcess(signal.SIGTERM)
        for _ in range(100):
            try:
                protocol = yield connect(self.web)
            except ConnectionRefusedError:
                break
            protocol.transport.loseConnection()
            yield deferLater(reactor, 0.05, lambda: None)
        else:
            self.fail("still accepting:\n" + self.output())
        self.assertFalse(self.proc.ended.called)
        app.release()
        response = yield request
        self.assertEqual((response.code, (yield treq.content(response))), (200, b"done\n"))
        reason = yield self.proc.ended
        self.assertIsInstance(reason, ProcessDone, self.output())
        self.assertIn("supervisor: every worker has stopped", self.output())

    @defer.inlineCallbacks
    def test_workerCannotStart(self) -> None:
        """With the port taken by another program, each worker fails at start; after three
        tries the supervisor says so and exits 1 rather than looping."""
        taken = socket.socket()
        taken.bind(("127.0.0.1", self.web))
        taken.listen(1)
        self.addCleanup(taken.close)
        program = os.path.join(os.path.dirname(sys.executable), "twistd")
        proc = _Collect()
        argv = [program, "-n", "--pidfile=", "tsproxy", "--workers", "2", "-c", self.config_dir]
        transport = reactor.spawnProcess(proc, program, argv, env=dict(os.environ))
        self.addCleanup(lambda: transport.pid and transport.signalProcess("KILL"))
        reason = yield proc.ended
        output = b"".join(proc.output).decode(errors="replace")
        self.assertIsInstance(reason, ProcessTerminated, output)
        self.assertEqual(reason.exitCode, 1, output)
        self.assertIn("failed to start 3 times in a row, giving up", output)
        self.assertIn("cannot listen on 127.0.0.1:%d" % self.web, output)
