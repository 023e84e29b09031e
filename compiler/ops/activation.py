"""Elementwise activations and softmax: no parameters, shape unchanged."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..errors import RuleError
from .base import FunctionCall, Op, Params, register


class Activation(Op):
    """An elementwise function of one input. `fn` is its torch function;
    `in_place` the same computation overwriting its input, where torch has one."""

    fn: str
    args: tuple = ()
    in_place: FunctionCall | None = None

    def infer(self, p, inputs):
        return inputs[0]

    def lower(self, p, inputs, out):
        return FunctionCall(self.fn, self.args)

    def lower_in_place(self, p, inputs, out):
        return self.in_place


def _activation(op_name: str, fn: str, description: str, in_place: FunctionCall | None = None,
                args: tuple = ()) -> type[Op]:
    cls = type(op_name.title().replace("_", ""), (Activation,),
               {"name": op_name, "fn": fn, "doc": description, "in_place": in_place, "args": args})
    return register(cls)


def _inplace(fn: str) -> FunctionCall:
    return FunctionCall(fn, kwargs={"inplace": True})


Relu = _activation("relu", "torch.relu", "max(x, 0)", FunctionCall("torch.relu_"))
Sigmoid = _activation("sigmoid", "torch.sigmoid", "1 / (1 + exp(-x))")
Tanh = _activation("tanh", "torch.tanh", "hyperbolic tangent")
Relu6 = _activation("relu6", "F.relu6", "min(max(x, 0), 6)", _inplace("F.relu6"))
Silu = _activation("silu", "F.silu", "x * sigmoid(x) (swish)", _inplace("F.silu"))
Hardswish = _activation("hardswish", "F.hardswish", "x * relu6(x + 3) / 6", _inplace("F.hardswish"))
Hardsigmoid = _activation("hardsigmoid", "F.hardsigmoid", "relu6(x + 3) / 6", _inplace("F.hardsigmoid"))
Erf = _activation("erf", "torch.erf", "the error function")
Softplus = _activation("softplus", "F.softplus", "log(1 + exp(x))")
Mish = _activation("mish", "F.mish", "x * tanh(softplus(x))", _inplace("F.mish"))
OneMinus = _activation("one_minus", "torch.rsub", "1 - x (the GRU's complement of the update gate)", args=(1,))


class LeakyParams(Params):
    negative_slope: float = Field(0.01, description="the slope for x < 0")


@register
class LeakyRelu(Op):
    name = "leaky_relu"
    Params = LeakyParams
    doc = "x if x > 0 else negative_slope * x"

    def infer(self, p, inputs):
        return inputs[0]

    def lower(self, p, inputs, out):
        return FunctionCall("F.leaky_relu", (p.negative_slope,))

    def lower_in_place(self, p, inputs, out):
        return FunctionCall("F.leaky_relu", (p.negative_slope,), {"inplace": True})


class SoftmaxParams(Params):
    dim: int = Field(-1, description="the dimension that sums to 1")


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
        return FunctionCall("torch.softmax", (p.dim,))


class GeluParams(Params):
    approximate: Literal["none", "tanh"] = Field("none", description="the exact form, or the tanh approximation (GPT-2)")


@register
class Gelu(Op):
    name = "gelu"
    Params = GeluParams
    doc = "x * Phi(x): exact, or with approximate: tanh."

    def infer(self, p, inputs):
        return inputs[0]

    def lower(self, p, inputs, out):
        return FunctionCall("F.gelu", (), {} if p.approximate == "none" else {"approximate": "tanh"})
