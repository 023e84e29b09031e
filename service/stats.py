"""Cumulative statistics of one model version, as ModelStatistics reports them.

Updated only from the event loop thread, so no locking.
"""

from __future__ import annotations

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

    def record_failure(self, total_ns: int) -> None:
        self.last_inference_ms = time.time_ns() // 1_000_000
        self.fail.add(total_ns)
