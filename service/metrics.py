"""Prometheus metrics at http://HOST:PORT/metrics, in Triton's names, labels,
help texts and meanings (those of Triton 2.51's libtritonserver).

The figures are read at each scrape from the same ModelStats objects that
ModelStatistics answers from, on the event loop thread that updates them, so
a scrape is one consistent instant and the two never disagree (durations
are the statistics' nanoseconds in whole microseconds, as Triton's). The
serving path keeps nothing for the metrics but failures by reason and the
histograms' bucket counts.

prometheus_client writes a counter's samples as NAME_total, while Triton's
counters have no suffix (nv_inference_request_success). The names are what
dashboards and alerts query, so they are kept, and those families are typed
`untyped`: Prometheus stores and queries them as it does counters (rate()
and increase() work the same).
"""

from __future__ import annotations

import asyncio
import os

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from service import metrics_http
from service.metrics_http import MetricsPortError  # noqa: F401 - raised by start_metrics_server
from service.repository import Repository
from service.stats import Histogram, ModelStats

SCRAPE_TIMEOUT_S = 5.0
LABELS = ("model", "version")

# (name, help, the statistic it reads): help texts are Triton's.
_COUNTERS = (
    ("nv_inference_request_success", "Number of successful inference requests, all batch sizes",
     lambda s: s.success.count),
    ("nv_inference_count", "Number of inferences performed (does not include cached requests)",
     lambda s: s.inference_count),
    ("nv_inference_exec_count", "Number of model executions performed (does not include cached requests)",
     lambda s: s.execution_count),
    ("nv_inference_request_duration_us",
     "Cumulative inference request duration in microseconds (includes cached requests)",
     lambda s: s.success.ns // 1000),  # as Triton's: successful requests only
    ("nv_inference_queue_duration_us",
     "Cumulative inference queuing duration in microseconds (includes cached requests)",
     lambda s: s.queue.ns // 1000),
    ("nv_inference_compute_input_duration_us",
     "Cumulative compute input duration in microseconds (does not include cached requests)",
     lambda s: s.compute_input.ns // 1000),
    ("nv_inference_compute_infer_duration_us",
     "Cumulative compute inference duration in microseconds (does not include cached requests)",
     lambda s: s.compute_infer.ns // 1000),
    ("nv_inference_compute_output_duration_us",
     "Cumulative inference compute output duration in microseconds (does not include cached requests)",
     lambda s: s.compute_output.ns // 1000),
)

# Triton 2.51 has summaries, no histograms; later releases add the first of
# these behind a metrics-config switch. A model here answers once, so its
# first response is its response. The other two are netspec's own.
_HISTOGRAMS = (
    ("nv_inference_first_response_histogram_ms", "Duration from request to first response in milliseconds",
     lambda s: s.request_ms),
    ("netspec_inference_queue_histogram_ms", "Time successful requests waited in the queue, in milliseconds",
     lambda s: s.queue_ms),
    ("netspec_inference_compute_infer_histogram_ms",
     "Compute time of the executions successful requests were part of, in milliseconds",
     lambda s: s.compute_infer_ms),
)


def _untyped(name: str, documentation: str) -> Metric:
    return Metric(name, documentation, "unknown")


def _buckets(h: Histogram) -> list[tuple[str, int]]:
    total, out = 0, []
    for bound, count in zip((*h.bounds, float("inf")), h.counts):
        total += count
        out.append(("+Inf" if bound == float("inf") else floatToGoString(bound), total))
    return out


def families(repository: Repository) -> list[Metric]:
    """Every metric family now; runs on the event loop thread."""
    rows: list[tuple[tuple[str, str], ModelStats, int]] = []
    for entry in repository.entries.values():
        for version, stats in sorted(entry.stats.items()):
            served = entry.versions.get(version)
            rows.append(((entry.name, version), stats, served.scheduler.waiting if served else 0))

    out: list[Metric] = []
    for name, documentation, read in _COUNTERS:
        family = _untyped(name, documentation)
        for labels, stats, _ in rows:
            family.add_sample(name, dict(zip(LABELS, labels)), read(stats))
        out.append(family)
    failure = _untyped("nv_inference_request_failure", "Number of failed inference requests, all batch sizes")
    for labels, stats, _ in rows:
        for reason, count in stats.failures.items():
            failure.add_sample(failure.name, {"model": labels[0], "reason": reason, "version": labels[1]}, count)
    out.insert(1, failure)  # right after the successes, as Triton lists them
    pending = GaugeMetricFamily("nv_inference_pending_request_count",
                                "Instantaneous number of pending requests awaiting execution per-model.", labels=LABELS)
    for labels, _, waiting in rows:
        pending.add_metric(labels, waiting)
    out.append(pending)
    for name, documentation, read in _HISTOGRAMS:
        family = HistogramMetricFamily(name, documentation, labels=LABELS)
        for labels, stats, _ in rows:
            h = read(stats)
            family.add_metric(labels, _buckets(h), h.sum)
        out.append(family)
    out.extend(_gpu_memory(repository))
    return out


def _gpu_memory(repository: Repository) -> list[Metric]:
    """Triton's GPU memory gauges, for the device this server runs on."""
    if repository.device.type != "cuda":
        return []
    import torch

    index = repository.device.index or 0
    free, total = torch.cuda.mem_get_info(index)
    uuid = f"GPU-{torch.cuda.get_device_properties(index).uuid}"
    used = GaugeMetricFamily("nv_gpu_memory_used_bytes", "GPU used memory, in bytes", labels=["gpu_uuid"])
    used.add_metric([uuid], total - free)
    whole = GaugeMetricFamily("nv_gpu_memory_total_bytes", "GPU total memory, in bytes", labels=["gpu_uuid"])
    whole.add_metric([uuid], total)
    return [used, whole]


class TritonCollector:
    """Collects on the server's event loop from prometheus_client's HTTP thread."""

    def __init__(self, repository: Repository, loop: asyncio.AbstractEventLoop):
        self.repository = repository
        self.loop = loop

    def collect(self):
        future = asyncio.run_coroutine_threadsafe(self._families(), self.loop)
        return future.result(SCRAPE_TIMEOUT_S)

    async def _families(self):
        out = families(self.repository)
        pid = str(os.getpid())
        worker = GaugeMetricFamily("netspec_process_info", "The serving process (its pid)", labels=["pid"])
        worker.add_metric([pid], 1)
        # With --workers, the merged scrape shows each process's share of the requests.
        answered = _untyped("netspec_process_request_success",
                            "Successful inference requests this process answered, all models")
        answered.add_sample(answered.name, {"pid": pid},
                            sum(s.success.count for e in self.repository.entries.values() for s in e.stats.values()))
        return [*out, worker, answered]


def start_metrics_server(repository: Repository, host: str, port: int):
    """Serve /metrics on host:port in a thread, from a registry of its own;
    returns the server, for stop_metrics_server()."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TritonCollector(repository, asyncio.get_running_loop()))
    return metrics_http.start(registry, host, port)


async def stop_metrics_server(server) -> None:
    """Stop serving and free the port, off the event loop, which scrapes
    still in progress need."""
    await asyncio.get_running_loop().run_in_executor(None, metrics_http.stop, server)
