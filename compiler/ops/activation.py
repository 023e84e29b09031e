"""Elementwise activations and softmax: no parameters, shape unchanged."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import RuleError
from .base import FunctionCall, NoParams, Op, Params, register


class _Elementwise(Op):
    fn = None

    def infer(self, p, inputs):
        return inputs[0]

    def lower(self, p, inputs, out):
        return FunctionCall(type(self).fn)


def _elementwise(op_name: str, torch_fn, description: str) -> type[Op]:
    cls = type(op_name.title().replace("_", ""), (_Elementwise,),
               {"name": op_name, "fn": staticmethod(torch_fn), "doc": description})
    return register(cls)


Relu = _elementwise("relu", torch.relu, "max(x, 0)")
Sigmoid = _elementwise("sigmoid", torch.sigmoid, "1 / (1 + exp(-x))")
Tanh = _elementwise("tanh", torch.tanh, "hyperbolic tangent")
Relu6 = _elementwise("relu6", F.relu6, "min(max(x, 0), 6)")
Silu = _elementwise("silu", F.silu, "x * sigmoid(x) (swish)")
Hardswish = _elementwise("hardswish", F.hardswish, "x * relu6(x + 3) / 6")
Hardsigmoid = _elementwise("hardsigmoid", F.hardsigmoid, "relu6(x + 3) / 6")
Gelu = _elementwise("gelu", F.gelu, "x * Phi(x), exact form")


class LeakyParams(Params):
    negative_slope: float = 0.01


@register
class LeakyRelu(Op):
    name = "leaky_relu"
    Params = LeakyParams
    doc = "x if x > 0 else negative_slope * x"

    def infer(self, p, inputs):
        return inputs[0]

    def lower(self, p, inputs, out):
        return FunctionCall(F.leaky_relu, (p.negative_slope,))


class SoftmaxParams(Params):
    dim: int = -1


@register
class Softmax(Op):
    name = "softmax"
    Params = SoftmaxParams
    doc = "softmax along `dim` (default: the last)."

    def infer(self, p, inputs):
        x = inputs[0]
        if not -len(x.shape) <= p.dim < len(x.shape):
            raise RuleError(f"dim {p.dim} is out of range for input {x}")
        return x

    def lower(self, p, inputs, out):
        return FunctionCall(torch.softmax, (p.dim,))


_ = NoParams
