"""The whole proxy's /metrics and API counts from its workers' own: pure merging, no I/O.

Every worker counts what it served; the supervisor asks each for its Prometheus exposition
and per-service counts and adds them up here. Counters, histograms and most gauges (open
connections) are summed; the families in ``MAX_FAMILIES`` take the largest value instead.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import attrs
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "MAX_FAMILIES",
    "WorkerScrape",
    "merge_expositions",
    "merge_workers",
    "render",
    "sum_stats",
]

#: Families whose merged value is the largest one, not the sum:
#: a server is UP if any worker's checks find it up (a worker sends it traffic then); every
#: worker applies each configuration, so the proxy reloaded as often as its oldest worker
#: and last reloaded when the latest did.
MAX_FAMILIES = frozenset(
    {
        "traefik_service_server_up",
        "traefik_config_reloads",
        "traefik_config_reloads_failure",
        "traefik_config_last_reload_success",
        "traefik_config_last_reload_failure",
    }
)

SampleKey = Tuple[str, Tuple[Tuple[str, str], ...]]


@attrs.frozen
class WorkerScrape:
    """What the supervisor knows of one worker slot at a scrape: ``exposition`` None when
    the worker did not answer (dead, restarting, too slow)."""

    index: int
    pid: int
    restarts: int
    exposition: Optional[str]
    requests: int = 0


def _families(text: str) -> Iterable[Metric]:
    return text_string_to_metric_families(text)


def merge_expositions(texts: Sequence[str]) -> List[Metric]:
    """The families of ``texts`` (Prometheus text, one per worker) merged: samples with the
    same name and labels summed (largest value for ``MAX_FAMILIES``), in the order they
    first appear."""
    order: List[str] = []
    found: Dict[str, Metric] = {}
    values: Dict[str, Dict[SampleKey, float]] = {}
    for text in texts:
        for family in _families(text):
            merged = found.get(family.name)
            if merged is None:
                merged = found[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
                order.append(family.name)
                values[family.name] = {}
            table = values[family.name]
            largest = family.name in MAX_FAMILIES
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                seen = table.get(key)
                if seen is None:
                    table[key] = sample.value
                elif largest:
                    table[key] = max(seen, sample.value)
                else:
                    table[key] = seen + sample.value
    result = []
    for name in order:
        family = found[name]
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
        result.append(family)
    return result


def _worker_families(workers: Sequence[WorkerScrape]) -> List[Metric]:
    """tsproxy_worker_up, _restarts_total and _requests_total: one series per worker slot."""
    up = Metric("tsproxy_worker_up", "Worker answered this scrape (1) or not (0)", "gauge")
    restarts = Metric("tsproxy_worker_restarts", "Times the worker was restarted", "counter")
    served = Metric(
        "tsproxy_worker_requests", "HTTP requests the worker answered (since it started)", "counter"
    )
    for worker in workers:
        labels = {"worker": str(worker.index), "pid": str(worker.pid)}
        up.add_sample("tsproxy_worker_up", labels, 1 if worker.exposition is not None else 0)
        restarts.add_sample(
            "tsproxy_worker_restarts_total", {"worker": str(worker.index)}, worker.restarts
        )
        if worker.exposition is not None:
            served.add_sample("tsproxy_worker_requests_total", labels, worker.requests)
    return [up, restarts, served]


class _Families:
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def render(families: Iterable[Metric]) -> bytes:
    """Prometheus text (0.0.4) of ``families``, written by prometheus_client."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))  # type: ignore[arg-type]
    return generate_latest(registry)


def merge_workers(workers: Sequence[WorkerScrape]) -> bytes:
    """The supervisor's /metrics: the answering workers' expositions merged, then the
    per-worker families."""
    texts = [w.exposition for w in workers if w.exposition]
    return render(merge_expositions(texts) + _worker_families(workers))  # type: ignore[arg-type]


def sum_stats(stats: Iterable[Mapping[str, Any]]) -> Dict[str, Any]:
    """The dashboard's counts of every worker added up (tsproxy.observe's dashboard_stats:
    per service, per parent's child, per entrypoint, TCP and UDP sessions…): numbers under
    equal keys are summed, at any depth."""
    total: Dict[str, Any] = {}
    for one in stats:
        _add_into(total, one)
    return total


def _add_into(total: Dict[str, Any], more: Mapping[str, Any]) -> None:
    for key, value in more.items():
        if isinstance(value, Mapping):
            _add_into(total.setdefault(key, {}), value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value
        else:
            total.setdefault(key, value)
