"""Ops that join several inputs: elementwise arithmetic with broadcasting,
matrix products and concatenation."""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ..errors import RuleError
from ..ir import Shape, TensorInfo, dims
from .base import FunctionCall, Op, Params, register
from .rules import per_sample


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
            raise RuleError(f"input shapes differ and do not broadcast: dimension {i - rank} "
                            f"(from the end) is {x} vs {y}",
                            hint="each dimension must be equal, or 1 in one of the inputs; a residual link "
                                 "whose shapes change must project the shortcut (a 1x1 convolution with the same "
                                 "stride); a channel gate needs [N, C, 1, 1] (global_avg_pool with keepdim: true)")
    return tuple(out)


class _Elementwise(Op):
    """A binary torch operator chained over 2+ inputs, with torch's
    broadcasting on symbolic shapes."""

    arity = (2, None)
    fn: ClassVar[str]

    def infer(self, p, inputs):
        shape = inputs[0].shape
        for other in inputs[1:]:
            shape = broadcast(shape, other.shape)
        return TensorInfo(shape, inputs[0].dtype)

    # An elementwise op is one multiply or add per element, not a
    # multiply-add: it counts none, as torch's flop counter and the papers do.

    def lower(self, p, inputs, out):
        return FunctionCall(self.fn, fold=True)


@register
class Add(_Elementwise):
    name = "add"
    fn = "operator.add"
    doc = "Elementwise sum of 2+ inputs, broadcasting (a residual link; x + a position embedding)."
    fresh_output = True


@register
class Sub(_Elementwise):
    name = "sub"
    fn = "operator.sub"
    arity = 2
    doc = "a - b, broadcasting."
    fresh_output = True


@register
class Mul(_Elementwise):
    name = "mul"
    fn = "operator.mul"
    doc = "Elementwise product of 2+ inputs, broadcasting ([N, C, H, W] * [N, C, 1, 1])."


@register
class Div(_Elementwise):
    name = "div"
    fn = "operator.truediv"
    arity = 2
    doc = "a / b, broadcasting."
    fresh_output = True


class ScaleParams(Params):
    factor: float = Field(description="the number every element is multiplied by")


@register
class Scale(Op):
    name = "scale"
    Params = ScaleParams
    doc = "x * factor, a constant (attention's 1/sqrt(d): factor: 0.125)."
    fresh_output = True

    def infer(self, p, inputs):
        return inputs[0]

    def lower(self, p, inputs, out):
        return FunctionCall("operator.mul", (p.factor,))

    def label(self, p):
        return f"scale {p.factor:g}"


def matmul_shape(a: TensorInfo, b: TensorInfo) -> Shape:
    """torch.matmul's rule for inputs of rank 2 or more: the batch dims
    broadcast, a's last dim meets b's second to last."""
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise RuleError(f"expects inputs of rank 2 or more, got {a} and {b}")
    if a.shape[-1] != b.shape[-2]:
        raise RuleError(f"inner dimensions differ: a's last is {a.shape[-1]}, b's second to last {b.shape[-2]}",
                        hint="a's last dimension must equal b's second to last: "
                             "transpose one input (keys: transpose dims -2, -1)")
    return (*broadcast(a.shape[:-2], b.shape[:-2]), a.shape[-2], b.shape[-1])


@register
class Matmul(Op):
    name = "matmul"
    arity = 2
    doc = "Batched matrix product a @ b: [..., n, k] @ [..., k, m] -> [..., n, m]."
    fresh_output = True

    def infer(self, p, inputs):
        return TensorInfo(matmul_shape(*inputs), inputs[0].dtype)

    def count_macs(self, p, inputs, out):
        # A symbolic inner size (attention weights @ values over T keys)
        # counts one, as a symbolic T does everywhere: the figure is per position.
        inner = inputs[0].shape[-1]
        return per_sample(out.shape) * (inner if isinstance(inner, int) else 1)

    def lower(self, p, inputs, out):
        return FunctionCall("torch.matmul")


def _joined_size(sizes: list) -> int | str:
    """The size of sizes joined end to end. With symbols it is a symbol of
    its own, spelled as the sum (a class token before T positions: 'T+1'),
    equal to nothing else: an op that needs T itself then says so."""
    symbols = [d for d in sizes if not isinstance(d, int)]
    fixed = sum(d for d in sizes if isinstance(d, int))
    if not symbols:
        return fixed
    scaled = [dims.parse(d) for d in symbols]
    if not fixed and None not in scaled and len({symbol for symbol, _ in scaled}) == 1:
        return dims.spell(scaled[0][0], sum(factor for _, factor in scaled))  # H/2 beside H/2: H
    return "+".join(symbols) + (f"+{fixed}" if fixed else "")


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
        sizes = [x.shape[dim] for x in inputs]
        total = _joined_size(sizes)
        return TensorInfo(ref[:dim] + (total,) + ref[dim + 1:], inputs[0].dtype)

    def lower(self, p, inputs, out):
        return FunctionCall("torch.cat", (), {"dim": p.dim}, pack=True)
