"""Shape rules and lowerings of mul, channel_shuffle, chunk, slice and
stochastic_depth: tables of tiny cases, each lowering checked against the
torch expression it stands for."""
from __future__ import annotations

import operator
from functools import reduce

import pytest
import torch

from compiler.api import SpecError, compile_text
from compiler.errors import RuleError
from compiler.ir import TensorInfo
from compiler.backend import resolve
from compiler.ops import OPS, FunctionCall, ModuleCall


def infer(op: str, params: dict, *shapes):
    o = OPS[op]
    return o.infer(o.Params(**params), [TensorInfo(tuple(s)) for s in shapes]).shape


def run(op: str, params: dict, *tensors):
    """Apply the op's lowering to real tensors."""
    o = OPS[op]
    p = o.Params(**params)
    infos = [TensorInfo(tuple(t.shape)) for t in tensors]
    low = o.lower(p, infos, o.infer(p, infos))
    if low is None:
        return tensors[0]
    if isinstance(low, ModuleCall):  # run in eval mode, as the references are
        return resolve.module_class(low.cls)(*low.args, **low.kwargs).eval()(*tensors)
    assert isinstance(low, FunctionCall)
    fn = resolve.function(low.fn)
    if low.fold:
        return reduce(fn, tensors)
    return fn(*tensors, *low.args, **low.kwargs)

SHAPES = [
    # op, params, input shapes, output shape
    ("mul", {}, [("N", 8, 5, 5), ("N", 8, 1, 1)], ("N", 8, 5, 5)),
    ("mul", {}, [("N", 8, 1, 1), ("N", 8, 5, 5)], ("N", 8, 5, 5)),
    ("mul", {}, [(2, 3, 4), (4,)], (2, 3, 4)),
    ("mul", {}, [(2, 1, 4), (1, 3, 1), (2, 3, 4)], (2, 3, 4)),
    ("mul", {}, [("N", 16), ("N", 16)], ("N", 16)),
    ("mul", {}, [("N", 16), (1, 16)], ("N", 16)),
    ("channel_shuffle", {"groups": 2}, [("N", 8, 5, 5)], ("N", 8, 5, 5)),
    ("channel_shuffle", {"groups": 1}, [("N", 3, 5, 5)], ("N", 3, 5, 5)),
    ("chunk", {"chunks": 2, "index": 0}, [("N", 116, 28, 28)], ("N", 58, 28, 28)),
    ("chunk", {"chunks": 2, "index": 1}, [("N", 116, 28, 28)], ("N", 58, 28, 28)),
    ("chunk", {"chunks": 3, "index": 2}, [("N", 10, 4, 4)], ("N", 2, 4, 4)),  # torch: 4, 4, 2
    ("chunk", {"chunks": 2, "index": 1, "dim": -1}, [("N", 6, 4, 7)], ("N", 6, 4, 3)),
    ("slice", {"end": 16}, [("N", 24, 7, 7)], ("N", 16, 7, 7)),
    ("slice", {"start": 16}, [("N", 24, 7, 7)], ("N", 8, 7, 7)),
    ("slice", {"start": -5, "end": -1}, [("N", 24, 7, 7)], ("N", 4, 7, 7)),
    ("slice", {"start": 1, "end": 3, "dim": 2}, [("N", 24, 7, 7)], ("N", 24, 2, 7)),
    ("stochastic_depth", {"p": 0.2}, [("N", 24, 7, 7)], ("N", 24, 7, 7)),
]

