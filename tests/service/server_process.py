"""`netspec serve` in a process of its own, as a user starts it, for the tests
that must see the server as clients do: over a real socket, with its exit
code, its log and its signals.

(tests/ is not a package: this module is imported by its unique name, which
pytest's default import mode puts on sys.path.)
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
STARTUP_TIMEOUT_S = 120


def netspec(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """The `netspec` command line in a process of its own."""
    return subprocess.run([sys.executable, "-m", "compiler.cli", *map(str, args)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, **kwargs)


@functools.cache
def bench_module(name: str):
    """bench/<name>.py as a module: the tests share the benches' specs (and hostile.py's fuzzer)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hostile():
    return bench_module("hostile")


def conv_net_spec(image_size: int) -> str:
    """bench/fast_equivalence.py's network of convolutions, batch norms and a residual add, over
    images of image_size x image_size."""
    return bench_module("fast_equivalence").CONV_NET.substitute(size=image_size)


def spread_batch_norm_statistics(model, scales: bool = True):
    """Give each BatchNorm2d running statistics (and with `scales`, scales) drawn from seed 0 instead of
    torch's zeros and ones: statistics that a wrong fold of the norm would not survive."""
    import torch

    g = torch.Generator().manual_seed(0)
    for m in model.module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if scales:
                m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
    return model


def write_spec_model(repository: Path, spec_text: str, name: str | None = None, **config) -> Path:
    """Compile spec text in this process and store it as `netspec compile` does."""
    from compiler.api import compile_text
    from compiler.tools.artifact import write_version

    model = compile_text(spec_text)
    return write_version(model, repository, name or model.name, **config)


def perf_analyzer_env() -> dict:
    """perf_analyzer links libcudart even for a CPU server; the pip package
    nvidia-cuda-runtime-cu12 provides it (see .ci/perf_analyzer.sh)."""
    env = dict(os.environ)
    with contextlib.suppress(ImportError):
        import nvidia.cuda_runtime

        lib = os.path.join(list(nvidia.cuda_runtime.__path__)[0], "lib")
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (lib, env.get("LD_LIBRARY_PATH")) if p)
    return env


class Server:
    """`netspec serve` on a free port; `url` comes from its ready line."""

    def __init__(self, repository: Path, *args: str, expect_ready: bool = True):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "compiler.cli", "serve", "--repository", str(repository), "--port", "0",
             "--metrics-port", "0", "--device", "cpu", *map(str, args)],
            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stdout], daemon=True).start()
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr), daemon=True).start()
        self.url = None
        self.started = time.monotonic()
        if expect_ready:
            self.wait_ready()

    @contextlib.contextmanager
    def client(self, **options):
        """A tritonclient gRPC client of this server, closed on leaving."""
        import tritonclient.grpc as grpcclient

        with contextlib.closing(grpcclient.InferenceServerClient(self.url, **options)) as client:
            yield client

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        while self.url is None:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop(signal.SIGKILL)
                raise RuntimeError(f"server did not start in {timeout} s:\n{self.log()}") from None
            if "ready on" in line:
                self.url = line.strip().rsplit(" ", 1)[1]
        return self.url

    def log(self) -> str:
        time.sleep(0.1)  # the reader thread may be a line behind
        return "".join(self.stderr)

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


@contextlib.contextmanager
def serving(repository: Path, *args: str):
    """A tritonclient of a server of `repository` started for the block; the server must stop cleanly after it."""
    server = Server(repository, *args)
    with server.client() as client:
        yield client
    assert server.stop() == 0
