"""The layout and attention ops on a symbolic sequence length T: one
compiled module runs at every length, and agrees with torch at each."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from compiler.api import compile_text
from compiler.errors import SpecError
from compiler.tools.verify import copy_weights

# Heads split out of the width and merged back with both N and T symbolic
# (torch.reshape takes one -1: the merge needs both sizes from the input),
# a class token expanded over the batch, and self-attention over T + 1.
SPEC = """
name: heads
inputs: {x: {shape: [N, T, 8]}}
nodes:
  split: {op: reshape, shape: [N, T, 2, 4], in: x}
  merged: {op: reshape, shape: [N, T, 8]}
  token: {op: parameter, in: [], shape: [1, 1, 8], init: normal}
  tokens: {op: expand, shape: [N, -1, -1], in: [token, x]}
  joined: {op: concat, dim: 1, in: [tokens, merged]}
  attend: {op: multi_head_attention, heads: 2}
outputs: attend
"""


def test_one_module_serves_every_length():
    model = compile_text(SPEC, seed=0)
    assert model.graph.nodes["split"].out.shape == ("N", "T", 2, 4)
    assert model.graph.nodes["joined"].out.shape == ("N", "T+1", 8)  # the class token and T positions
    assert model.graph.nodes["attend"].out.shape == ("N", "T+1", 8)
    reference = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    copy_weights(reference, model.module.attend)
    token = model.module.state_dict()["token.weight"]
    for batch, length in ((1, 3), (3, 7)):
        x = torch.randn(batch, length, 8)
        seq = torch.cat([token.expand(batch, -1, -1), x], 1)
        with torch.no_grad():
            want = reference(seq, seq, seq, need_weights=False)[0]
            torch.testing.assert_close(model.module.eval()(x), want)


@pytest.mark.parametrize("text, message", [
    ("{op: reshape, shape: [N, T, 3, 3], in: x}", "cannot reshape input [N, T, 8] (8 elements"),
    ("{op: reshape, shape: [N, T, 3, -1], in: x}", "a -1 beside two symbolic dims"),
    ("{op: reshape, shape: [N, 16], in: x}", "symbolic dims of shape [N, 16] must be those of input"),
    ("{op: multi_head_attention, heads: 3, in: x}", "heads=3 must divide the width 8"),
    ("{op: expand, shape: [-1, 2, -1], in: [x, x]}", "symbolic sizes only"),
    # joined along T, the length is T + T: a reshape that claims T is refused
    ("{op: concat, dim: 1, in: [x, x]}\n  z: {op: reshape, shape: [N, T, 2, 4]}", "symbolic dims of shape [N, T, 2, 4]"),
])
def test_errors_name_the_sizes(text, message):
    with pytest.raises(SpecError) as e:
        compile_text(f"name: bad\ninputs: {{x: {{shape: [N, T, 8]}}}}\nnodes:\n  y: {text}\noutputs: y\n")
    assert message in str(e.value)