ERRORS = [
    ("mul", {}, [("N", 8, 5, 5), ("N", 4, 1, 1)], "do not broadcast: dimension -3 (from the end) is 8 vs 4"),
    ("mul", {}, [("N", 8), ("T", 8)], "do not broadcast"),
    ("channel_shuffle", {"groups": 3}, [("N", 8, 5, 5)], "must be positive and divide the channels (8)"),
    ("channel_shuffle", {"groups": 2}, [("N", 8)], "rank-4"),
    ("chunk", {"chunks": 2, "index": 2}, [("N", 8, 5, 5)], "index 2 is not a part"),
    ("chunk", {"chunks": 4, "index": 3}, [("N", 6, 5, 5)], "index 3 is not a part"),  # torch makes 3 parts of 2
    ("chunk", {"chunks": 2, "index": 0}, [("N", "C")], "must be a known size"),
    ("chunk", {"chunks": 2, "index": 0, "dim": 4}, [("N", 8, 5, 5)], "dim 4 is out of range"),
    ("slice", {"start": 8, "end": 8}, [("N", 8, 5, 5)], "selects nothing"),
    ("slice", {"end": 9}, [("N", 8, 5, 5)], "is outside dimension 1 (size 8)"),
    ("stochastic_depth", {"p": 1.0}, [("N", 8)], "p must be in [0, 1)"),
]


@pytest.mark.parametrize("op,params,shapes,expected", SHAPES)
def test_shape_rule(op, params, shapes, expected):
    assert infer(op, params, *shapes) == expected


@pytest.mark.parametrize("op,params,shapes,message", ERRORS)
def test_shape_rule_rejects(op, params, shapes, message):
    with pytest.raises(RuleError) as e:
        infer(op, params, *shapes)
    assert message in e.value.message


def concrete(shape):
    return tuple(2 if isinstance(d, str) else d for d in shape)


@pytest.mark.parametrize("op,params,shapes,expected", SHAPES)
def test_lowering_matches_torch(op, params, shapes, expected):
    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(concrete(s), generator=gen) for s in shapes]
    out = run(op, params, *xs)
    if op == "mul":
        want = reduce(operator.mul, xs)
    elif op == "channel_shuffle":  # torchvision's shufflenetv2.channel_shuffle
        n, c, h, w = xs[0].shape
        g = params["groups"]
        want = xs[0].view(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)
    elif op == "chunk":
        want = torch.chunk(xs[0], params["chunks"], params.get("dim", 1))[params["index"]]
    elif op == "slice":
        index = [slice(None)] * xs[0].dim()
        index[params.get("dim", 1)] = slice(params.get("start", 0), params.get("end"))
        want = xs[0][tuple(index)]
    else:  # stochastic depth in eval mode
        want = xs[0]
    assert out.shape == concrete(expected)
    assert torch.equal(out, want)


def test_split_and_gate_in_a_spec():
    # A channel split into two parts, a gate, and a shuffle, as a spec writes them.
    text = """
name: tiny
inputs: {x: {shape: [N, 8, 6, 6]}}
nodes:
  left: {op: chunk, chunks: 2, index: 0}
  right: {op: chunk, chunks: 2, index: 1, in: x}
  pool: {op: global_avg_pool, keepdim: true}
  gated: {op: mul, in: [left, pool]}
  join: {op: concat, in: [gated, right]}
  shuffle: {op: channel_shuffle, groups: 2}
outputs: shuffle
"""
    model = compile_text(text)
    x = torch.randn(3, 8, 6, 6)
    a, b = x.chunk(2, dim=1)
    b_gate = b.mean((2, 3), keepdim=True)
    want = torch.cat([a * b_gate, b], 1).view(3, 2, 4, 6, 6).transpose(1, 2).reshape(3, 8, 6, 6)
    assert torch.allclose(model.module(x), want)
    assert "torch.narrow(x, 1, 0, 4)" in model.module.code


def test_broadcast_error_names_both_shapes():
    text = """
name: tiny
inputs: {x: {shape: [N, 8, 6, 6]}}
nodes:
  pool: {op: global_avg_pool}
  gated: {op: mul, in: [x, pool]}
outputs: gated
"""
    with pytest.raises(SpecError) as e:
        compile_text(text, file="tiny.yaml")
    message = str(e.value)
    assert "tiny.yaml:6:" in message and "gated" in message
    assert "[N, 8, 6, 6]" in message and "[N, 8]" in message
    assert "keepdim: true" in message
