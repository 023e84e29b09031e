"""Threads per operation for requests run alone: learnt per model and shape
from the first such requests, on one thread and on torch's team in turns;
each model's count on the event loop, torch's on the workers (OpenMP keeps
the count per calling thread)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch import nn

from compiler.ir import TensorInfo as Info
from service import batching, threads
from service.batching import Scheduler
from service.runtime import Runtime
from service_fakes import fake_model, run

CPU = torch.device("cpu")
SHAPE = (((4,),), 1)  # the scheduler's key for one [1, 4] request
TEAM = threads.TORCH_DEFAULT
needs_a_team = pytest.mark.skipif(TEAM < 2, reason="one core: torch has one thread to give")


def learn(counts: threads.AloneCounts, ns_on: dict[int, int]) -> list[int]:
    """Runs of SHAPE until its count is chosen, each taking ns_on[count]; the counts used."""
    used = []
    while counts.chosen(SHAPE) is None and len(used) < 20:
        count = counts.count(SHAPE)
        used.append(count)
        counts.ran(SHAPE, count, ns_on[count])
    return used


def test_one_thread_is_learnt_for_a_small_model_and_the_team_for_a_larger_one():
    # lenet's batch of one on 2 cores, passive threads: 0.84 ms on two, 0.16 on one
    counts = threads.AloneCounts(batching.HISTORY_SIZE, team=2)
    assert learn(counts, {1: 160_000, 2: 840_000}) == [1, 2] * threads.TRIALS  # in turns, one thread first
    assert counts.chosen(SHAPE) == 1 and counts.count(SHAPE) == 1
    # one thread a little slower than the team, within the margin: one
    counts = threads.AloneCounts(batching.HISTORY_SIZE, team=2)
    learn(counts, {1: 550_000, 2: 500_000})
    assert counts.chosen(SHAPE) == 1
    # one thread much slower: the team
    counts = threads.AloneCounts(batching.HISTORY_SIZE, team=2)
    learn(counts, {1: 900_000, 2: 500_000})
    assert counts.chosen(SHAPE) == 2 and counts.count(SHAPE) == 2
    # one core: one thread, nothing to learn
    counts = threads.AloneCounts(batching.HISTORY_SIZE, team=1)
    assert counts.count(SHAPE) == 1 and counts.ran(SHAPE, 1, 5) == 5 and counts.chosen(SHAPE) is None


def test_each_count_is_judged_by_its_best_run_and_each_shape_apart():
    counts = threads.AloneCounts(batching.HISTORY_SIZE, team=2)
    other = (((8,),), 1)
    times = iter([160_000, 3_000_000, 9_000_000, 840_000, 170_000, 900_000])  # a slow first team run and a stall
    while counts.chosen(SHAPE) is None:
        count = counts.count(SHAPE)
        counts.ran(SHAPE, count, next(times))
        assert counts.count(other) == 1  # another shape starts its own trials
    assert counts.chosen(SHAPE) == 1 and counts.chosen(other) is None


def test_while_on_trial_the_scheduler_is_told_the_best_run_so_far():
    counts = threads.AloneCounts(batching.HISTORY_SIZE, team=2)
    assert counts.ran(SHAPE, 1, 200_000) == 200_000
    assert counts.ran(SHAPE, 2, 1_500_000) == 200_000  # a slow team run does not move the shape off the loop
    for count, ns in ((1, 300_000), (2, 900_000), (1, 250_000)):
        counts.ran(SHAPE, count, ns)
    assert counts.ran(SHAPE, 2, 800_000) == 200_000  # chosen: one thread, whose best was 0.2 ms


class ThreadsSeen(nn.Module):
    """Identity that records torch's thread count on the thread running it,
    and whether that is the event loop's (main) thread; on the loop it takes
    `seconds_alone[count]`."""

    def __init__(self, seconds_alone: dict[int, float] | None = None):
        super().__init__()
        self.seconds_alone = seconds_alone or {}
        self.seen = []
        self.on_loop = []

    def forward(self, x):
        self.seen.append(torch.get_num_threads())
        self.on_loop.append(threading.current_thread() is threading.main_thread())
        if self.on_loop[-1]:
            time.sleep(self.seconds_alone.get(self.seen[-1], 0))
        return x + 0


@pytest.fixture(autouse=True)
def _count_kept():
    """The event loop's thread is this one: leave its count as it was."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def scheduler_for(module, learn_threads=True) -> Scheduler:
    model = fake_model("t", module, {"x": Info(("N", 4))}, {"y": Info(("N", 4))})
    runtime = Runtime(model, device=CPU, max_batch_size=8)
    return Scheduler(runtime, ThreadPoolExecutor(1), dynamic_batching=True, learn_threads=learn_threads)


@needs_a_team
def test_requests_run_alone_learn_their_count_on_the_loop_and_the_worker_keeps_torchs(monkeypatch):
    monkeypatch.setattr(batching, "INLINE_BELOW_NS", 50_000_000)  # every measured execution counts as tiny
    monkeypatch.setattr(threads, "SINGLE_THREAD_WITHIN", 1e9)  # one thread always wins: the outcome is fixed
    small, later = ThreadsSeen(), ThreadsSeen()
    schedulers = [scheduler_for(small), scheduler_for(later)]

    async def body():
        for _ in range(2 + 2 * threads.TRIALS):
            await schedulers[0].submit([torch.zeros(1, 4)], 1)
        # a batch of three runs on the worker with torch's count, though that
        # worker's thread starts after the loop last set one thread
        await asyncio.gather(*[schedulers[1].submit([torch.zeros(1, 4)], 1) for _ in range(3)])
        for scheduler in schedulers:
            await scheduler.close()

    run(body())
    # the first of a shape runs on the worker; then alone on the loop, in turns, then the count learnt
    assert small.on_loop == [False] + [True] * (1 + 2 * threads.TRIALS)
    assert small.seen == [TEAM] + [1, TEAM] * threads.TRIALS + [1]
    assert later.seen == [TEAM] and later.on_loop == [False]


@needs_a_team
def test_a_slow_trial_on_the_team_does_not_move_a_small_model_off_the_loop():
    # the real bound (1 ms): run alone, 3 ms on the team (as on loaded cores), no time on one thread
    module = ThreadsSeen({TEAM: 0.003})
    scheduler = scheduler_for(module)

    async def body():
        for _ in range(4 + 2 * threads.TRIALS):
            await scheduler.submit([torch.zeros(1, 4)], 1)
        await scheduler.close()

    run(body())
    # the first run is on the worker, and on a loaded host its first runs there may take longer than
    # the bound; once on the loop, the trials (the team's 3 ms among them) keep it there
    first = module.on_loop.index(True)
    assert 1 <= first <= 3 and all(module.on_loop[first:])
    assert module.seen[first:first + 2 * threads.TRIALS] == [1, TEAM] * threads.TRIALS
    assert module.seen[-1] == 1


def test_without_learning_every_execution_runs_on_the_threads_it_finds(monkeypatch):
    monkeypatch.setattr(batching, "INLINE_BELOW_NS", 50_000_000)
    module = ThreadsSeen()
    scheduler = scheduler_for(module, learn_threads=False)

    async def body():
        for _ in range(4):
            await scheduler.submit([torch.zeros(1, 4)], 1)
        await scheduler.close()

    torch.set_num_threads(TEAM)  # what threads start with, and this (the loop's) thread's count
    run(body())
    assert module.seen == [TEAM] * 4
