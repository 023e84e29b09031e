"""Threads per operation for a request run alone: the choice from a batch of
one's timings on torch's team and on one thread, its use on the event loop
for each model, and torch's count on the workers (OpenMP keeps the count
per calling thread)."""

from __future__ import annotations

import asyncio
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


def timings(**seconds):
    """forward_s for choose(): {threads: seconds}, recording what was timed."""
    asked = []

    def forward_s(n: int, enough: float) -> float:
        asked.append(n)
        return seconds[f"t{n}"]

    return forward_s, asked


def test_a_small_model_runs_on_one_thread_a_large_one_keeps_the_team():
    alone_below = 0.001  # the scheduler's bound for running a request alone
    # lenet's batch of one, 2 cores, passive threads: 0.84 ms on two, 0.16 on one
    forward_s, asked = timings(t2=0.00084, t1=0.00016)
    assert threads.choose(forward_s, 2, alone_below) == 1
    # the same on loaded cores, the team's time past the bound: still one
    forward_s, asked = timings(t2=0.003, t1=0.0006)
    assert threads.choose(forward_s, 2, alone_below) == 1
    # one thread a little slower than the team, within the margin: one
    forward_s, _ = timings(t2=0.0005, t1=0.0006)
    assert threads.choose(forward_s, 2, alone_below) == 1
    # one thread much slower: the team
    forward_s, _ = timings(t2=0.0005, t1=0.0009)
    assert threads.choose(forward_s, 2, alone_below) == 2
    # too slow to run alone on any count: the team, and one thread never timed
    forward_s, asked = timings(t4=0.02)
    assert threads.choose(forward_s, 4, alone_below) == 4
    assert asked == [4]
    # one core: nothing to choose, nothing timed
    forward_s, asked = timings()
    assert threads.choose(forward_s, 1, alone_below) == 1
    assert asked == []


def test_the_timer_leaves_the_calling_thread_as_it_was():
    before = torch.get_num_threads()
    seen = []
    forward_s = threads.timer(lambda: seen.append(torch.get_num_threads()))
    assert forward_s(1, 1.0) >= 0
    assert seen == [1] * (1 + threads.TIMED_RUNS)  # a first run, then the timed ones
    assert torch.get_num_threads() == before


def test_the_timer_stops_once_a_run_is_past_enough():
    runs = []

    def slow():
        runs.append(1)
        time.sleep(0.02)

    assert threads.timer(slow)(1, 0.01) >= 0.02
    assert len(runs) == 2  # the first run is not timed; the next is past enough
    runs.clear()
    assert threads.timer(slow)(1, 0.03) >= 0.02
    assert len(runs) == 1 + threads.TIMED_RUNS


def test_a_first_run_far_too_slow_to_run_alone_ends_the_timing(monkeypatch):
    monkeypatch.setattr(threads, "FIRST_RUN_ENOUGH_S", 0.01)
    runs = []

    def slow():
        runs.append(1)
        time.sleep(0.02)

    assert threads.timer(slow)(1, 0.001) >= 0.02
    assert len(runs) == 1


class ThreadsSeen(nn.Module):
    """Identity that records torch's thread count on the thread running it."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(torch.get_num_threads())
        return x + 0


def runtime_of(module, shape=("N", 4)) -> Runtime:
    model = fake_model("t", module, {"x": Info(shape)}, {"y": Info(shape)})
    return Runtime(model, device=CPU, max_batch_size=8)


@pytest.mark.skipif(threads.TORCH_DEFAULT < 2, reason="one core: torch has one thread to give")
def test_requests_run_alone_use_their_models_count_and_the_worker_torchs(monkeypatch):
    monkeypatch.setattr(batching, "INLINE_BELOW_NS", 50_000_000)  # every measured execution counts as tiny
    small, large, later = ThreadsSeen(), ThreadsSeen(), ThreadsSeen()
    schedulers = []
    for module, alone in ((large, threads.TORCH_DEFAULT), (small, 1), (later, 1)):  # small last on the loop
        runtime = runtime_of(module)
        runtime.threads_alone = alone
        schedulers.append(Scheduler(runtime, ThreadPoolExecutor(1), dynamic_batching=True))

    async def body():
        for _ in range(3):  # alternating on one event loop: each model's own count
            for scheduler in schedulers[:2]:
                await scheduler.submit([torch.zeros(1, 4)], 1)
        # a batch of three runs on the worker with torch's count, though that
        # worker's thread starts after the loop set one
        await asyncio.gather(*[schedulers[2].submit([torch.zeros(1, 4)], 1) for _ in range(3)])
        for scheduler in schedulers:
            await scheduler.close()

    run(body())
    team = threads.TORCH_DEFAULT
    # the first of each shape runs on the worker, the next alone on the loop
    assert small.seen == [team, 1, 1]
    assert large.seen == [team, team, team]
    assert later.seen == [team]


def test_a_model_is_timed_at_a_batch_of_one_and_keeps_the_chosen_count(monkeypatch):
    timed = []
    monkeypatch.setattr(threads, "choose", lambda forward_s, default, below: timed.append(forward_s(1, 1.0)) or 1)
    module = ThreadsSeen()
    runtime = runtime_of(module)
    runtime.choose_threads(1.0)
    assert runtime.threads_alone == 1 and timed[0] > 0
    assert module.seen == [1] * (1 + threads.TIMED_RUNS)  # an untimed run, then the timed ones


class FailsOnZeros(nn.Module):
    def forward(self, x):
        if not x.any():
            raise ValueError("zeros are not an input of this model")
        return x


@pytest.mark.parametrize("module, shape", [(ThreadsSeen(), ("N", "T")), (FailsOnZeros(), ("N", 4))],
                         ids=["inputs of variable size", "fails on zeros"])
def test_a_model_that_cannot_be_timed_keeps_torchs_count(module, shape):
    runtime = runtime_of(module, shape)
    runtime.choose_threads(1.0)
    assert runtime.threads_alone == threads.TORCH_DEFAULT
    outputs, _ = runtime.run([torch.ones(1, 4)])
    assert torch.equal(outputs[0], torch.ones(1, 4))


def test_a_model_on_another_device_is_left_to_torch():
    runtime = runtime_of(ThreadsSeen())
    runtime.device = torch.device("meta")  # choose_threads reads only the device's type
    runtime.choose_threads(1.0)
    assert runtime.threads_alone is None
