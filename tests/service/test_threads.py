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


def sleeper(**seconds):
    """A `run` for choose() that takes {f"t{threads}": seconds} on the
    thread count it is called with, recording the counts it ran on."""
    ran = []

    def run():
        ran.append(torch.get_num_threads())
        time.sleep(seconds[f"t{ran[-1]}"])

    return run, ran


ALONE_BELOW = 0.01  # the bound of a request run alone, ten times the server's: sleeps this long are exact enough


def test_a_small_model_runs_on_one_thread_a_large_one_keeps_the_team():
    before = torch.get_num_threads()
    # lenet's batch of one (2 cores, passive threads: 0.84 ms on two, 0.16 on one), ten times as long
    run, ran = sleeper(t2=0.0084, t1=0.0016)
    assert threads.choose(run, 2, ALONE_BELOW) == 1
    # taken in turns, so both counts see the same load: a first run on each, then alternately
    assert ran == [2, 1] + [2, 1] * threads.TIMED_RUNS
    # the same on loaded cores, the team's time past the bound: still one
    run, _ = sleeper(t2=0.03, t1=0.006)
    assert threads.choose(run, 2, ALONE_BELOW) == 1
    # one thread a little slower than the team, within the margin: one
    run, _ = sleeper(t2=0.005, t1=0.0055)
    assert threads.choose(run, 2, ALONE_BELOW) == 1
    # one thread much slower: the team
    run, _ = sleeper(t2=0.005, t1=0.009)
    assert threads.choose(run, 2, ALONE_BELOW) == 2
    # too slow to run alone on any count: the team, after one run
    run, ran = sleeper(t4=0.2)
    assert threads.choose(run, 4, ALONE_BELOW) == 4
    assert ran == [4]
    # one core: nothing to choose, nothing run
    run, ran = sleeper()
    assert threads.choose(run, 1, ALONE_BELOW) == 1
    assert ran == []
    assert torch.get_num_threads() == before  # the calling thread keeps its count


class ThreadsSeen(nn.Module):
    """Identity that records torch's thread count on the thread running it, and the shapes it is given."""

    def __init__(self):
        super().__init__()
        self.seen = []
        self.shapes = []

    def forward(self, x):
        self.seen.append(torch.get_num_threads())
        self.shapes.append(tuple(x.shape))
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


@pytest.mark.skipif(threads.TORCH_DEFAULT < 2, reason="one core: torch has one thread to give")
def test_a_model_is_timed_on_both_counts_at_a_batch_of_one():
    module = ThreadsSeen()
    runtime = runtime_of(module)
    runtime.choose_threads(1.0)
    assert runtime.threads_alone in (1, threads.TORCH_DEFAULT)
    team = threads.TORCH_DEFAULT
    assert module.seen == [team, 1] + [team, 1] * threads.TIMED_RUNS
    assert set(module.shapes) == {(1, 4)}  # a batch of one


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


def test_a_model_with_too_many_multiply_adds_to_run_alone_is_not_timed():
    module = ThreadsSeen()
    runtime = runtime_of(module)
    runtime.macs_per_sample = 10**9  # 10 ms at the most any core does: past the 1 ms bound
    runtime.choose_threads(0.001)
    assert runtime.threads_alone == threads.TORCH_DEFAULT
    assert module.seen == []  # no forward pass at load
