"""The per-model scheduler: requests queue here and run on the model's worker
thread, one execution at a time.

With dynamic batching, requests that arrive while the model is busy queue up,
and when it frees they run together as one execution (up to max_batch_size
samples), split back afterwards. A request that finds the model idle is held
for at most max_queue_delay, as Triton's batcher does, so that others can
join it; with a delay of 0 (Triton's default, and netspec's) it runs at once,
and the batch size follows the load: 1 when requests come one at a time,
larger as they come faster than the model serves them. docs/serving.md
measures both.

Requests are only batched together when every input has the same shape past
the batch dimension (and so the same dtype, which the model fixes); others
wait for the next execution.

An execution of a single request that measured history says is tiny (under
INLINE_BELOW_NS for the same shapes and batch size), while no other request
waits, runs on the event loop itself: handing it to the worker thread and
back costs two thread wake-ups and GIL hand-overs, more than a small model's
batch of one takes. Any other runs on the worker thread, and so does the
first of each shape: a slow model never stalls the loop, and while the model
runs the loop decodes and answers other calls. Requests run alone use the
threads per operation learnt from the first of them (service/threads.py:
one, for a small model), the worker torch's own count. A batch of several requests
means calls come faster than the model serves them, so it always runs on the
worker: run inline, it would leave the loop unable to take the next batch's
requests while it runs (lenet at 32 concurrent clients, on one torch thread,
2 cores: 1,190-1,243 infer/s inline, 1,765-1,877 on the worker).
A request run on the loop still passes through the queue and the
scheduler's task rather than run straight from submit: that shortcut saved
30-40 us of the loop's time a request in process but served no faster
(ONNX Runtime lenet, 8 and 32 clients, five rounds each), and with every
request run as it came, torch's batches stopped forming (lenet, 32
clients, one thread: 2.4-3.0 samples an execution fell to 1.0-1.2, and
1,101-1,532 infer/s to 1,089-1,384).

A request can only fail itself: what can be checked is checked before it is
queued (service/runtime.py), and if an execution of several requests still
raises, each runs again alone, so only the one the model cannot take gets
the error. A model's error is logged once per distinct cause.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field

import torch

from service import threads
from service.errors import ExecutionError, ResourceExhausted
from service.runtime import Runtime, Timings

log = logging.getLogger("netspec.serve")

MAX_LOGGED_CAUSES = 100  # distinct errors logged per model; the rest are only counted
# Executions measured shorter than this run on the event loop when no other
# request waits. Long enough for a small model's batch of one on a loaded
# 2-core CPU (lenet: 0.15 ms idle, about 1 ms on shared cores),
# short enough that a request of another model that arrives meanwhile is
# held up at most this long before it is decoded.
INLINE_BELOW_NS = 1_000_000
# (shapes, samples) pairs whose last duration (and threads learnt for running
# alone) is kept: clients choose the shapes of symbolic dimensions, so the
# history is bounded.
HISTORY_SIZE = 256


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
        max_queue_delay_s: float = 0.0,
        on_execution=None,
        learn_threads: bool = False,
    ):
        """`learn_threads`: learn the threads per operation of requests run
        alone (service/threads.py); otherwise every execution runs on the
        threads torch has."""
        self.runtime = runtime
        self.executor = executor
        self.batching = dynamic_batching and runtime.batchable
        self.max_batch = runtime.max_batch_size if self.batching else 0
        self.max_delay_s = max_queue_delay_s if self.batching else 0.0
        self.on_execution = on_execution  # callback(batch_size, Timings)
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._carry: collections.deque[_Pending] = collections.deque()
        self._task: asyncio.Task | None = None
        self.waiting = 0  # requests submitted and not yet handed to an execution
        self._causes: collections.Counter[tuple[str, str]] = collections.Counter()  # one execution at a time
        self._took_ns: dict[tuple, int] = {}  # (shapes, samples) -> how long its last execution took
        self._alone = threads.AloneCounts(HISTORY_SIZE) if learn_threads else None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"scheduler:{self.runtime.name}")

    async def submit(self, inputs: list[torch.Tensor], batch: int) -> Result:
        self.start()
        pending = _Pending(inputs, batch, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(pending)  # unbounded: never waits
        self.waiting += 1
        return await pending.future

    async def close(self) -> None:
        """Stop after the queued requests have run."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
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
                if self.max_delay_s > 0 and not closing:
                    closing = await self._hold(group)
            self.waiting -= len(group)
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
        size = sum(p.batch for p in group)
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

    async def _hold(self, group: list[_Pending]) -> bool:
        """Wait for compatible requests until the batch is full or its oldest
        request has waited max_queue_delay. A waiting request that cannot
        join (another shape, or too many samples) ends the hold, so it is not
        kept waiting longer than the delay either. Returns True if the close
        marker came: shutdown runs what is queued at once."""
        deadline = group[0].enqueued_ns + int(self.max_delay_s * 1e9)
        while sum(p.batch for p in group) < self.max_batch and not self._carry:
            left_s = (deadline - time.perf_counter_ns()) / 1e9
            if left_s <= 0:
                break
            try:
                arrived = await asyncio.wait_for(self._queue.get(), left_s)
            except asyncio.TimeoutError:
                break
            self._carry.append(arrived)  # _gather takes it (and whatever came with it) or leaves it first in line
            if self._gather(group):
                return True
        return False

    async def _execute(self, group: list[_Pending]) -> None:
        if not group:
            return
        started = time.perf_counter_ns()
        shape = (group[0].key, sum(p.batch for p in group))
        try:
            if len(group) == 1 and self._queue.empty() and not self._carry \
                    and self._took_ns.get(shape, INLINE_BELOW_NS) < INLINE_BELOW_NS:
                count = self._alone.count(shape) if self._alone is not None else None
                threads.use(count)
                results, executions = self._timed_run_group(group, shape)
                if self._alone is not None:
                    self._learn_alone(shape, count)
            else:
                loop = asyncio.get_running_loop()
                results, executions = await loop.run_in_executor(self.executor, self._on_worker, group, shape)
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request
            for p in group:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        if self.on_execution is not None:
            for batch_size, timings in executions:
                self.on_execution(batch_size, timings)
        for p, result in zip(group, results):
            if p.future.done():
                continue
            if isinstance(result, BaseException):
                p.future.set_exception(result)
            else:
                outputs, timings = result
                p.future.set_result(Result(outputs, started - p.enqueued_ns, timings))

    def _learn_alone(self, shape: tuple, count: int) -> None:
        on_trial = self._alone.chosen(shape) is None
        self._took_ns[shape] = self._alone.ran(shape, count, self._took_ns[shape])
        if on_trial and (learnt := self._alone.chosen(shape)) is not None:
            log.debug("model '%s': requests of shape %s run alone use %d thread(s) per operation",
                      self.runtime.name, shape, learnt)

    def _on_worker(self, group: list[_Pending], shape: tuple):
        if self._alone is not None:
            # torch's own count: a thread starts with the count last set anywhere,
            # which may be the one for requests run alone
            threads.use(threads.TORCH_DEFAULT)
        return self._timed_run_group(group, shape)

    def _timed_run_group(self, group: list[_Pending], shape: tuple):
        started = time.perf_counter_ns()
        outcome = self._run_group(group)
        if len(self._took_ns) >= HISTORY_SIZE and shape not in self._took_ns:
            self._took_ns.clear()
        self._took_ns[shape] = time.perf_counter_ns() - started
        return outcome

    def _run_group(self, group: list[_Pending]):
        """Concatenate, run once, split back; if that raises
        and there were several requests, run each alone. Returns one
        (outputs, timings) or error per request, and (batch size, timings)
        per execution."""
        try:
            if len(group) == 1:
                outputs, timings = self.runtime.run(group[0].inputs)
                return [(outputs, timings)], [(group[0].batch, timings)]
            n_inputs = len(group[0].inputs)
            inputs = [torch.cat([p.inputs[k] for p in group]) for k in range(n_inputs)]
            outputs, timings = self.runtime.run(inputs)
        except Exception as exc:  # noqa: BLE001 - the model raised: which request made it is found below
            if len(group) == 1:
                return [self._failure(exc)], []
            failed = True
        else:
            failed = False
        if failed:  # outside the except block, so the errors found alone are not chained to this one
            return self._run_each(group)
        sizes = [p.batch for p in group]
        split = [torch.split(y, sizes) for y in outputs]
        return [([s[k] for s in split], timings) for k in range(len(group))], [(sum(sizes), timings)]

    def _run_each(self, group: list[_Pending]):
        log.debug("model '%s': an execution of %d requests raised; running each alone", self.runtime.name, len(group))
        results, executions = [], []
        for p in group:
            try:
                outputs, timings = self.runtime.run(p.inputs)
            except Exception as exc:  # noqa: BLE001 - this request's own error
                results.append(self._failure(exc))
                continue
            results.append((outputs, timings))
            executions.append((p.batch, timings))
        return results, executions

    def _failure(self, exc: Exception) -> Exception:
        """The error a request that made the model raise gets. The model's own
        message (its first line, cut) tells the client what was wrong; the
        traceback goes to the log once per distinct cause."""
        name = self.runtime.name
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        cause = (type(exc).__name__, first)
        self._causes[cause] += 1
        if self._causes[cause] == 1 and len(self._causes) <= MAX_LOGGED_CAUSES:
            log.error("model '%s' failed on a request (each cause is logged once): %s", name, first, exc_info=exc)
        if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
            error: Exception = ResourceExhausted(f"model '{name}' ran out of memory on this request; send fewer samples")
        else:
            error = ExecutionError(f"model '{name}' cannot run on this request: {first or 'the model raised an error'}")
        error.__cause__ = exc
        return error
