"""Ops that join several inputs: elementwise sum, product and concatenation."""
from __future__ import annotations

from pydantic import Field

from ..errors import RuleError
from ..ir import Shape, TensorInfo
from .base import FunctionCall, Op, Params, register


@register
class Add(Op):
    name = "add"
    arity = (2, None)
    doc = "Elementwise sum of inputs of one shape (a residual link)."
    fresh_output = True

    def infer(self, p, inputs):
        first = inputs[0]
        for other in inputs[1:]:
            if other.shape != first.shape:
                raise RuleError("input shapes differ",
                                hint="a residual link needs equal shapes: project the shortcut "
                                     "(a 1x1 convolution with the same stride) where they change")
        return first

    def lower(self, p, inputs, out):
        return FunctionCall("operator.add", fold=True)


def broadcast(a: Shape, b: Shape) -> Shape:
    """NumPy's rule, right-aligned: two dims agree when equal or one is 1;
    a symbolic dim (N) agrees with itself and with 1."""
    rank = max(len(a), len(b))
    a = (1,) * (rank - len(a)) + tuple(a)
    b = (1,) * (rank - len(b)) + tuple(b)
    out = []
    for i, (x, y) in enumerate(zip(a, b)):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise RuleError(f"inputs do not broadcast: dimension {i - rank} (from the end) is {x} vs {y}",
                            hint="each dimension must be equal, or 1 in one of the inputs; "
                                 "a channel gate needs [N, C, 1, 1] (global_avg_pool with keepdim: true)")
    return tuple(out)


@register
class Mul(Op):
    name = "mul"
    arity = (2, None)
    doc = "Elementwise product of 2+ inputs, broadcasting ([N, C, H, W] * [N, C, 1, 1])."

    def infer(self, p, inputs):
        shape = inputs[0].shape
        for other in inputs[1:]:
            shape = broadcast(shape, other.shape)
        return TensorInfo(shape, inputs[0].dtype)

    # A product is one multiply per element and no add: it counts no
    # multiply-adds, as torch's flop counter and the papers' tables count.

    def lower(self, p, inputs, out):
        return FunctionCall("operator.mul", fold=True)


class ConcatParams(Params):
    dim: int = Field(1, description="the dimension joined along (default 1: channels)")


@register
class Concat(Op):
    name = "concat"
    Params = ConcatParams
    arity = (1, None)
    doc = "Concatenation along `dim` (default 1: channels)."

    def infer(self, p, inputs):
        rank = len(inputs[0].shape)
        if not -rank <= p.dim < rank:
            raise RuleError(f"dim {p.dim} is out of range for rank-{rank} inputs")
        dim = p.dim % rank
        ref = inputs[0].shape
        for other in inputs[1:]:
            if len(other.shape) != rank or any(a != b for i, (a, b) in enumerate(zip(ref, other.shape)) if i != dim):
                raise RuleError(
                    f"inputs must agree on every dimension but {dim}",
                    hint="the branches must keep the same spatial size: check their strides and padding")
        total = 0
        for x in inputs:
            if not isinstance(x.shape[dim], int):
                total = x.shape[dim]
                break
            total += x.shape[dim]
        return TensorInfo(ref[:dim] + (total,) + ref[dim + 1:], inputs[0].dtype)

    def lower(self, p, inputs, out):
        return FunctionCall("torch.cat", (), {"dim": p.dim}, pack=True)
