"""Fixtures for the service tests: small stand-in models and repositories.

The stand-ins are real compiler.api.Model objects (the IR's own TensorInfo
and Graph) whose modules are plain torch modules that a spec cannot express
(one that sleeps, one that fails on request), so the service is tested apart
from compiling specs. End-to-end tests (test_e2e.py) use real compiled specs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
from torch import nn

from compiler.api import Model
from compiler.errors import ResourceError
from compiler.ir import Graph, TensorInfo as Info
from service.lifecycle import Lifecycle
from service.options import ServeOptions
from service.readiness import Readiness


def fake_model(name: str, module: nn.Module, inputs: dict, outputs: dict) -> Model:
    """A Model with no nodes: the service reads only its tensors and module."""
    graph = Graph(name, None, f"<{name}>", dict(inputs), {}, {})
    return Model(name, None, graph, module, dict(inputs), dict(outputs))


class TwoHeads(nn.Module):
    """x [N, 4] -> (y [N, 3], total [N, 1])."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 3)

    def forward(self, x):
        return self.linear(x), x.sum(dim=1, keepdim=True)


class Scale(nn.Module):
    """Multiplies by a constant; keeps the dtype (for the integer models)."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


class Slow(nn.Module):
    """Sleeps, then adds one: makes calls last long enough to be in flight."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        import time

        time.sleep(self.seconds)
        return x + 1


def make_model(kind: str) -> Model:
    if kind == "twoheads":
        return fake_model("twoheads", TwoHeads(), {"x": Info(("N", 4))}, {"y": Info(("N", 3)), "total": Info(("N", 1))})
    if kind == "int64":
        return fake_model("int64", Scale(2), {"ids": Info(("N", "T"), "int64")}, {"doubled": Info(("N", "T"), "int64")})
    if kind == "uint8":
        return fake_model("uint8", Scale(3), {"pixels": Info(("N", 2), "uint8")}, {"tripled": Info(("N", 2), "uint8")})
    if kind == "fixed":  # no batch dimension
        return fake_model("fixed", Scale(1.5), {"v": Info((3,))}, {"w": Info((3,))})
    if kind == "slow":
        return fake_model("slow", Slow(0.3), {"x": Info(("N", 2))}, {"y": Info(("N", 2))})
    if kind == "broken":  # what compiler.tools.artifact.load_version raises for weights that do not fit
        raise ResourceError("weights weights.safetensors do not fit the model: missing linear.weight")
    if kind == "buggy":  # a bug in a loader: not an expected failure
        raise ValueError("secret internals of a bug")
    raise KeyError(kind)


def fake_loader(version_dir: Path, precision: str = "fp32") -> Model:
    """Stands in for compiler.tools.artifact.load_version: version_dir/kind names the model."""
    return make_model((version_dir / "kind").read_text().strip())


def config_text(name: str, *, max_batch_size: int = 8, batching: bool = True, delay_us: int = 20000,
                precision: str = "fp32", extra: str = "") -> str:
    lines = [f'name: "{name}"', 'backend: "netspec"', f"max_batch_size: {max_batch_size}"]
    if batching:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {delay_us} }}")
    lines.append(f'parameters {{ key: "precision" value {{ string_value: "{precision}" }} }}')
    return "\n".join(lines) + "\n" + extra


def write_model(root: Path, name: str, kind: str, versions=(1,), **config) -> Path:
    model_dir = root / name
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(config_text(name, **config))
    for v in versions:
        (model_dir / str(v)).mkdir(exist_ok=True)
        (model_dir / str(v) / "kind").write_text(kind)
    return model_dir


@pytest.fixture
def repo_dir(tmp_path) -> Path:
    """A repository with one model of each kind, and one that fails to load."""
    root = tmp_path / "models"
    write_model(root, "twoheads", "twoheads", versions=(1, 2), extra="version_policy { all { } }\n")
    write_model(root, "int64", "int64")
    write_model(root, "uint8", "uint8", batching=False)
    write_model(root, "fixed", "fixed", max_batch_size=0, batching=False)
    write_model(root, "slow", "slow", delay_us=1000)
    write_model(root, "broken", "broken")
    return root


def run(coro):
    """Run a coroutine in a fresh event loop (the tests need no asyncio plugin)."""
    return asyncio.run(coro)


# Servers made in process by create_server: a free port, model control on.
TEST_OPTIONS = ServeOptions(port=0, model_control_mode="explicit", metrics_port=0)


def ready(repository) -> Readiness:
    """Readiness of a server past its start, as serve() leaves it."""
    readiness = Readiness(repository, Lifecycle(), strict=False)
    readiness.listening = readiness.started = True
    return readiness
