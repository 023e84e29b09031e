"""Activations overwrite their input only where nothing else reads it."""
from __future__ import annotations

import torch

from compiler.api import compile_text

SPEC = """
name: inplace
inputs:
  x: {shape: [N, 4, 6, 6]}
nodes:
  conv: {op: conv2d, out_channels: 4, kernel: 3, padding: 1}
  act: {op: relu}                     # conv's only reader: may overwrite it
  branch: {op: conv2d, out_channels: 4, kernel: 1}
  shared: {op: relu}                  # branch is read here and by cat: must not
  first_half: {op: chunk, chunks: 2, index: 0, in: act}
  view_act: {op: relu6, in: first_half}     # a view of act, which cat reads: must not
  cat: {op: concat, in: [branch, shared, act, view_act]}
  first: {op: relu, in: x}            # the graph's input: must not
  pooled: {op: global_avg_pool, in: first}
outputs: {y: cat, z: pooled}
"""


def reference(module, x):
    """The same computation with every activation out of place."""
    conv = module.conv(x)
    act = torch.relu(conv)
    branch = module.branch(act)
    shared = torch.relu(branch)
    view_act = torch.nn.functional.relu6(act[:, :2])
    return torch.cat([branch, shared, act, view_act], 1), torch.relu(x).mean((2, 3))


def test_in_place_only_where_safe():
    model = compile_text(SPEC, file="inplace.yaml")
    code = model.module.code
    assert "act = torch.relu_(conv)" in code
    assert "shared = torch.relu(branch)" in code
    assert "inplace = True" not in code
    assert "first = torch.relu(x)" in code
    x = torch.randn(2, 4, 6, 6)
    x_before = x.clone()
    with torch.no_grad():
        y, z = model.module(x)
        want_y, want_z = reference(model.module, x_before)
    assert torch.equal(x, x_before)
    assert torch.allclose(y, want_y) and torch.allclose(z, want_z)


def test_in_place_trains():
    model = compile_text(SPEC, file="inplace.yaml").module.train()
    y, z = model(torch.randn(2, 4, 6, 6))
    (y.sum() + z.sum()).backward()
    assert model.conv.weight.grad is not None and model.conv.weight.grad.abs().sum() > 0
