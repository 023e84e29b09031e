"""`netspec serve --workers K`: K server processes on one port.

The pattern of grpc's multiprocessing example: the parent reserves the port
(service/reuseport.py) and forks the workers before any gRPC server or
channel exists, and each worker runs a whole server of its own (serve():
its own models, batching, health and readiness, draining at shutdown)
bound with SO_REUSEPORT. The kernel spreads new connections over the
workers listening; a connection, and every call on it, stays with the
worker it reached.

The parent imports neither grpc nor torch: gRPC's core and torch's thread
pools must not exist before a fork, and each worker imports them itself.

- Readiness: a worker binds the port only once its models have loaded (or
  failed), so no connection reaches a worker still loading; the parent
  prints the ready line once every worker listens.
- Shutdown: SIGTERM or SIGINT to the parent is sent on to every worker as
  SIGTERM; each drains as a single server does, within --grace. A worker
  still running STOP_MARGIN_S after that is killed.
- A worker that dies while the others serve is logged, the others are
  stopped the same way, and the parent exits 1: a supervisor (Kubernetes,
  systemd) restarts the whole group, rather than this process restarting
  one worker over and over behind a port that looks healthy.
- Exit status: 0 when every worker stopped cleanly after a signal; 2 with
  the first worker's one-line error when a worker could not start (a bad
  device, a port its gRPC server could not bind); 1 when a worker died or
  had to be killed.
- Threads: each worker runs torch on its share of the cores
  (OMP_NUM_THREADS = cores // K, unless the environment sets it).
- Metrics: service/merged_metrics.py.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from pathlib import Path

from service import metrics_http
from service.options import ServeOptions
from service.reuseport import reserve

log = logging.getLogger("netspec.serve")

STOP_MARGIN_S = 10.0  # past --grace: the drain's quiet period, gRPC's stop, releasing the models
_PR_SET_PDEATHSIG = 1


class GroupError(Exception):
    """The group could not start; the message is one line for the user."""


@dataclasses.dataclass
class Worker:
    number: int  # 1..K, as the log names it
    process: multiprocessing.process.BaseProcess
    messages: multiprocessing.connection.Connection
    error: str | None = None  # what it reported before exiting
    ready: bool = False
    metrics_port: int | None = None
    exited: bool = False


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker when the parent dies, so none is orphaned
    even if the parent is killed outright."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _worker_main(number: int, repository: Path, options: ServeOptions, messages, parent_pid: int,
                 inherited: list) -> None:
    """One worker, in the forked child: a whole `netspec serve` on the shared port."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # until serve() installs its own handlers
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent too, which sends SIGTERM
    for thing in inherited:  # the parent's sockets and the other workers' pipes
        thing.close()
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before prctl
        os._exit(1)
    # torch runs each operation on one thread per core; K workers doing so
    # would run K times as many threads as cores, which costs far more than
    # it gives. So each takes its share of the cores, unless told otherwise.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // options.workers)))

    import asyncio

    from service.metrics import MetricsPortError
    from service.runtime import resolve_device
    from service.server import serve

    gc.freeze()  # the worker's own process: as `netspec serve` does (compiler/cli.py, settle_imports)
    try:
        resolve_device(options.device)
    except (ValueError, RuntimeError) as e:  # an unknown or unavailable device
        messages.send(("error", str(e)))
        os._exit(2)
    code = 2
    try:
        code = asyncio.run(serve(
            repository, options,
            on_listening=lambda host, port: messages.send(("ready", port)),
            on_metrics=lambda port: messages.send(("metrics", port)),
        ))
    except MetricsPortError as e:
        messages.send(("error", str(e)))
    except (OSError, RuntimeError) as e:  # grpc reports unusable TLS files as RuntimeError
        messages.send(("error", f"cannot serve on {options.host}:{options.port}: {e}"))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as `netspec serve`: nothing is left to finalise


