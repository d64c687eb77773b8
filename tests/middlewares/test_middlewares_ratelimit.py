"""Tests for tsproxy.middlewares.ratelimit, tokenbucket and redislimit: every case of
Traefik's rateLimit vectors (load cases on a Clock, and on a real redis-server), the 429
answer, the delay, and two limiters sharing one Redis bucket as two proxies would."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from typing import Any, Dict, List

import attrs
from twisted.internet import defer, reactor, utils
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.authfixture import FakeContext, fields_of, load_vectors, request_of
from tests.certs import make_ca, make_leaf
from tests.redisfixture import RedisServer
from tsproxy.config.schema import FieldError, parse_duration
from tsproxy.middlewares import ratelimit
from tsproxy.middlewares.base import Answer
from tsproxy.middlewares.redislimit import RedisLimiter, connection_settings
from tsproxy.middlewares.source import source_of
from tsproxy.middlewares.tokenbucket import BucketTable, go_duration

VECTORS = load_vectors("rateLimit.json")

#: One proxy process's limiter: from a common start time, a request every 20 ms for 2 s;
#: prints how many were let through (at once or after a wait within maxDelay).
CHILD = """
import sys, time
from twisted.internet import defer, task
from tsproxy.middlewares.redislimit import RedisLimiter, RedisSettings

def main(reactor):
    port, start = int(sys.argv[1]), float(sys.argv[2])
    settings = RedisSettings("127.0.0.1", port, pool_size=1)
    limiter = RedisLimiter("default-shared@kubernetescrd", 10.0, 5, 0.05, settings,
                           reactor=reactor)

    @defer.inlineCallbacks
    def run():
        yield task.deferLater(reactor, max(0.0, start - time.time()), lambda: None)
        accepted = 0
        while time.time() < start + 2.0:
            allowed, _ = yield limiter.take("10.0.0.1")
            accepted += allowed
            yield task.deferLater(reactor, 0.02, lambda: None)
        print(accepted)
        yield limiter.stop()

    return run()

task.react(main)
"""


def load_times(load: Dict[str, Any]) -> List[float]:
    """When the Go test fires its requests: the initial burst at 0, then one per tick."""
    rps = load["requestsPerSecond"]
    count = int(parse_duration(load["duration"]) * rps)
    return [0.0] * load.get("initialBurst", 0) + [(k + 1) / rps for k in range(count)]


def within(case: Dict[str, Any], accepted: int) -> bool:
    bounds = case["expect"]["acceptedCount"]
    return bool(bounds["min"] <= accepted <= bounds["max"])


def build_step(config: Dict[str, Any], clock: Any = None) -> ratelimit.RateLimit:
    spec = ratelimit.parse(fields_of(config))
    return ratelimit.build(spec, "default-rl@kubernetescrd", FakeContext(clock or Clock()))


class VectorTests(SynchronousTestCase):
    """The construct, source and in-memory load cases of rateLimit.json."""

    def test_construct_and_source(self) -> None:
        """Construction errors, maxDelay, unlimited rate and source keys are Traefik's."""
        for case in VECTORS["cases"]:
            expect = case["expect"]
            if case["harness"] not in ("construct", "source"):
                continue
            with self.subTest(case["name"]):
                if expect.get("error"):
                    with self.assertRaises(FieldError) as caught:
                        build_step(case["config"])
                    self.assertIn(expect["error"], str(caught.exception))
                    continue
                step = build_step(case["config"])
                if "maxDelay" in expect:
                    self.assertEqual(go_duration(step.max_delay), expect["maxDelay"])
                if expect.get("rate") == "Inf":
                    self.assertEqual(step.rate, math.inf)
                if "source" in expect:
                    request = request_of(case["request"])
                    self.assertEqual(source_of(step.source, request), expect["source"])

    def test_load_in_memory(self) -> None:
        """Each in-memory load case accepts a count within Traefik's bounds (virtual time)."""
        ran = 0
        for case in VECTORS["cases"]:
            if case["harness"] != "load" or "redis" in case["config"]:
                continue
            spec = ratelimit.parse(fields_of(case["config"]))
            rate, burst, delay = ratelimit.limits_of(spec)
            table = BucketTable(rate, burst, delay)
            accepted = sum(table.take("127.0.0.1", t)[0] for t in load_times(case["load"]))
            with self.subTest(case["name"]):
                self.assertTrue(within(case, accepted), (accepted, case["expect"]))
            ran += 1
        self.assertEqual(ran, 9)


