"""Calls in flight and draining at shutdown.

gRPC's own `server.stop(grace)` cancels calls the core has taken in but not
yet handed to a handler, so under load a share of the calls clients sent
before SIGTERM end CANCELLED. Instead the server drains first: new calls
are answered UNAVAILABLE, while the calls already accepted run to the end
(up to the grace period); only then is the gRPC server stopped, with
nothing left to cancel.

A call sent just before the signal may still sit in the transport when it
comes, and no handler can tell it from one sent just after. So for the
first ADMIT_WINDOW_S after the signal calls are still accepted (health says
NOT_SERVING from the first instant): measured with 32 clients on one
connection, about a third of the calls in flight at the signal were still
in the transport, and the event loop hands them over within milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from service.errors import ShuttingDown

ADMIT_WINDOW_S = 0.1
QUIET_S = 0.1


class Lifecycle:
    def __init__(self):
        self.in_flight = 0
        self.stopping = asyncio.Event()  # set at the signal: not ready any more
        self.draining = asyncio.Event()  # set after the admission window: new calls refused
        self._idle = asyncio.Event()
        self._idle.set()
        self.last_seen = 0.0

    @contextlib.contextmanager
    def call(self):
        """The length of one accepted call; refused with ShuttingDown once draining."""
        if self.draining.is_set():
            self.last_seen = time.monotonic()
            raise ShuttingDown("the server is shutting down and takes no new calls; retry on another server")
        self.in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.in_flight -= 1
            if self.draining.is_set():
                self.last_seen = time.monotonic()  # its client may send the next call at once
            if self.in_flight == 0:
                self._idle.set()

    async def drain(self, grace_s: float) -> bool:
        """Refuse new calls (after the admission window) and wait up to
        `grace_s` for the accepted ones; True if they all finished."""
        self.stopping.set()
        await asyncio.sleep(min(ADMIT_WINDOW_S, grace_s))
        self.draining.set()
        self.last_seen = time.monotonic()  # settle() waits a quiet period from here at least
        try:
            await asyncio.wait_for(self._idle.wait(), max(0.0, grace_s - ADMIT_WINDOW_S))
        except asyncio.TimeoutError:
            return False
        return True

    async def settle(self, quiet_s: float = QUIET_S, most_s: float = 1.0) -> None:
        """After draining, wait until no call has ended or been refused for
        `quiet_s` (at most `most_s`): gRPC's stop cancels calls that arrive
        while it stops, so clients still sending are told UNAVAILABLE first."""
        deadline = time.monotonic() + most_s
        while time.monotonic() < deadline and time.monotonic() - self.last_seen < quiet_s:
            await asyncio.sleep(quiet_s / 2)
