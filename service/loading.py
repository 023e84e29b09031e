"""Running model loads: each in a thread of its own, at most a few at once,
as many at once as free memory allows, and each within a time limit.

A load that passes its limit is abandoned, not waited for: the model is
reported as failed, its lock is freed, and the thread (a daemon, so it never
holds up the process's exit) finishes in the background, its result
discarded. Python cannot stop a thread; the compiler's own bounds on what
reading a spec may cost (compiler.frontend.load, compiler.frontend.expr, compiler.frontend.expand) keep
such a thread from running long.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable


class LoadTimeout(Exception):
    """A load did not finish within its time limit."""


def available_memory() -> int | None:
    """Bytes the kernel says can be allocated without swapping (Linux), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class _MemoryGate:
    """Loads start together while the memory they are expected to take fits
    in what is free; a load that fits nowhere runs once nothing else loads."""

    def __init__(self):
        self.reserved = 0
        self._changed = asyncio.Condition()

    def _fits(self, need: int) -> bool:
        free = available_memory()
        return self.reserved == 0 or free is None or self.reserved + need <= free

    @contextlib.asynccontextmanager
    async def reserve(self, need: int):
        async with self._changed:
            await self._changed.wait_for(lambda: self._fits(need))
            self.reserved += need
        try:
            yield
        finally:
            async with self._changed:
                self.reserved -= need
                self._changed.notify_all()


class LoadRunner:
    def __init__(self, timeout_s: float, threads: int):
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(max(1, threads))
        self._memory = _MemoryGate()

    async def run(self, name: str, need_bytes: int, work: Callable[[], None],
                  abandoned: Callable[[], None]) -> None:
        """Run `work()` in a new thread; raise what it raises, or LoadTimeout.
        If the caller stops waiting (timeout, cancellation), `abandoned()` is
        called at once, and again in the thread if `work` completes later."""
        async with self._slots, self._memory.reserve(need_bytes):
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            gave_up = threading.Event()

            def thread() -> None:
                try:
                    work()
                    outcome = None
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutine
                    outcome = exc
                if gave_up.is_set():
                    abandoned()  # nobody waits for it any more: free what it made
                    return
                with contextlib.suppress(RuntimeError):  # the event loop closed meanwhile
                    loop.call_soon_threadsafe(_settle, done, outcome)

            threading.Thread(target=thread, name=f"netspec-load-{name}", daemon=True).start()
            try:
                await asyncio.wait_for(asyncio.shield(done), self.timeout_s)
            except asyncio.TimeoutError:
                gave_up.set()
                abandoned()
                raise LoadTimeout(f"did not load within {self.timeout_s:g} s (--model-load-timeout)") from None
            except asyncio.CancelledError:
                gave_up.set()
                abandoned()
                raise


def _settle(future: asyncio.Future, outcome: BaseException | None) -> None:
    if future.done():
        return
    if outcome is None:
        future.set_result(None)
    else:
        future.set_exception(outcome)