class StepTests(SynchronousTestCase):
    """The built step as the chain runs it."""

    def test_refused_answer(self) -> None:
        """Over the limit: 429, Retry-After in whole seconds, X-Retry-In, status text."""
        clock = Clock()
        step = build_step({"average": 1, "period": "10s", "burst": 1}, clock)
        request = request_of({})
        self.assertIsNone(step.handle(request))
        answer = step.handle(request)
        assert isinstance(answer, Answer)
        self.assertEqual(answer.status, 429)
        self.assertEqual(dict(answer.headers)["Retry-After"], "10")
        self.assertEqual(dict(answer.headers)["X-Retry-In"], "10s")
        self.assertEqual(answer.body, b"Too Many Requests")
        clock.advance(10)
        self.assertIsNone(step.handle(request))

    def test_delayed(self) -> None:
        """A token due within maxDelay delays the request (a Deferred firing then)."""
        clock = Clock()
        step = build_step({"average": 100, "burst": 1}, clock)
        request = request_of({})
        self.assertIsNone(step.handle(request))
        clock.advance(0.006)
        waiting = step.handle(request)
        self.assertIsInstance(waiting, defer.Deferred)
        fired: List[Any] = []
        waiting.addCallback(fired.append)
        clock.advance(0.003)
        self.assertEqual(fired, [])
        clock.advance(0.001)
        self.assertEqual(fired, [None])

    def test_three_seconds(self) -> None:
        """average 10/s burst 5, 100 requests/s for 3 s: 5 + 10 × 3 pass (± one token), the
        rest get 429; delayed ones pass once their token is due."""
        clock = Clock()
        step = build_step({"average": 10, "burst": 5}, clock)
        passed, delayed = 0, []
        for _ in range(300):
            clock.advance(0.01)
            result = step.handle(request_of({}))
            if result is None:
                passed += 1
            elif isinstance(result, defer.Deferred):
                delayed.append(result)
            else:
                self.assertEqual(result.status, 429)
        fired: List[Any] = []
        for waiting in delayed:
            waiting.addCallback(fired.append)
        clock.advance(1)
        self.assertEqual(len(fired), len(delayed))
        self.assertIn(passed + len(delayed), (34, 35, 36))

    def test_sources_apart(self) -> None:
        """Each source has its own bucket; the table forgets refilled ones."""
        clock = Clock()
        step = build_step({"average": 10, "burst": 2}, clock)
        for ip in ("10.0.0.1", "10.0.0.2"):
            request = request_of({"remoteAddr": ip + ":1"})
            self.assertIsNone(step.handle(request))
            self.assertIsNone(step.handle(request))
            self.assertIsInstance(step.handle(request), Answer)
        assert step.table is not None
        self.assertEqual(len(step.table.buckets), 2)
        clock.advance(1)
        step.handle(request_of({"remoteAddr": "10.0.0.3:1"}))
        self.assertEqual(list(step.table.buckets), ["10.0.0.3"])

    def test_table_bounded(self) -> None:
        """Past its capacity the table drops the least recently used source."""
        table = BucketTable(1.0, 1, 0.5, capacity=3)
        for index in range(10):
            table.take(str(index), 0.0)
        self.assertEqual(list(table.buckets), ["7", "8", "9"])

    def test_go_durations(self) -> None:
        """Durations print as Go's time.Duration does."""
        table = [(0.0025, "2.5ms"), (0.5, "500ms"), (10, "10s"), (61.5, "1m1.5s"), (3600, "1h0m0s")]
        for seconds, text in table:
            self.assertEqual(go_duration(seconds), text)

    def test_config_errors(self) -> None:
        """Bad fields are located errors; several Redis endpoints are refused."""
        table = [
            ({"average": -1}, "average"),
            ({"period": "-1s"}, "period"),
            ({"redis": {"endpoints": ["a:1", "b:2"]}}, "endpoints"),
            ({"redis": {"endpoints": ["nohost"]}}, "endpoints"),
            ({"redis": {"tls": {"ca": "/x"}}}, "ca"),
            ({"sourceCriterion": {"requestHost": True, "requestHeaderName": "X"}}, "source"),
            ({"bogus": 1}, "bogus"),
        ]
        for config, where in table:
            with self.subTest(config):
                with self.assertRaises(FieldError) as caught:
                    ratelimit.parse(fields_of(config))
                self.assertIn(where, str(caught.exception))


