"""The scheduler alone: gathering, splitting, limits, shape grouping."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from service import batching
from service.batching import Scheduler
from service.errors import ExecutionError
from service.runtime import Runtime
from service_fakes import fake_model, Info, make_model, run


class Recording(torch.nn.Module):
    """Adds one and records the batch size of every execution."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def forward(self, x):
        self.batches.append(x.shape[0])
        return x + 1


class Gated(Recording):
    """Records the batch size, then blocks until the test opens the gate: the
    test decides how long the model stays busy."""

    def __init__(self):
        super().__init__()
        self.started = threading.Semaphore(0)  # released once per execution
        self.gate = threading.Event()

    def forward(self, x):
        self.batches.append(x.shape[0])
        self.started.release()
        if not self.gate.wait(10):
            raise RuntimeError("the test never opened the gate")
        return x + 1


def scheduler_for(model, *, max_batch_size=8, batching=True, delay_s=0.0):
    runtime = Runtime(model, device=torch.device("cpu"), max_batch_size=max_batch_size)
    return Scheduler(runtime, ThreadPoolExecutor(1), dynamic_batching=batching, max_queue_delay_s=delay_s)


def recording_model():
    return fake_model("rec", Recording(), {"x": Info(("N", "T"))}, {"y": Info(("N", "T"))})


def test_concurrent_requests_run_as_one_batch_and_split_back():
    model = recording_model()

    async def body():
        scheduler = scheduler_for(model)
        xs = [torch.full((1 + k % 2, 3), float(k)) for k in range(5)]  # 7 samples <= 8
        results = await asyncio.gather(*[scheduler.submit([x], x.shape[0]) for x in xs])
        await scheduler.close()
        for x, result in zip(xs, results):
            assert torch.equal(result.outputs[0], x + 1)
        return model.module.batches

    assert run(body()) == [7]


def test_batches_respect_max_batch_size():
    model = recording_model()

    async def body():
        scheduler = scheduler_for(model, max_batch_size=4)
        xs = [torch.zeros(1, 2) for _ in range(10)]
        await asyncio.gather(*[scheduler.submit([x], 1) for x in xs])
        await scheduler.close()

    run(body())
    assert sum(model.module.batches) == 10 and max(model.module.batches) <= 4


def test_different_shapes_are_not_mixed():
    model = recording_model()

    async def body():
        scheduler = scheduler_for(model)
        xs = [torch.zeros(1, 2), torch.zeros(1, 5), torch.zeros(1, 2), torch.zeros(1, 5)]
        results = await asyncio.gather(*[scheduler.submit([x], 1) for x in xs])
        await scheduler.close()
        assert [tuple(r.outputs[0].shape) for r in results] == [(1, 2), (1, 5), (1, 2), (1, 5)]

    run(body())
    assert sorted(model.module.batches) == [2, 2]


def test_without_dynamic_batching_each_request_runs_alone():
    model = recording_model()

    async def body():
        scheduler = scheduler_for(model, batching=False)
        await asyncio.gather(*[scheduler.submit([torch.zeros(2, 2)], 2) for _ in range(3)])
        await scheduler.close()

    run(body())
    assert model.module.batches == [2, 2, 2]


def test_multiple_outputs_are_split_per_request():
    async def body():
        scheduler = scheduler_for(make_model("twoheads"))
        xs = [torch.randn(k + 1, 4) for k in range(3)]
        results = await asyncio.gather(*[scheduler.submit([x], x.shape[0]) for x in xs])
        await scheduler.close()
        module = make_model("twoheads").module
        for x, result in zip(xs, results):
            y, total = module(x)
            torch.testing.assert_close(result.outputs[0], y)
            torch.testing.assert_close(result.outputs[1], total)

    run(body())


class FailsOnNegative(Recording):
    """Adds one, unless a sample is negative: then the whole execution raises,
    as a model does on a value it cannot take."""

    def forward(self, x):
        self.batches.append(x.shape[0])
        if (x < 0).any():
            raise IndexError("index -1 is out of range")
        return x + 1


