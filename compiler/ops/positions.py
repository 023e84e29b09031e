"""Positions in a sequence of symbolic length T: a table of position
vectors for up to L positions (learned: a `parameter`; fixed: the sinusoids
of Vaswani et al. 2017), `narrow` to take the first T of its rows, and
`lookup` to read rows of a table that is a node (an embedding whose table
the output layer shares: a weight-tied language model head).

`narrow` is what bounds T: a table of L rows serves any length up to L, and
`Op.bounds` says so, so a server refuses longer requests before running."""
from __future__ import annotations

from pydantic import Field

from ..errors import RuleError
from ..ir import TensorInfo
from .base import FunctionCall, ModuleCall, Op, Params, register
from .rules import axis, known


class NarrowParams(Params):
    dim: int = Field(1, description="the dimension of the first input that is narrowed")
    like_dim: int | None = Field(None, description="the dimension of the second input whose size is kept "
                                                   "(default: dim)")
    start: int = Field(0, description="the first index kept")


@register
class Narrow(Op):
    name = "narrow"
    Params = NarrowParams
    arity = 2
    doc = ("The first positions of `dim`, as many as the second input has along `like_dim`: "
           "a [L, E] position table with in: [table, x] and x [N, T] -> [T, E] (T <= L).")

    def _dims(self, p, inputs) -> tuple[int, int]:
        x, like = inputs
        return axis(p.dim, x), axis(p.dim if p.like_dim is None else p.like_dim, like)

    def infer(self, p, inputs):
        x, like = inputs
        dim, like_dim = self._dims(p, inputs)
        size = known(x.shape[dim], f"dimension {dim} of the narrowed input")
        length = like.shape[like_dim]
        if not 0 <= p.start < size:
            raise RuleError(f"start {p.start} is outside dimension {dim} (size {size}) of the narrowed input")
        if isinstance(length, int) and p.start + length > size:
            raise RuleError(f"cannot take {length} positions from index {p.start} of dimension {dim}, "
                            f"which has {size}", hint=f"the table needs at least {p.start + length} rows")
        return TensorInfo(x.shape[:dim] + (length,) + x.shape[dim + 1:], x.dtype)

    def bounds(self, p, inputs):
        x, like = inputs
        dim, like_dim = self._dims(p, inputs)
        length = like.shape[like_dim]
        return {length: x.shape[dim] - p.start} if isinstance(length, str) else {}

    def lower(self, p, inputs, out):
        dim, like_dim = self._dims(p, inputs)
        return ModuleCall("NarrowLike", (dim, p.start, like_dim))

    def label(self, p):
        return "narrow to length"


class SinusoidalParams(Params):
    length: int = Field(description="positions in the table (the longest sequence it serves)")
    width: int = Field(description="the length of each position's vector (even)")
    base: float = Field(10000.0, description="the longest wavelength is 2 pi times base")


@register
class SinusoidalTable(Op):
    name = "sinusoidal_table"
    Params = SinusoidalParams
    arity = 0
    doc = ("Fixed position encodings [length, width] (in: []): sin(pos / base^(2i/width)) at column 2i, "
           "cos at 2i + 1 (Vaswani et al. 2017); nothing learned.")

    def infer(self, p, inputs):
        if p.length < 1 or p.width < 2 or p.width % 2:
            raise RuleError(f"length {p.length} must be positive and width {p.width} even",
                            hint="each frequency takes a sine and a cosine column")
        if p.base <= 1:
            raise RuleError(f"base must be above 1, got {p.base}")
        return TensorInfo((p.length, p.width))

    def lower(self, p, inputs, out):
        kwargs = {} if p.base == 10000.0 else {"base": p.base}
        return ModuleCall("SinusoidalTable", (p.length, p.width), kwargs)

    def label(self, p):
        return f"sinusoids {p.length}x{p.width}"


@register
class Lookup(Op):
    name = "lookup"
    arity = 2
    doc = ("Rows of a table node: ids [N, T] (int64) and table [V, E] -> [N, T, E] (F.embedding); "
           "a head reading the same table ties its weights to the embedding's.")

    def infer(self, p, inputs):
        ids, table = inputs
        if ids.dtype not in ("int64", "int32"):
            raise RuleError(f"expects integer ids first, got {ids.dtype} input {ids}",
                            hint="in: [tokens, table], with the tokens declared 'dtype: int64'")
        if len(table.shape) != 2:
            raise RuleError(f"the table must be [rows, width], got {table}",
                            hint="a parameter node of shape [vocabulary, width]")
        known(table.shape[0], "the table's row count")
        return TensorInfo((*ids.shape, table.shape[1]), table.dtype)

    def lower(self, p, inputs, out):
        return FunctionCall("F.embedding")
