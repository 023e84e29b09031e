"""Elementwise products with broadcasting (squeeze-and-excitation's channel
gate, the gates of recurrent cells)."""
from __future__ import annotations

import operator

from ..errors import RuleError
from ..ir import Shape, TensorInfo
from .base import FunctionCall, Op, register


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
        return FunctionCall(operator.mul, fold=True)
