"""Nodes with several named outputs (`split`, read as `node.part`) and the
1-D ops over a symbolic length: one compiled module at every length."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compiler.api import compile_text
from compiler.backend.standalone import source
from compiler.errors import SpecError
from compiler.tools.verify import copy_weights

# Self-attention written out: one projection split into q, k and v inside a
# repeated block, each part read by name.
ATTENTION = """
name: attention
inputs: {x: {shape: [N, 5, 8]}}
blocks:
  layer:
    nodes:
      qkv: {op: linear, out_features: 24}
      parts: {op: split, dim: -1, names: [q, k, v]}
      attend: {op: scaled_dot_product_attention, in: [parts.q, parts.k, parts.v]}
      proj: {op: linear, out_features: 8}
      add: {op: add, in: [proj, x]}
nodes:
  layers: {block: layer, repeat: 2}
outputs: {y: layers, keys: layers.0.parts.k}
"""


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv, self.proj = nn.Linear(8, 24), nn.Linear(8, 8)

    def forward(self, x):
        q, k, v = self.qkv(x).split(8, -1)
        return self.proj(F.scaled_dot_product_attention(q, k, v)) + x, k


def test_split_parts_are_read_by_name():
    model = compile_text(ATTENTION)
    assert model.graph.nodes["layers.1.parts.v"].out.shape == ("N", 5, 8)
    reference = nn.ModuleList([Layer(), Layer()])
    copy_weights(reference, model.module)
    x = torch.randn(3, 5, 8)
    with torch.no_grad():
        h, keys = reference[0](x)
        want = reference[1](h)[0]
        got, got_keys = model.module(x)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_keys, keys)
    assert "torch.split(qkv, 8, -1)" in source(model.graph)


@pytest.mark.parametrize("nodes, message", [
    ("p: {op: split, names: [a, b, c]}", "3 equal parts do not divide dimension 1 (size 5)"),
    ("p: {op: split, names: [a, b], sizes: [2, 2]}", "sizes [2, 2] do not add up to dimension 1 (size 5)"),
    ("p: {op: split, names: [a, b], sizes: [2, 2, 1]}", "3 sizes [2, 2, 1] for 2 names"),
    ("p: {op: split, names: [a, a], sizes: [2, 3]}", "must be distinct"),
    ("p: {op: split, names: [a, b.c], sizes: [2, 3]}", "must be a plain name"),
    ("p: {op: split, names: [a, b], sizes: [2, 3]}\n  r: {op: relu, in: p}", "input 'p' has several outputs (a, b)"),
    ("p: {op: split, names: [a, b], sizes: [2, 3]}\n  r: {op: relu, in: p.c}", "'c' is not one of the node's outputs: a, b"),
    ("p: {op: relu}\n  r: {op: relu, in: p.a}", "'a' is not an output: the node has a single value"),
])
def test_split_errors(nodes, message):
    last = nodes.rsplit("\n  ", 1)[-1].split(":")[0]
    text = f"name: bad\ninputs: {{x: {{shape: [N, 5, 4]}}}}\nnodes:\n  {nodes}\noutputs: {{y: {last}.a}}\n" \
        if last == "p" else f"name: bad\ninputs: {{x: {{shape: [N, 5, 4]}}}}\nnodes:\n  {nodes}\noutputs: {last}\n"
    with pytest.raises(SpecError) as e:
        compile_text(text)
    assert message in str(e.value)
    assert "Traceback" not in str(e.value)


def test_an_output_names_one_part():
    with pytest.raises(SpecError) as e:
        compile_text("name: bad\ninputs: {x: {shape: [N, 4]}}\nnodes:\n  p: {op: split, names: [a, b]}\noutputs: p\n")
    assert "output 'output': 'p' has several outputs (a, b)" in str(e.value)
    assert "'p.a'" in str(e.value)


# A 1-D stack over a symbolic length: the windows that keep the length
# carry T through, and the module agrees with torch.nn at every length.
SEQUENCE = """
name: sequence
inputs: {x: {shape: [N, 4, T]}}
nodes:
  conv: {op: conv1d, out_channels: 6, kernel: 5, padding: 2}
  norm: {op: instance_norm, affine: true}
  pool: {op: max_pool1d, kernel: 3, stride: 1, padding: 1}
  smooth: {op: avg_pool1d, kernel: 3, stride: 1, padding: 1, count_include_pad: false}
outputs: smooth
"""


def test_one_dimensional_ops_keep_a_symbolic_length():
    model = compile_text(SEQUENCE)
    assert model.graph.nodes["smooth"].out.shape == ("N", 6, "T")
    reference = nn.Sequential(nn.Conv1d(4, 6, 5, padding=2), nn.InstanceNorm1d(6, affine=True),
                              nn.MaxPool1d(3, 1, padding=1), nn.AvgPool1d(3, 1, padding=1, count_include_pad=False))
    with torch.no_grad():
        reference[1].weight.uniform_(0.5, 1.5)
    copy_weights(reference, model.module)
    for length in (3, 11):
        x = torch.randn(2, 4, length)
        with torch.no_grad():
            torch.testing.assert_close(model.module(x), reference(x))


@pytest.mark.parametrize("node, message", [
    ("{op: conv1d, out_channels: 4, kernel: 3}", "a window of 3 (stride 1, padding 0) changes the symbolic length 'T'"),
    ("{op: avg_pool1d, kernel: 3, stride: 2}",
     "a window of 3 (stride 2, padding 0) over the symbolic length 'T' gives no multiple of it (T/2 - 1)"),
])
def test_a_window_that_changes_a_symbolic_length_by_an_offset_is_refused(node, message):
    with pytest.raises(SpecError) as e:
        compile_text(f"name: bad\ninputs: {{x: {{shape: [N, 4, T]}}}}\nnodes:\n  y: {node}\noutputs: y\n")
    assert message in str(e.value)
