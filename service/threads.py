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
a count learnt per model and shape from the first such requests, as they
are served: TRIALS of them on one thread and as many on torch's count, in
turns, so that both see the same load; then one thread where its best time
is within SINGLE_THREAD_WITHIN of the team's, torch's count otherwise.
Nothing is timed at load, and what other work the cores have then (the
server loads several models at once) does not decide it. Executions on the
model's worker thread, batches among them, keep torch's count. Measured
with 32 clients (bench/serve.py, 2 cores): on one thread for every
execution lenet served 1,765-1,856 requests/s against 2,271-2,289 on
torch's two; on one thread for every batch of one, as many, but its p99
latency rose from 23-25 ms to 36-37 ms. `--intra-op-threads N` (or
OMP_NUM_THREADS) fixes the count for everything instead.

OpenMP keeps the count per calling thread, and torch.set_num_threads also
sets the count that threads start with: so each execution on the loop sets
its model's count, and each on a worker torch's own.
"""

from __future__ import annotations

import os

import torch

TRIALS = 3  # requests run alone on each count before a shape's count is chosen
# One thread is chosen when its time is within this factor of the team's:
# on a server the other cores are not idle but serve gRPC and the loop.
SINGLE_THREAD_WITHIN = 1.25
# torch's own count (one per core, or OMP_NUM_THREADS), read before any
# model sets one: torch.set_num_threads also changes what threads that have
# not run torch yet start with.
TORCH_DEFAULT = torch.get_num_threads()


def user_chose() -> bool:
    """True when the environment fixes torch's thread count already."""
    return bool(os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"))


def use(threads: int | None) -> None:
    """Give the calling thread `threads` per operation (None: leave it)."""
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


class AloneCounts:
    """One model's thread counts for requests run alone, learnt per shape."""

    def __init__(self, shapes_kept: int, team: int = TORCH_DEFAULT):
        self.shapes_kept = shapes_kept  # clients choose the sizes of symbolic dims: a bounded memory
        self.team = team
        self._trials: dict[tuple, list[tuple[int, int]]] = {}  # shape -> (count, ns) of each run so far
        self._chosen: dict[tuple, int] = {}

    def count(self, shape: tuple) -> int:
        """The count the next request of `shape` run alone uses: one thread
        first, then the two in turns until TRIALS of each have run."""
        chosen = self._chosen.get(shape)
        if chosen is not None:
            return chosen
        return 1 if len(self._trials.get(shape, ())) % 2 == 0 else self.team

    def ran(self, shape: tuple, count: int, ns: int) -> int:
        """Record a run; returns how long the shape takes alone, for the
        scheduler's choice to run it alone again: while both counts are on
        trial, the best run so far, so a slow trial does not move the shape
        off the loop before the other count has been tried."""
        if shape in self._chosen or self.team <= 1:
            return ns
        if shape not in self._trials and len(self._trials) >= self.shapes_kept:
            self._trials.clear()
        runs = self._trials.setdefault(shape, [])
        runs.append((count, ns))
        if len(runs) < 2 * TRIALS:
            return min(t for _, t in runs)
        best = {c: min(t for k, t in runs if k == c) for c in (1, self.team)}
        if len(self._chosen) >= self.shapes_kept:
            self._chosen.clear()
        self._chosen[shape] = 1 if best[1] <= SINGLE_THREAD_WITHIN * best[self.team] else self.team
        del self._trials[shape]
        return best[self._chosen[shape]]

    def chosen(self, shape: tuple) -> int | None:
        return self._chosen.get(shape)
