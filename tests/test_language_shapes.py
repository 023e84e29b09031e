"""`shape(x)`: expressions that read the shape of a node or input, as tables
of tiny specs.  Accepted specs are checked against the torch layers they
stand for; each rejected one against its message, line and column."""
from __future__ import annotations

import pytest
import torch

from compiler.api import SpecError, analyze_text, compile_text

# A depthwise-separable block that takes no channel count: the depthwise
# convolution is as wide as the block's input, the squeeze a quarter of it.
SEPARABLE = """
name: sep
inputs: {x: {shape: [N, 8, 6, 6]}}
blocks:
  separable:
    params: {out: null, inp: "${shape(x)[1]}"}
    nodes:
      dw: {op: conv2d, out_channels: $inp, kernel: 3, padding: 1, groups: $inp, bias: false}
      pw: {op: conv2d, out_channels: $out, kernel: 1, bias: false}
  gate:
    params: {squeeze: "${shape(x)[1] // 4}"}
    nodes:
      pool: {op: global_avg_pool, keepdim: true}
      fc1: {op: conv2d, out_channels: $squeeze, kernel: 1}
      relu: {op: relu}
      fc2: {op: conv2d, out_channels: "${shape(x)[1]}", kernel: 1}
      sig: {op: sigmoid}
      scale: {op: mul, in: [x, sig]}
nodes:
  a: {block: separable, out: 16}
  b: {block: separable, repeat: 2, out: "${32 * (i + 1)}"}
  se: {block: gate}
outputs: se
"""


def test_a_block_reads_its_inputs_width():
    graph = analyze_text(SEPARABLE)
    assert graph.nodes["a.dw"].attrs.groups == 8
    # Each repeat reads the one before it: 16, then 32 channels in.
    assert [graph.nodes[f"b.{r}.dw"].attrs.groups for r in range(2)] == [16, 32]
    assert graph.nodes["se.fc1"].attrs.out_channels == 64 // 4
    assert graph.instances["b.1"].args["inp"] == 32


def test_the_blocks_equal_torch_layers():
    model = compile_text(SEPARABLE, seed=0)
    dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    se = [torch.nn.Conv2d(64, 16, 1), torch.nn.Conv2d(16, 64, 1)]
    ours = dict(model.module.named_parameters())
    assert ours["a.dw.weight"].shape == dw.weight.shape
    assert [ours["se.fc1.weight"].shape, ours["se.fc2.weight"].shape] == [m.weight.shape for m in se]
    # The same weights in torch's layers give the same output.
    ref = torch.nn.Sequential(
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), torch.nn.Conv2d(8, 16, 1, bias=False),
        torch.nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), torch.nn.Conv2d(16, 32, 1, bias=False),
        torch.nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False), torch.nn.Conv2d(32, 64, 1, bias=False))
    names = ["a.dw", "a.pw", "b.0.dw", "b.0.pw", "b.1.dw", "b.1.pw"]
    with torch.no_grad():
        for layer, name in zip(ref, names):
            layer.weight.copy_(ours[f"{name}.weight"])
        x = torch.randn(2, 8, 6, 6, generator=torch.Generator().manual_seed(0))
        features = ref(x)
        for layer, name in zip(se, ["se.fc1", "se.fc2"]):
            layer.weight.copy_(ours[f"{name}.weight"])
            layer.bias.copy_(ours[f"{name}.bias"])
        gate = torch.sigmoid(se[1](torch.relu(se[0](features.mean((2, 3), keepdim=True)))))
        assert torch.allclose(model.module(x), features * gate, atol=1e-6)


ACCEPTED = [
    # A dotted name, as 'in:' writes it; a repeat by a string.
    ("""  stem: {block: unit}
  head: {op: linear, in: flat, out_features: "${shape(stem.conv)[1] * 2}"}
  flat: {op: flatten, in: stem}""", "head", "out_features", 8),
    ("""  r: {op: conv2d, kernel: 1, repeat: 3, out_channels: "${4 + i}"}
  head: {op: conv2d, kernel: 1, out_channels: "${shape('r.1')[1]}"}""", "head", "out_channels", 5),
    # The last dimension, counted from the end; a symbol passed on as it is.
    ("""  head: {op: conv2d, kernel: 1, out_channels: "${shape(x)[-1] // 2}"}""", "head", "out_channels", 3),
    ("""  flat: {op: reshape, shape: "${[shape(x)[0], -1]}"}""", "flat", "shape", ["N", -1]),
    # A block's output chosen by its input's width.
    ("""  same: {block: keep, width: 4}""", "same.conv", "out_channels", 4),
]

TEMPLATE = """name: t
inputs: {x: {shape: [N, 4, 6, 6]}}
blocks:
  unit:
    nodes:
      conv: {op: conv2d, out_channels: 4, kernel: 1}
  keep:
    params: {width: null}
    nodes:
      conv: {op: conv2d, out_channels: $width, kernel: 1}
      add: {op: add, in: [conv, x], when: "${shape(x)[1] == width}"}
    outputs: "${'add' if shape(x)[1] == width else 'conv'}"
nodes:
%s
outputs: {y: %s}
"""


