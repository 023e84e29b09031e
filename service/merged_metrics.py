"""The metrics of a --workers group: the parent serves --metrics-port, and
each scrape reads every worker's own endpoint (on 127.0.0.1, a port of its
choosing) and adds their figures up.

Samples with the same name and labels are summed: counters, durations,
pending requests, histogram buckets, counts and sums are all totals over
the processes. Device-wide gauges (GPU memory, which every process reads for
the whole device) are taken once, as the largest. Per-process series carry
a `pid` label and so stay apart (netspec_process_info,
netspec_process_request_success).

Why not prometheus_client's multiprocess mode: it works only for figures
kept in its own Counter, Gauge and Histogram objects, written to shared
files on every update, and it exposes counters with a `_total` suffix.
The figures here are read at scrape time from the statistics that
ModelStatistics answers from, under Triton's names without a suffix; reading
the workers' endpoints keeps both, and adds nothing to the serving path.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from service.metrics_http import ScrapeFailed

WORKER_SCRAPE_TIMEOUT_S = 5.0
# The workers are on this machine: an http_proxy of the environment must not apply.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
DEVICE_WIDE = frozenset({"nv_gpu_memory_used_bytes", "nv_gpu_memory_total_bytes"})


def merge(texts: list[str]) -> list[Metric]:
    """The families of several Prometheus texts, their samples added up."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple, float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            into = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in into:
                    into[key] = sample.value
                elif family.name in DEVICE_WIDE:
                    into[key] = max(into[key], sample.value)
                else:
                    into[key] += sample.value
    for name, metric in families.items():
        for (sample_name, labels), value in values[name].items():
            metric.add_sample(sample_name, dict(labels), value)
    return list(families.values())


class MergedCollector:
    """Collects from the workers whose metrics endpoints `ports()` lists now."""

    def __init__(self, ports: Callable[[], dict[int, int]]):
        self.ports = ports  # worker number -> its metrics port

    def collect(self):
        texts = []
        for number, port in sorted(self.ports().items()):
            url = f"http://127.0.0.1:{port}/metrics"
            try:
                with _DIRECT.open(url, timeout=WORKER_SCRAPE_TIMEOUT_S) as response:
                    texts.append(response.read().decode())
            except (urllib.error.URLError, OSError) as e:
                # Leaving it out would look like a counter reset: the scrape fails instead.
                raise ScrapeFailed(f"worker {number} did not answer at {url}: {getattr(e, 'reason', e)}") from e
        return merge(texts)
