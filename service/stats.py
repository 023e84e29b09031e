"""Cumulative statistics of one model version, as ModelStatistics reports them
and the metrics endpoint exposes them (service/metrics.py reads these same
objects at each scrape, so the two never disagree).

Updated only from the event loop thread, so no locking.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field

from service.runtime import Timings


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int, count: int = 1) -> None:
        self.count += count
        self.ns += ns


# Triton's reasons for a failed request (the `reason` label of
# nv_inference_request_failure): refused before it ran, cancelled by its
# client, failed in the model, anything else (for us: inputs that do not
# match the model, a response over the message limit).
FAILURE_REASONS = ("REJECTED", "CANCELED", "BACKEND", "OTHER")

# Upper bounds of the latency histograms, in milliseconds: from a small
# network's batch of one on a GPU to a large batch on a CPU.
LATENCY_BUCKETS_MS = (0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)


@dataclass
class Histogram:
    """Counts per bucket (not cumulative; the last one is +Inf) and the sum."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS_MS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    sum: float = 0.0

    def observe_ns(self, ns: int) -> None:
        ms = ns / 1e6
        self.counts[bisect.bisect_left(self.bounds, ms)] += 1
        self.sum += ms


@dataclass
class BatchStats:
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


@dataclass
class ModelStats:
    last_inference_ms: int = 0
    inference_count: int = 0  # samples
    execution_count: int = 0  # model runs
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    batches: dict[int, BatchStats] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAILURE_REASONS, 0))
    # Each request's whole time (for a model that answers once, Triton's
    # "first response"), its time queued, and its execution's compute time.
    request_ms: Histogram = field(default_factory=Histogram)
    queue_ms: Histogram = field(default_factory=Histogram)
    compute_infer_ms: Histogram = field(default_factory=Histogram)

    def record_execution(self, batch_size: int, t: Timings) -> None:
        self.execution_count += 1
        b = self.batches.setdefault(batch_size, BatchStats())
        b.compute_input.add(t.compute_input)
        b.compute_infer.add(t.compute_infer)
        b.compute_output.add(t.compute_output)

    def record_success(self, batch: int, total_ns: int, queue_ns: int, t: Timings) -> None:
        """One request that succeeded; `t` is the execution it was part of."""
        self.last_inference_ms = time.time_ns() // 1_000_000
        self.inference_count += batch
        self.success.add(total_ns)
        self.queue.add(queue_ns)
        self.compute_input.add(t.compute_input)
        self.compute_infer.add(t.compute_infer)
        self.compute_output.add(t.compute_output)
        self.request_ms.observe_ns(total_ns)
        self.queue_ms.observe_ns(queue_ns)
        self.compute_infer_ms.observe_ns(t.compute_infer)

    def record_failure(self, total_ns: int, reason: str = "OTHER") -> None:
        self.last_inference_ms = time.time_ns() // 1_000_000
        self.fail.add(total_ns)
        self.failures[reason] += 1