@pytest.mark.parametrize("nodes,name,param,value", ACCEPTED)
def test_accepted(nodes, name, param, value):
    graph = analyze_text(TEMPLATE % (nodes, name.split(".")[0]))
    assert getattr(graph.nodes[name].attrs, param) == value


def test_a_blocks_output_chosen_by_its_inputs_width():
    graph = analyze_text(TEMPLATE % ("  same: {block: keep, width: 4}\n  wide: {block: keep, width: 8}", "wide"))
    assert graph.nodes["wide.conv"].inputs == ["same.add"]


REJECTED = [
    # (nodes, line, column, the message, its hint)
    ("""  a: {op: conv2d, kernel: 1, out_channels: "${shape(y)[1]}"}""", 14, 44,
     "shape(y): no node or input 'y' here", "shape() reads an input of the block, or a node defined before this one"),
    ("""  a: {op: conv2d, kernel: 1, out_channels: "${shape(b)[1]}"}
  b: {op: relu, in: x}""", 14, 44, "shape(b): no node or input 'b' here", "defined before this one"),
    ("""  a: {op: conv2d, kernel: 1, out_channels: "${shape(x)[0] * 2}"}""", 14, 44,
     "dimension 0 of 'x' is the symbol N, known only when the model runs, not a number",
     "compute with the dimensions that are numbers"),
    ("""  a: {op: conv2d, kernel: 1, out_channels: "${shape(x)[4]}"}""", 14, 44,
     "shape(x) is [N, 4, 6, 6]: it has no dimension 4", "dimensions count from 0 to 3"),
    ("""  a: {op: relu, in: c}
  b: {op: conv2d, kernel: 1, out_channels: "${shape(a)[1]}"}
  c: {op: relu, in: x}""", 15, 44,
     "shape(a) is not known here: 'a' reads 'c', which is not defined before this node",
     "shapes are read in the order nodes are written"),
    ("""  a: {op: conv2d, kernel: 1, out_channels: "${shape(x, 1)}"}""", 14, 44,
     "shape() takes one node or input name", "shape(x)[1]"),
    ("""  a: {op: conv2d, kernel: 1, out_channels: "${shape(3)}"}""", 14, 44,
     "shape() needs the name of a node or input, got 3", "shape(stem.conv)"),
    ("""  a: {op: conv2d, kernel: 1, out_channels: "${shape(u.nope)[1]}"}
  u: {block: unit}""", 14, 44, "shape(u.nope): no node or input 'u.nope' here", "defined before this one"),
]


def errors_of(text: str) -> list:
    with pytest.raises(SpecError) as e:
        analyze_text(text, file="t.yaml")
    return e.value.diagnostics


@pytest.mark.parametrize("nodes,line,col,message,hint", REJECTED)
def test_rejected(nodes, line, col, message, hint):
    errors = errors_of(TEMPLATE % (nodes, "a"))
    assert len(errors) == 1, [d.format() for d in errors]
    d = errors[0]
    assert (d.loc.file, d.loc.line, d.loc.col) == ("t.yaml", line, col), d.format()
    assert message in d.message, d.format()
    assert hint in d.hint, d.format()


def test_not_in_top_level_parameters():
    text = TEMPLATE.replace("name: t\n", "name: t\nparams: {c: \"${shape(x)[1]}\"}\n") % ("  a: {op: relu}", "a")
    (d,) = errors_of(text)
    assert (d.loc.line, d.loc.col) == (2, 13)
    assert d.message == ("shape(x) reads the shape of a node or input, which is known only inside 'nodes' and "
                         "blocks, not in 'params', 'variants' or input shapes")


def test_a_node_whose_shape_fails_is_reported_once_and_alone():
    # The unknown op is the problem; the expression that reads its shape
    # says nothing more, and the signature pass does not say it again.
    errors = errors_of(TEMPLATE % ("""  a: {op: convv2d, kernel: 1, out_channels: 4}
  b: {op: conv2d, kernel: 1, out_channels: "${shape(a)[1]}"}""", "b"))
    assert [d.message for d in errors] == ["unknown op 'convv2d'"]
    # A shape rule's own error, found while the expansion reads it.
    errors = errors_of(TEMPLATE % ("""  a: {op: conv2d, kernel: 9, out_channels: 4}
  b: {op: conv2d, kernel: 1, out_channels: "${shape(a)[1]}"}""", "b"))
    assert len(errors) == 1 and errors[0].node == "a" and "kernel" in errors[0].message, errors


CELL = """name: c
inputs: {x: {shape: [N, T, 3]}}
blocks:
  cell:
    state: {h: {shape: [4], next: act}}
    nodes:
      cat: {op: concat, in: [x, h], dim: 1}
      fc: {op: linear, out_features: "${shape(x)[1]}"}
      act: {op: tanh}
    outputs: act
nodes:
  run: {block: cell}
outputs: {y: run}
"""


def test_not_inside_a_cell():
    (d,) = errors_of(CELL)
    assert (d.loc.line, d.loc.col) == (8, 38)
    assert "shapes are not known inside a cell" in d.message and "parameter" in d.hint