def _describe(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"was killed by {signal.Signals(-exitcode).name}"
    return f"exited with status {exitcode}"


class Group:
    def __init__(self, repository: Path, options: ServeOptions, on_ready=None):
        self.repository = repository
        self.options = options
        self.on_ready = on_ready
        self.workers: list[Worker] = []
        self.stopping = False
        self.deadline: float | None = None
        self.status = 0
        self.error: str | None = None
        self.announced = False

    # --- starting ---------------------------------------------------------

    def start(self, port: int, inherited: list) -> None:
        context = multiprocessing.get_context("fork")  # before any thread, gRPC core or torch pool exists
        options = dataclasses.replace(self.options, port=port, shared_port=True)
        pipes = []
        for number in range(1, self.options.workers + 1):
            receive, send = context.Pipe(duplex=False)
            process = context.Process(
                target=_worker_main, name=f"netspec-worker-{number}",
                args=(number, self.repository, options, send, os.getpid(), [*inherited, *pipes, receive]),
            )
            process.start()
            send.close()
            pipes.append(receive)
            self.workers.append(Worker(number, process, receive))
            log.info("worker %d of %d: pid %d", number, self.options.workers, process.pid)

    def metrics_ports(self) -> dict[int, int]:
        return {w.number: w.metrics_port for w in self.workers if w.metrics_port is not None and not w.exited}

    # --- supervising --------------------------------------------------------

    def stop(self, why: str) -> None:
        """Send every worker still running SIGTERM (once)."""
        if self.stopping:
            return
        self.stopping = True
        self.deadline = time.monotonic() + self.options.grace_s + STOP_MARGIN_S
        running = sum(not w.exited for w in self.workers)
        log.info("stopping %d worker%s: %s", running, "" if running == 1 else "s", why)
        for w in self.workers:
            if not w.exited:
                os.kill(w.process.pid, signal.SIGTERM)

    def _read(self, w: Worker) -> None:
        while not w.messages.closed and w.messages.poll():
            try:
                kind, value = w.messages.recv()
            except (EOFError, OSError):
                w.messages.close()
                return
            if kind == "ready":
                w.ready = True
                log.info("worker %d (pid %d) listening on %s:%d", w.number, w.process.pid, self.options.host, value)
            elif kind == "metrics":
                w.metrics_port = value
            elif kind == "error":
                w.error = value
        if not self.announced and not self.stopping and all(w.ready for w in self.workers):
            self.announced = True
            if self.on_ready is not None:
                self.on_ready(self.options.host, self.options.port)

    def _exited(self, w: Worker) -> None:
        self._read(w)  # what it said before it went
        w.process.join()
        w.exited = True
        code = w.process.exitcode
        if w.error is not None:
            if self.error is None:  # the command's last line says it
                self.error, self.status = w.error, 2
            elif w.error != self.error:
                log.error("worker %d (pid %d) could not start: %s", w.number, w.process.pid, w.error)
            self.stop(f"worker {w.number} could not start")
        elif not self.stopping:
            log.error("worker %d (pid %d) %s; the group stops", w.number, w.process.pid, _describe(code))
            self.status = self.status or 1
            self.stop(f"worker {w.number} is gone")
        elif code not in (0, -signal.SIGTERM):  # SIGTERM before its handlers were installed: a clean stop
            log.error("worker %d (pid %d) %s while stopping", w.number, w.process.pid, _describe(code))
            self.status = self.status or 1
        else:
            log.info("worker %d (pid %d) stopped", w.number, w.process.pid)

    def supervise(self, wakeup: socket.socket, signals: list[int]) -> None:
        """Until every worker has exited."""
        while not all(w.exited for w in self.workers):
            waiting = {w.process.sentinel: w for w in self.workers if not w.exited}
            pipes = {w.messages: w for w in self.workers if not w.messages.closed}
            timeout = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
            ready = multiprocessing.connection.wait([wakeup, *pipes, *waiting], timeout)
            if wakeup in ready:
                wakeup.recv(4096)  # the bytes only wake us; `signals` says which
            if signals and not self.stopping:
                self.stop(f"{signal.Signals(signals[0]).name} received")
            for thing in ready:
                if thing in pipes:
                    self._read(pipes[thing])
            for thing in ready:
                if thing in waiting:
                    self._exited(waiting[thing])
            if self.deadline is not None and time.monotonic() >= self.deadline:
                for w in self.workers:
                    if not w.exited:
                        log.error("worker %d (pid %d) did not stop in time; killed", w.number, w.process.pid)
                        os.kill(w.process.pid, signal.SIGKILL)
                self.status = self.status or 1
                self.deadline = None  # wait for them to go


def _serve_merged_metrics(group: Group):
    """The parent's --metrics-port, or None when it cannot be served (the group then stops)."""
    from prometheus_client import CollectorRegistry

    from service.merged_metrics import MergedCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(MergedCollector(group.metrics_ports))
    host = group.options.metrics_host or group.options.host
    try:
        server = metrics_http.start(registry, host, group.options.metrics_port)
    except metrics_http.MetricsPortError as e:
        group.error, group.status = str(e), 2
        group.stop("the metrics port cannot be served")
        return None
    log.info("metrics of all workers on http://%s:%d/metrics", host, server.server_port)
    return server


def run_group(repository: Path, options: ServeOptions, on_ready=None) -> int:
    """Serve `repository` with options.workers processes until SIGTERM or
    SIGINT; returns the exit status. Raises GroupError when it cannot start."""
    signals: list[int] = []
    wakeup, wake_writer = socket.socketpair()
    wakeup.setblocking(False)
    wake_writer.setblocking(False)
    previous = {sig: signal.signal(sig, lambda number, _frame: signals.append(number))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    previous_fd = signal.set_wakeup_fd(wake_writer.fileno(), warn_on_full_buffer=False)
    group = Group(repository, options, on_ready)
    metrics = None
    try:
        try:
            reservation = reserve(options.host, options.port)
        except OSError as e:
            raise GroupError(f"cannot serve on {options.host}:{options.port}: {e}") from e
        try:
            group.options = dataclasses.replace(options, port=reservation.port)
            group.start(reservation.port, [wakeup, wake_writer, *reservation.sockets])
            if options.metrics_port:  # after the forks: the workers must not inherit its socket or thread
                metrics = _serve_merged_metrics(group)
            group.supervise(wakeup, signals)
        finally:
            reservation.close()  # held until every worker has gone
    finally:
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        wakeup.close()
        wake_writer.close()
        if metrics is not None:
            metrics_http.stop(metrics)
    if group.error is not None:
        raise GroupError(group.error)
    log.info("stopped")
    return group.status
