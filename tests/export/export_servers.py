"""The two servers the export tests compare, each in its own process:
`netspec serve` on a netspec repository and NVIDIA's tritonserver (installed
by .ci/triton.sh from the nvidia-pytriton wheel) on the exported one.

(tests/ is not a package: this module is imported by its unique name, which
pytest's default import mode puts on sys.path.)
"""
from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from common import ROOT

TRITON_ENV = Path(os.environ.get("NETSPEC_TRITON_ENV", ROOT / ".triton"))
STARTUP_TIMEOUT_S = 300  # three Python-backend models import torch in their own processes


def netspec(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "compiler.cli", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"netspec {' '.join(map(str, args))}:\n{done.stderr}"
    return done


def tritonserver_or_skip() -> Path:
    """The tritonserver wrapper of .ci/triton.sh; skips, saying why, where
    the wheel could not be installed."""
    unavailable = TRITON_ENV / "UNAVAILABLE"
    if unavailable.exists():
        pytest.skip(f"Triton is not installed on this machine: {unavailable.read_text().strip()}")
    server = TRITON_ENV / "tritonserver"
    if not server.exists():
        pytest.skip(f"Triton is not installed ({server} is missing): run bash .ci/triton.sh")
    return server


class ServerProcess:
    """A server in a subprocess: its output is collected, `wait_for` returns
    the first line containing a text."""

    def __init__(self, argv: list[str], env: dict | None = None):
        self.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.log.append(line)
            self.lines.put(line)
        self.lines.put(None)  # the process has exited

    def wait_for(self, text: str, timeout: float = STARTUP_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = None if time.monotonic() >= deadline else ""
            if line is None:
                self.stop()
                raise RuntimeError(f"{self.process.args[0]} did not print {text!r}:\n{''.join(self.log[-60:])}")
            if text in line:
                return line

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(timeout=timeout)


def start_netspec(repository: Path) -> tuple[ServerProcess, str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    server = ServerProcess([sys.executable, "-m", "compiler.cli", "serve", "--repository", str(repository),
                            "--port", "0", "--metrics-port", "0", "--device", "cpu"], env)
    url = server.wait_for("ready on").strip().rsplit(" ", 1)[1]
    return server, url


def start_triton(tritonserver: Path, repository: Path) -> tuple[ServerProcess, str]:
    """tritonserver with gRPC only, on a port that was free a moment ago
    (tritonserver cannot pick one itself); tried again if it was taken."""
    for _ in range(3):
        port = _free_port()
        server = ServerProcess([str(tritonserver), "--model-repository", str(repository), "--grpc-port", str(port),
                                "--allow-http", "false", "--allow-metrics", "false", "--exit-on-error", "true"])
        try:
            server.wait_for("Started GRPCInferenceService")
            return server, f"127.0.0.1:{port}"
        except RuntimeError as e:
            if "address already in use" not in str(e).lower():
                raise
    raise RuntimeError("no free port for tritonserver after 3 tries")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
