"""The per-model scheduler: requests queue here and run on the model's worker
thread, one execution at a time.

With dynamic batching the policy is work-conserving: a request that finds the
model idle runs at once, alone (nobody else is being served, so waiting could
only add latency); requests that arrive while the model is busy queue up, and
when it frees they run together as one execution (up to max_batch_size
samples), split back afterwards. The batch size thus follows the load: 1 when
requests come one at a time, larger as they come faster than the model
serves them. No request is ever held on a timer, so max_queue_delay is not
used here (docs/serving.md compares this with Triton's batcher).

Requests are only batched together when every input has the same shape past
the batch dimension (and so the same dtype, which the model fixes); others
wait for the next execution.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field

import torch

from service.runtime import Runtime, Timings

log = logging.getLogger("netspec.serve")


@dataclass
class Result:
    outputs: list[torch.Tensor]  # in model output order
    queue_ns: int
    timings: Timings


@dataclass
class _Pending:
    inputs: list[torch.Tensor]
    batch: int
    future: asyncio.Future
    key: tuple = field(init=False)
    enqueued_ns: int = field(default_factory=time.perf_counter_ns)

    def __post_init__(self):
        self.key = tuple(tuple(x.shape[1:]) for x in self.inputs)


class Scheduler:
    def __init__(
        self,
        runtime: Runtime,
        executor: Executor,
        *,
        dynamic_batching: bool,
        on_execution=None,
    ):
        self.runtime = runtime
        self.executor = executor
        self.batching = dynamic_batching and runtime.batchable
        self.max_batch = runtime.max_batch_size if self.batching else 0
        self.on_execution = on_execution  # callback(batch_size, Timings)
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._carry: collections.deque[_Pending] = collections.deque()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"scheduler:{self.runtime.name}")

    async def submit(self, inputs: list[torch.Tensor], batch: int) -> Result:
        self.start()
        pending = _Pending(inputs, batch, asyncio.get_running_loop().create_future())
        await self._queue.put(pending)
        return await pending.future

    async def close(self) -> None:
        """Stop after the queued requests have run."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None

    async def _next(self) -> _Pending | None:
        if self._carry:
            return self._carry.popleft()
        return await self._queue.get()

    async def _loop(self) -> None:
        closing = False
        while not closing or self._carry:
            first = await self._next()  # the model is idle: the first request to come runs at once
            if first is None:
                closing = True
                continue
            group = [first]
            if self.batching:
                closing = self._gather(group) or closing
            try:
                # The model is busy: requests arriving now queue for the next execution.
                await self._execute([p for p in group if not p.future.cancelled()])
            except Exception:  # noqa: BLE001 - a bug here must not stop the model's queue
                log.exception("scheduler of model '%s' failed on a batch", self.runtime.name)
                for p in group:
                    if not p.future.done():
                        p.future.set_exception(RuntimeError("scheduler failure"))

    def _gather(self, group: list[_Pending]) -> bool:
        """Add the compatible requests already queued to `group`, up to
        max_batch_size samples, without waiting for more; returns True if the
        close marker was seen."""
        size = group[0].batch
        skipped = []
        closing = False
        while size < self.max_batch and (self._carry or not self._queue.empty()):
            nxt = self._carry.popleft() if self._carry else self._queue.get_nowait()
            if nxt is None:
                closing = True
                break
            if nxt.key == group[0].key and size + nxt.batch <= self.max_batch:
                group.append(nxt)
                size += nxt.batch
            else:
                skipped.append(nxt)
                if nxt.key == group[0].key:
                    break  # full: the rest waits for the next execution
        self._carry.extendleft(reversed(skipped))
        return closing

    async def _execute(self, group: list[_Pending]) -> None:
        if not group:
            return
        loop = asyncio.get_running_loop()
        started = time.perf_counter_ns()
        try:
            outputs, timings = await loop.run_in_executor(self.executor, self._run_group, group)
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request
            for p in group:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        if self.on_execution is not None:
            self.on_execution(sum(p.batch for p in group), timings)
        for p, outs in zip(group, outputs):
            if not p.future.done():
                p.future.set_result(Result(outs, started - p.enqueued_ns, timings))

    def _run_group(self, group: list[_Pending]) -> tuple[list[list[torch.Tensor]], Timings]:
        """Worker thread: concatenate, run once, split back."""
        if len(group) == 1:
            outputs, timings = self.runtime.run(group[0].inputs)
            return [outputs], timings
        n_inputs = len(group[0].inputs)
        inputs = [torch.cat([p.inputs[k] for p in group]) for k in range(n_inputs)]
        outputs, timings = self.runtime.run(inputs)
        sizes = [p.batch for p in group]
        split = [torch.split(y, sizes) for y in outputs]
        return [[s[k] for s in split] for k in range(len(group))], timings
