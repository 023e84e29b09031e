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
the count chosen here, at load, from a batch of one timed on both counts in
turns: one thread when its best time is within SINGLE_THREAD_WITHIN of the
team's; torch's count otherwise, and for a model whose batch of one is far
too slow to run on the loop (its multiply-adds say so before any run,
MACS_PER_S_AT_MOST; else a first run over FIRST_RUN_ENOUGH_S shows it).
Executions on the model's worker thread, batches among them, keep torch's
count. Measured with 32 clients (bench/serve.py, 2 cores): on one thread
for every execution lenet served 1,765-1,856 requests/s against
2,271-2,289 on torch's two; on one thread for every batch of one, as many,
but its p99 latency rose from 23-25 ms to 36-37 ms. `--intra-op-threads N`
(or OMP_NUM_THREADS) fixes the count for everything instead.

Models that load together compete for the cores while they are timed, and
the choice can then fall back to torch's count (the old behaviour): lenet
loaded with the rest of the zoo (4 loads at a time) chose one thread in 2
of 4 starts, alone every time.

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
TIMED_RUNS = 5
# How far over the bound of a request run alone a batch of one on torch's
# threads may be and still be timed on one: lenet's was 5x faster on one.
TEAM_BOUND = 10
# A first run slower than this ends the timing: the model is far too large
# to run on the event loop, and timing it further would slow its load.
FIRST_RUN_ENOUGH_S = 0.05
# Multiply-adds a second that no CPU core exceeds (two 16-wide fp32 FMA units
# at 3 GHz make 96 G): a model with more a sample than this many in the
# bound of a request run alone is not timed at all (the zoo's vgg, resnet or
# efficientnet would each spend a forward pass of their load on it).
MACS_PER_S_AT_MOST = 100e9
# torch's own count (one per core, or OMP_NUM_THREADS), read before any
# model sets one: torch.set_num_threads also changes what threads that have
# not run torch yet start with.
TORCH_DEFAULT = torch.get_num_threads()


def user_chose() -> bool:
    """True when the environment fixes torch's thread count already."""
    return bool(os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"))


def choose(run: Callable[[], object], default: int, alone_below_s: float) -> int:
    """The thread count for a model's requests run alone, from calls of
    `run` (a batch of one) on torch's `default` count and on one thread,
    taken in turns so that both see the same load (the server loads several
    models at once), the best of TIMED_RUNS each after a first untimed one.
    A model whose batch of one takes over TEAM_BOUND times `alone_below_s`
    on torch's threads keeps them: no single thread brings it under the
    bound of a request run alone. Leaves the calling thread's count as it was."""
    if default <= 1:
        return default
    team_bound = TEAM_BOUND * alone_below_s
    if _seconds_on(default, run) > max(team_bound, FIRST_RUN_ENOUGH_S):
        return default
    _seconds_on(1, run)  # what a first run builds (oneDNN's kernels) is per thread count
    team = one = float("inf")
    for _ in range(TIMED_RUNS):
        team = min(team, _seconds_on(default, run))
        if team > team_bound:
            return default
        one = min(one, _seconds_on(1, run))
    return 1 if one <= SINGLE_THREAD_WITHIN * team else default


def _seconds_on(threads: int, run: Callable[[], object]) -> float:
    """Seconds one call of `run` takes on `threads` per operation."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(before)


def use(threads: int | None) -> None:
    """Give the calling thread `threads` per operation (None: leave it)."""
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