class RedisTests(TestCase):
    """rateLimit on a real redis-server started for each test."""

    def setUp(self) -> None:
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.stop)

    def limiter(self, config: Dict[str, Any], now: Any = None) -> RedisLimiter:
        config = dict(config, redis={"endpoints": [f"127.0.0.1:{self.redis.port}"]})
        spec = ratelimit.parse(fields_of(config))
        rate, burst, delay = ratelimit.limits_of(spec)
        assert spec.redis is not None
        settings = connection_settings(spec.redis, FakeContext())
        limiter = RedisLimiter("default-rl@kubernetescrd", rate, burst, delay, settings, now=now)
        self.addCleanup(limiter.stop)
        return limiter

    @defer.inlineCallbacks
    def test_load_vectors(self) -> Any:
        """Each Redis load case accepts a count within Traefik's bounds (script time given)."""
        ran = 0
        for index, case in enumerate(VECTORS["cases"]):
            if case["harness"] != "load" or "redis" not in case["config"]:
                continue
            clock = Clock()
            clock.advance(1_000_000 + index * 10_000)
            limiter = self.limiter(case["config"], now=clock.seconds)
            accepted = 0
            start = clock.seconds()
            for moment in load_times(case["load"]):
                clock.advance(start + moment - clock.seconds())
                allowed, _ = yield limiter.take(f"case{index}")
                accepted += allowed
            self.assertTrue(within(case, accepted), (case["name"], accepted))
            ran += 1
        self.assertEqual(ran, 9)

    @defer.inlineCallbacks
    def test_two_proxies_share(self) -> Any:
        """Two limiters with their own connections (two proxies) enforce one limit: average
        10/s burst 5 lets 5 + 10*t through in all, whichever proxy takes them."""
        clock = Clock()
        clock.advance(2_000_000)
        first = self.limiter({"average": 10, "burst": 5}, now=clock.seconds)
        second = self.limiter({"average": 10, "burst": 5}, now=clock.seconds)
        accepted: List[int] = [0, 0]
        for tick in range(300):  # 100 requests/s for 3 s, alternating proxies
            clock.advance(0.01)
            allowed, _ = yield (first, second)[tick % 2].take("10.0.0.9")
            accepted[tick % 2] += allowed
        self.assertIn(sum(accepted), (34, 35, 36))
        self.assertGreater(min(accepted), 2)

    @defer.inlineCallbacks
    def test_two_processes_share(self) -> Any:
        """Two proxy processes, each with its own Redis connection and real clock, hammer one
        source for 2 s: together they get average 10/s burst 5 (25 ± 2), not 25 each."""
        start = time.time() + 3.0
        runs = [
            utils.getProcessOutputAndValue(
                sys.executable,
                ["-c", CHILD, str(self.redis.port), repr(start)],
                env=dict(os.environ),
                reactor=reactor,
            )
            for _ in range(2)
        ]
        results = yield defer.gatherResults(runs)
        counts = []
        for out, err, code in results:
            self.assertEqual(code, 0, err)
            counts.append(int(out.split()[-1]))
        # One shared bucket: 25 at most in all (two buckets would give about 25 each); a
        # loaded machine that starts a process late loses some of the refill, not more.
        self.assertTrue(15 <= sum(counts) <= 27, counts)
        self.assertTrue(all(count >= 5 for count in counts), counts)

    @defer.inlineCallbacks
    def test_real_time_step(self) -> Any:
        """Through the step with Redis's own clock: a burst of 5 then about 10/s."""
        config = {
            "average": 10,
            "burst": 5,
            "redis": {"endpoints": [f"127.0.0.1:{self.redis.port}"]},
        }
        step = build_step(config, reactor)
        self.addCleanup(step.stop)
        results: List[Any] = []
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            results.append((yield step.handle(request_of({}))))
            yield defer.succeed(None)
            d: defer.Deferred[None] = defer.Deferred()
            reactor.callLater(0.01, d.callback, None)
            yield d
        passed = sum(1 for result in results if result is None)
        refused = [result for result in results if isinstance(result, Answer)]
        self.assertTrue(5 + 8 <= passed <= 5 + 12, passed)
        self.assertTrue(refused and all(answer.status == 429 for answer in refused))

    @defer.inlineCallbacks
    def test_secret_and_db(self) -> Any:
        """The password comes from the Secret named by redis.secret; the bucket lives in db."""
        server = RedisServer(password="s3cret").start()
        self.addCleanup(server.stop)
        redis = {"endpoints": [f"127.0.0.1:{server.port}"], "secret": "redis-auth", "db": 3}
        spec = ratelimit.parse(fields_of({"average": 1, "period": "1m", "redis": redis}))
        context = FakeContext(reactor, secrets={"redis-auth": {"password": b"s3cret"}})
        step = ratelimit.build(spec, "default-rl@kubernetescrd", context)
        self.addCleanup(step.stop)
        self.assertIsNone((yield step.handle(request_of({}))))
        refused = yield step.handle(request_of({}))
        self.assertEqual(refused.status, 429)

        def keys(db: int) -> bytes:
            argv = ["redis-cli", "-p", str(server.port), "-a", "s3cret", "--no-auth-warning"]
            done = subprocess.run(argv + ["-n", str(db), "KEYS", "*"], capture_output=True)
            return done.stdout.strip()

        self.assertEqual(keys(3), b"rate:default-rl@kubernetescrd:192.0.2.1")
        self.assertEqual(keys(0), b"")
        wrong = ratelimit.build(
            ratelimit.parse(fields_of({"average": 1, "redis": dict(redis, secret="", db=0)})),
            "default-rl@kubernetescrd",
            FakeContext(reactor),
        )
        self.addCleanup(wrong.stop)
        wrong.shared.settings = attrs.evolve(
            wrong.shared.settings, dial_timeout=0.5, reply_timeout=0.5
        )
        answer = yield wrong.handle(request_of({}))
        self.assertEqual(answer.status, 500)  # no password: refused by Redis
        self.flushLoggedErrors()

    @defer.inlineCallbacks
    def test_tls(self) -> Any:
        """redis.tls.caSecret: the server's certificate is checked against that CA; a CA
        that did not sign it fails the request with 500, never lets it through."""
        ca, other = make_ca(), make_ca("another CA")
        leaf = make_leaf(ca, dns=["localhost"], ips=["127.0.0.1"])
        server = RedisServer(tls=(leaf.cert_pem, leaf.key_pem)).start()
        self.addCleanup(server.stop)
        redis = {"endpoints": [f"127.0.0.1:{server.port}"], "tls": {"caSecret": "ca"}}
        spec = ratelimit.parse(fields_of({"average": 1, "period": "1m", "redis": redis}))
        for authority, want in ((ca, None), (other, 500)):
            context = FakeContext(reactor, secrets={"ca": {"ca.crt": authority.cert_pem}})
            step = ratelimit.build(spec, "default-tls@kubernetescrd", context)
            step.shared.settings = attrs.evolve(
                step.shared.settings, dial_timeout=1.0, reply_timeout=1.0
            )
            self.addCleanup(step.stop)
            result = yield step.handle(request_of({}))
            self.assertEqual(None if result is None else result.status, want)
        self.flushLoggedErrors()

    @defer.inlineCallbacks
    def test_redis_down(self) -> Any:
        """Redis unreachable: 500, never a request let through unchecked."""
        config = {
            "average": 10,
            "redis": {"endpoints": ["127.0.0.1:1"], "dialTimeout": "0.3s", "readTimeout": "0.2s"},
        }
        step = build_step(config, reactor)
        self.addCleanup(step.stop)
        answer = yield step.handle(request_of({}))
        self.assertIsInstance(answer, Answer)
        self.assertEqual(answer.status, 500)


class StopTests(SynchronousTestCase):
    """Steps a reload drops are stopped (their Redis connections closed); kept ones are not."""

    def test_stop_dropped(self) -> None:
        """Only the steps the new table does not keep get stop()."""
        from tsproxy.service import stop_dropped_steps

        class Step:
            def __init__(self) -> None:
                self.stopped = 0

            def stop(self) -> None:
                self.stopped += 1

        class Table:
            def __init__(self, *steps: Any) -> None:
                self.middleware_reuse = {"http": {i: (s, ()) for i, s in enumerate(steps)}}

        kept, dropped, plain = Step(), Step(), object()
        stop_dropped_steps(Table(kept, dropped, plain), Table(kept))
        self.assertEqual((kept.stopped, dropped.stopped), (0, 1))
        stop_dropped_steps(Table(kept), None)  # shutdown: every step
        self.assertEqual(kept.stopped, 1)
