"""Merging the workers' /metrics and API counts: sums, the families that take the largest
value, histograms, per-worker series, and a round trip through a real Metrics exposition."""

from __future__ import annotations

from typing import Dict, FrozenSet, Tuple

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from tests.observe.test_observe_metrics import fake_table, make
from tests.observefixture import exchange
from tsproxy.workers.merge import (
    WorkerScrape,
    merge_expositions,
    merge_workers,
    render,
    sum_stats,
)

Samples = Dict[Tuple[str, FrozenSet[Tuple[str, str]]], float]

COUNTER = """\
# HELP traefik_entrypoint_requests_total How many HTTP requests processed on an entrypoint.
# TYPE traefik_entrypoint_requests_total counter
"""
OPEN = """\
# HELP traefik_open_connections How many open connections exist
# TYPE traefik_open_connections gauge
"""
UP = """\
# HELP traefik_service_server_up service server is up
# TYPE traefik_service_server_up gauge
"""
RELOADS = """\
# HELP traefik_config_reloads_total Config reloads
# TYPE traefik_config_reloads_total counter
"""
LAST = """\
# HELP traefik_config_last_reload_success Last config reload success
# TYPE traefik_config_last_reload_success gauge
"""
HISTOGRAM = """\
# HELP traefik_entrypoint_request_duration_seconds How long it took
# TYPE traefik_entrypoint_request_duration_seconds histogram
"""


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def merged(*texts: str) -> Samples:
    return samples(render(merge_expositions(texts)).decode("utf-8"))


def key(name: str, **labels: str) -> Tuple[str, FrozenSet[Tuple[str, str]]]:
    return name, frozenset(labels.items())


REQ = "traefik_entrypoint_requests_total"
CODE_200 = dict(code="200", entrypoint="web")
CODE_404 = dict(code="404", entrypoint="web")


