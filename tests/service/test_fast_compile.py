"""torch.compile as a model's execution accelerator, on the CPU: inductor's
code gives the plain module's outputs. A tiny network, since inductor
compiles C++ with the system compiler (tens of seconds on 2 cores the first
time, then its cache in /tmp/torchinductor_USER)."""

from __future__ import annotations

import copy

import torch

from compiler.api import compile_text
from service.config import parse_config, settings_of
from service.runtime import Runtime

SPEC = """name: tiny
inputs: {image: {shape: [N, 1, 6, 6]}}
nodes:
  conv: {op: conv2d, out_channels: 4, kernel: 3}
  bn: {op: batchnorm2d}
  act: {op: relu}
  flat: {op: flatten}
  fc: {op: linear, out_features: 3}
outputs: {y: fc}
"""

CONFIG = """name: "tiny" max_batch_size: 4
optimization {
  graph { level: 1 }
  execution_accelerators { cpu_execution_accelerator { name: "torch_compile" } }
}
"""


def test_compiled_on_the_cpu_equals_the_plain_module():
    settings = settings_of(parse_config(CONFIG))
    model = compile_text(SPEC)
    plain = Runtime(copy.deepcopy(model), device=torch.device("cpu"), max_batch_size=4)
    compiled = Runtime(model, device=torch.device("cpu"), max_batch_size=4, fast=settings.fast)
    assert compiled.forward is not compiled.module  # compiled, and already run once (at load)
    x = torch.randn(1, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    (want,), _ = plain.run([x])
    (got,), _ = compiled.run([x])
    # inductor reorders the float sums (bench/fast_equivalence.py --compile: 1.2e-7 on a convnet).
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
