"""How many threads torch gives each operation of a small request on the CPU.

torch runs an operation on a team of OpenMP threads, one per core by
default, and `netspec serve` makes them sleep between operations
(OMP_WAIT_POLICY=PASSIVE, service/cli.py) so that they leave the cores to
gRPC's threads and the event loop. Waking a sleeping team costs tens of
microseconds an operation, which a small model's batch of one does not
repay: lenet's took 0.84 ms on torch's two passive threads and 0.16 ms on
one (2 cores).

A request that the scheduler runs alone on the event loop (a tiny
execution while nothing else waits, service/batching.py) therefore runs on
the count chosen here, at load, from a batch of one timed both ways: one
thread when its time is within SINGLE_THREAD_WITHIN of the team's; torch's
count otherwise, and for a model whose batch of one is far too slow to run
on the loop (a first run over FIRST_RUN_ENOUGH_S shows it at once, so a
large model's load pays one forward pass). Executions on the model's
worker thread, batches among them, keep torch's count. Measured with 32
clients (bench/serve.py, 2 cores): on one thread for every execution lenet
served 1,765-1,856 requests/s against 2,271-2,289 on torch's two; on one
thread for every batch of one, as many, but its p99 latency rose from
23-25 ms to 36-37 ms.
`--intra-op-threads N` (or OMP_NUM_THREADS) fixes the count for everything
instead.

OpenMP keeps the count per calling thread, and torch.set_num_threads also
sets the count that threads start with: so each execution on the loop sets
its model's count, and each on a worker torch's own.
"""

from __future__ import annotations

import os
import time
from typing import Callable

import torch

# One thread is chosen when its time is within this factor of the team's:
# on a server the other cores are not idle but serve gRPC and the loop.
SINGLE_THREAD_WITHIN = 1.25
TIMED_RUNS = 3
# How far over the bound of a request run alone a batch of one on torch's
# threads may be and still be timed on one: lenet's was 5x faster on one.
TEAM_BOUND = 10
# A first run slower than this ends the timing: the model is far too large
# to run on the event loop, and timing it further would slow its load.
FIRST_RUN_ENOUGH_S = 0.05
# torch's own count (one per core, or OMP_NUM_THREADS), read before any
# model sets one: torch.set_num_threads also changes what threads that have
# not run torch yet start with.
TORCH_DEFAULT = torch.get_num_threads()


def user_chose() -> bool:
    """True when the environment fixes torch's thread count already."""
    return bool(os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"))


def choose(forward_s: Callable[[int, float], float], default: int, alone_below_s: float) -> int:
    """The thread count for a model's requests run alone, from
    `forward_s(threads, enough)`: the seconds one batch of one takes on that
    many threads (the best of a few runs, or the first past `enough`, after
    which the answer is known). A model whose batch of one takes over
    TEAM_BOUND times `alone_below_s` on torch's threads keeps them: no
    single thread brings it under the bound of a request run alone."""
    if default <= 1:
        return default
    team = forward_s(default, TEAM_BOUND * alone_below_s)
    if team > TEAM_BOUND * alone_below_s:
        return default
    bound = SINGLE_THREAD_WITHIN * team
    return 1 if forward_s(1, bound) <= bound else default


def timer(run: Callable[[], object]) -> Callable[[int, float], float]:
    """`forward_s` for choose(): the best of TIMED_RUNS calls of `run` on the
    given number of threads after a first, untimed one (which builds what
    later ones reuse) unless that is past FIRST_RUN_ENOUGH_S. Leaves the
    calling thread with the count it had."""

    def forward_s(threads: int, enough: float) -> float:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            first = _seconds(run)
            if first > max(enough, FIRST_RUN_ENOUGH_S):
                return first
            best = float("inf")
            for _ in range(TIMED_RUNS):
                best = min(best, _seconds(run))
                if best > enough:
                    break
            return best
        finally:
            torch.set_num_threads(before)

    return forward_s


def _seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def use(threads: int | None) -> None:
    """Give the calling thread `threads` per operation (None: leave it)."""
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