class MergeTests(SynchronousTestCase):
    """merge_expositions over hand-written worker expositions."""

    def test_table(self) -> None:
        """Each row: the workers' texts and the merged samples."""
        rows = [
            (
                "equal labels are summed",
                [
                    COUNTER + REQ + '{code="200",entrypoint="web"} 3\n',
                    COUNTER + REQ + '{code="200",entrypoint="web"} 4\n',
                ],
                {key(REQ, **CODE_200): 7},
            ),
            (
                "other labels are kept apart",
                [
                    COUNTER + REQ + '{code="200",entrypoint="web"} 3\n',
                    COUNTER + REQ + '{code="404",entrypoint="web"} 1\n',
                ],
                {key(REQ, **CODE_200): 3, key(REQ, **CODE_404): 1},
            ),
            (
                "open connections (a gauge) are summed",
                [
                    OPEN + 'traefik_open_connections{entrypoint="web",protocol="TCP"} 2\n',
                    OPEN + 'traefik_open_connections{entrypoint="web",protocol="TCP"} 5\n',
                ],
                {key("traefik_open_connections", entrypoint="web", protocol="TCP"): 7},
            ),
            (
                "a server is up if any worker finds it up",
                [
                    UP + 'traefik_service_server_up{service="s",url="http://a"} 0\n'
                    'traefik_service_server_up{service="s",url="http://b"} 0\n',
                    UP + 'traefik_service_server_up{service="s",url="http://a"} 1\n'
                    'traefik_service_server_up{service="s",url="http://b"} 0\n',
                ],
                {
                    key("traefik_service_server_up", service="s", url="http://a"): 1,
                    key("traefik_service_server_up", service="s", url="http://b"): 0,
                },
            ),
            (
                "reload counts and times: the largest, every worker reloads each time",
                [
                    RELOADS
                    + "traefik_config_reloads_total 3\n"
                    + LAST
                    + "traefik_config_last_reload_success 1700000000\n",
                    RELOADS
                    + "traefik_config_reloads_total 1\n"
                    + LAST
                    + "traefik_config_last_reload_success 1700000100\n",
                ],
                {
                    key("traefik_config_reloads_total"): 3,
                    key("traefik_config_last_reload_success"): 1700000100,
                },
            ),
            (
                "histogram buckets, sums and counts are summed",
                [
                    HISTOGRAM + 'traefik_entrypoint_request_duration_seconds_bucket{le="0.1"} 1\n'
                    'traefik_entrypoint_request_duration_seconds_bucket{le="+Inf"} 2\n'
                    "traefik_entrypoint_request_duration_seconds_count 2\n"
                    "traefik_entrypoint_request_duration_seconds_sum 0.5\n",
                    HISTOGRAM + 'traefik_entrypoint_request_duration_seconds_bucket{le="0.1"} 0\n'
                    'traefik_entrypoint_request_duration_seconds_bucket{le="+Inf"} 1\n'
                    "traefik_entrypoint_request_duration_seconds_count 1\n"
                    "traefik_entrypoint_request_duration_seconds_sum 0.25\n",
                ],
                {
                    key("traefik_entrypoint_request_duration_seconds_bucket", le="0.1"): 1,
                    key("traefik_entrypoint_request_duration_seconds_bucket", le="+Inf"): 3,
                    key("traefik_entrypoint_request_duration_seconds_count"): 3,
                    key("traefik_entrypoint_request_duration_seconds_sum"): 0.75,
                },
            ),
            (
                "a family only one worker has",
                [COUNTER + REQ + '{code="200",entrypoint="web"} 3\n', OPEN],
                {key(REQ, **CODE_200): 3},
            ),
            ("no worker", [], {}),
        ]
        for name, texts, expected in rows:
            with self.subTest(name):
                self.assertEqual(merged(*texts), expected)

    def test_roundTrip(self) -> None:
        """One worker's real exposition comes out of the merge as it went in."""
        metrics = make()
        metrics.set_servers(
            fake_table(["default-app-wrr-846b2c19626676e0a8ba"], {"default-app-v1-80": [80, 81]})
        )
        metrics.config_reload(True)
        metrics.exchange(exchange())
        metrics.exchange(exchange(status=502, duration=3.0))
        metrics.connection_opened("web", "TCP")
        text = metrics.exposition()[1].decode("utf-8")
        self.assertEqual(render(merge_expositions([text])).decode("utf-8"), text)

    def test_twoRealWorkers(self) -> None:
        """Two real expositions: every request counted once in the sum."""
        texts = []
        for count in (2, 3):
            metrics = make()
            for _ in range(count):
                metrics.exchange(exchange())
            texts.append(metrics.exposition()[1].decode("utf-8"))
        found = merged(*texts)
        self.assertEqual(
            found[key(REQ, code="200", entrypoint="web", method="GET", protocol="http")], 5
        )


class WorkerSeriesTests(SynchronousTestCase):
    """merge_workers adds one series per worker slot."""

    def test_perWorker(self) -> None:
        """Up, restarts and requests per worker; a worker that did not answer is down and
        its counts are left out."""
        text = COUNTER + REQ + '{code="200",entrypoint="web"} 3\n'
        body = merge_workers(
            [WorkerScrape(0, 100, 0, text, 3), WorkerScrape(1, 0, 2, None, 0)]
        ).decode("utf-8")
        self.assertEqual(
            samples(body),
            {
                key(REQ, **CODE_200): 3,
                key("tsproxy_worker_up", worker="0", pid="100"): 1,
                key("tsproxy_worker_up", worker="1", pid="0"): 0,
                key("tsproxy_worker_restarts_total", worker="0"): 0,
                key("tsproxy_worker_restarts_total", worker="1"): 2,
                key("tsproxy_worker_requests_total", worker="0", pid="100"): 3,
            },
        )


class StatsTests(SynchronousTestCase):
    """sum_stats: the API's per-service counts."""

    def test_table(self) -> None:
        """Each row: the workers' counts and their sum."""
        a = "a@kubernetescrd"
        b = "b@kubernetescrd"
        rows = [
            ([], {}),
            ([{a: {"requests": 2, "errors": 1}}], {a: {"requests": 2, "errors": 1}}),
            (
                [
                    {a: {"requests": 2, "errors": 1}},
                    {a: {"requests": 3, "errors": 0}, b: {"requests": 1, "errors": 1}},
                ],
                {a: {"requests": 5, "errors": 1}, b: {"requests": 1, "errors": 1}},
            ),
        ]
        for stats, expected in rows:
            with self.subTest(stats=stats):
                self.assertEqual(sum_stats(stats), expected)