def test_a_failing_batch_runs_again_one_by_one_and_only_the_culprit_fails():
    model = fake_model("f", FailsOnNegative(), {"x": Info(("N", 1))}, {"y": Info(("N", 1))})
    executions = []

    async def body():
        runtime = Runtime(model, device=torch.device("cpu"), max_batch_size=8)
        scheduler = Scheduler(runtime, ThreadPoolExecutor(1), dynamic_batching=True,
                              on_execution=lambda size, timings: executions.append(size))
        xs = [torch.full((1, 1), float(v)) for v in (1, 2, -1, 3)]
        results = await asyncio.gather(*[scheduler.submit([x], 1) for x in xs], return_exceptions=True)
        await scheduler.close()
        return xs, results

    xs, results = run(body())
    assert model.module.batches[0] == 4  # they ran together first
    for x, result in zip(xs, results):
        if x.item() < 0:
            assert isinstance(result, ExecutionError)
            assert str(result) == "model 'f' cannot run on this request: index -1 is out of range"
        else:
            torch.testing.assert_close(result.outputs[0], x + 1)
    assert executions == [1, 1, 1]  # the three that ran alone; the failed batch is not an execution


def test_an_execution_error_reaches_every_request_of_the_batch():
    class Fails(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    async def body():
        scheduler = scheduler_for(fake_model("f", Fails(), {"x": Info(("N", 1))}, {"y": Info(("N", 1))}))
        results = await asyncio.gather(*[scheduler.submit([torch.zeros(1, 1)], 1) for _ in range(3)],
                                       return_exceptions=True)
        await scheduler.close()
        assert all(isinstance(r, ExecutionError) and "boom" in str(r) for r in results)
        # and the scheduler still serves
        scheduler2 = scheduler_for(make_model("twoheads"))
        assert (await scheduler2.submit([torch.zeros(1, 4)], 1)).outputs[1].shape == (1, 1)
        await scheduler2.close()

    run(body())


def test_all_requests_queued_before_the_first_execution_run_as_one_batch():
    model = recording_model()

    async def body():
        scheduler = scheduler_for(model)
        await asyncio.gather(*[scheduler.submit([torch.zeros(1, 2)], 1) for _ in range(6)])
        await scheduler.close()

    run(body())
    # All six are queued before the scheduler first runs: one execution.
    assert model.module.batches == [6]


def test_idle_model_runs_a_request_at_once_and_batches_those_that_arrive_while_busy():
    model = fake_model("gated", Gated(), {"x": Info(("N", 2))}, {"y": Info(("N", 2))})
    gated = model.module

    async def body():
        scheduler = scheduler_for(model)
        # Idle model: the lone request is dispatched without waiting for company,
        # so requests sent a little later cannot join it.
        first = asyncio.create_task(scheduler.submit([torch.zeros(1, 2)], 1))
        await asyncio.sleep(0.01)
        # Busy model (the first request holds it): these queue up, and must
        # all run together once it frees.
        xs = [torch.full((1 + k % 2, 2), float(k)) for k in range(1, 5)]  # 6 samples
        rest = [asyncio.create_task(scheduler.submit([x], x.shape[0])) for x in xs]
        assert await asyncio.to_thread(gated.started.acquire, True, 5), "the model did not start"
        await asyncio.sleep(0.05)  # let every submit reach the queue
        assert gated.batches == [1]
        gated.gate.set()
        results = await asyncio.gather(first, *rest)
        await scheduler.close()
        for x, result in zip([torch.zeros(1, 2)] + xs, results):
            assert torch.equal(result.outputs[0], x + 1)

    run(body())
    assert gated.batches == [1, 6]


def test_a_queue_delay_holds_an_idle_models_request_for_company():
    model = recording_model()

    async def body():
        scheduler = scheduler_for(model, delay_s=1.0)
        start = time.perf_counter()
        first = asyncio.create_task(scheduler.submit([torch.zeros(1, 2)], 1))
        await asyncio.sleep(0.05)  # the model is idle, but the first request waits
        rest = [asyncio.create_task(scheduler.submit([torch.ones(k, 2)], k)) for k in (1, 2)]
        await asyncio.gather(first, *rest)
        held = time.perf_counter() - start
        await scheduler.close()
        return held

    held = run(body())
    assert model.module.batches == [4]
    assert held >= 1.0  # the batch never filled (4 < 8): it left when the first had waited the delay


def test_a_full_batch_does_not_wait_out_the_delay():
    model = recording_model()

    async def body():
        scheduler = scheduler_for(model, max_batch_size=3, delay_s=30.0)
        start = time.perf_counter()
        await asyncio.gather(*[scheduler.submit([torch.zeros(1, 2)], 1) for _ in range(3)])
        elapsed = time.perf_counter() - start
        await scheduler.close()
        return elapsed

    assert run(body()) < 10.0
    assert model.module.batches == [3]


def test_a_request_that_cannot_join_ends_the_hold():
    model = recording_model()

    async def body():
        scheduler = scheduler_for(model, delay_s=2.0)
        start = time.perf_counter()
        first = asyncio.create_task(scheduler.submit([torch.zeros(1, 2)], 1))
        await asyncio.sleep(0.05)
        other = asyncio.create_task(scheduler.submit([torch.zeros(1, 5)], 1))  # another shape
        await first
        first_done = time.perf_counter() - start
        await other  # alone in turn, held for company up to its own delay
        other_done = time.perf_counter() - start
        await scheduler.close()
        return first_done, other_done

    first_done, other_done = run(body())
    assert first_done < 1.5  # not held for the whole delay: someone else was waiting
    assert other_done >= 2.0
    assert model.module.batches == [1, 1]


class OnWhichThread(torch.nn.Module):
    """Adds one, after `seconds`, and records whether it ran on the event loop's (main) thread."""

    def __init__(self, seconds: float = 0.0):
        super().__init__()
        self.seconds = seconds
        self.on_loop = []

    def forward(self, x):
        self.on_loop.append(threading.current_thread() is threading.main_thread())
        time.sleep(self.seconds)
        return x + 1


def test_executions_measured_tiny_run_on_the_event_loop_and_others_on_the_worker(monkeypatch):
    # A wide threshold, and a slow model far past it, so a busy machine's
    # pauses cannot move an execution across it.
    monkeypatch.setattr(batching, "INLINE_BELOW_NS", 50_000_000)
    fast, slow = OnWhichThread(), OnWhichThread(0.15)

    async def body(module):
        scheduler = scheduler_for(fake_model("t", module, {"x": Info(("N", "T"))}, {"y": Info(("N", "T"))}))
        for width in (2, 2, 2, 3, 3):  # a new shape starts on the worker again
            result = await scheduler.submit([torch.zeros(1, width)], 1)
            assert torch.equal(result.outputs[0], torch.ones(1, width))
        await scheduler.close()

    run(body(fast))
    run(body(slow))
    assert fast.on_loop == [False, True, True, False, True]
    assert slow.on_loop == [False] * 5


def test_while_requests_wait_even_a_tiny_execution_runs_on_the_worker(monkeypatch):
    monkeypatch.setattr(batching, "INLINE_BELOW_NS", 50_000_000)
    module = OnWhichThread()

    async def body():
        scheduler = scheduler_for(fake_model("t", module, {"x": Info(("N", 2))}, {"y": Info(("N", 2))}),
                                  batching=False)
        await scheduler.submit([torch.zeros(1, 2)], 1)  # measured: tiny
        await asyncio.gather(*[scheduler.submit([torch.zeros(1, 2)], 1) for _ in range(3)])
        await scheduler.close()

    run(body())
    # The three came together: the first two ran while others waited, the last alone.
    assert module.on_loop == [False, False, False, True]


def test_a_batch_of_several_requests_runs_on_the_worker_however_tiny(monkeypatch):
    # Requests that batch come faster than the model serves them: the loop
    # must stay free to take the next ones while the batch runs.
    monkeypatch.setattr(batching, "INLINE_BELOW_NS", 50_000_000)
    module = OnWhichThread()

    async def body():
        scheduler = scheduler_for(fake_model("t", module, {"x": Info(("N", 2))}, {"y": Info(("N", 2))}))
        for _ in range(2):  # the second time, a batch of three is measured tiny
            results = await asyncio.gather(*[scheduler.submit([torch.zeros(1, 2)], 1) for _ in range(3)])
            assert all(torch.equal(r.outputs[0], torch.ones(1, 2)) for r in results)
        await scheduler.submit([torch.zeros(1, 2)], 1)  # one request, unmeasured: the worker
        await scheduler.submit([torch.zeros(1, 2)], 1)  # measured tiny, alone: the loop
        await scheduler.close()

    run(body())
    assert module.on_loop == [False, False, False, True]
