"""stochastic_depth drops branches while training exactly as torchvision's
stochastic_depth does, is the identity in eval mode, and travels into model.py."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torchvision.ops import stochastic_depth

from compiler.api import compile_text
from compiler.backend.standalone import source

SPEC = """
name: sd
inputs:
  x: {shape: [N, 4, 3, 3]}
nodes:
  conv: {op: conv2d, out_channels: 4, kernel: 1}
  drop: {op: stochastic_depth, p: 0.3, mode: MODE}
  add: {op: add, in: [drop, x]}
outputs: {y: add}
"""


@pytest.mark.parametrize("mode", ["row", "batch"])
def test_training_equals_torchvision(mode):
    model = compile_text(SPEC.replace("MODE", mode), file="sd.yaml").module.train()
    x = torch.randn(64, 4, 3, 3)
    torch.manual_seed(5)
    ours = model(x)
    torch.manual_seed(5)
    theirs = stochastic_depth(model.conv(x), 0.3, mode, training=True) + x
    assert torch.equal(ours, theirs)
    dropped = ((ours - x).abs().flatten(1).amax(1) == 0).float().mean().item()
    if mode == "row":
        assert 0.1 < dropped < 0.5  # about p of the samples lose their branch


def test_eval_is_identity():
    model = compile_text(SPEC.replace("MODE", "row"), file="sd.yaml").module.eval()
    x = torch.randn(8, 4, 3, 3)
    assert torch.equal(model(x), model.conv(x) + x)


def test_model_py_carries_the_layer(tmp_path):
    model = compile_text(SPEC.replace("MODE", "row"), file="sd.yaml")
    path = tmp_path / "model.py"
    path.write_text(source(model.graph))
    code = ("import importlib.util, torch; spec = importlib.util.spec_from_file_location('m', sys.argv[1]); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "net = m.Sd().train(); print(type(net.drop).__name__, net.drop.p)")
    done = subprocess.run([sys.executable, "-c", "import sys; " + code, str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["StochasticDepth", "0.3"]
