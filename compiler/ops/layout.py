"""Ops that rearrange a tensor's dimensions without computing: reshape,
unflatten, permute, transpose, expand, padding, and reductions over dims.

Shapes may hold symbolic dims (N, T): a rule keeps each symbol where the
input has it, and refuses what only the runtime could decide."""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from ..errors import RuleError
from ..ir import Dim, TensorInfo, format_shape
from .base import FunctionCall, ModuleCall, Op, Params, register
from .rules import axis


def _symbols(shape) -> list[str]:
    return [d for d in shape if isinstance(d, str)]


def _sizes(shape) -> int:
    return math.prod(d for d in shape if isinstance(d, int))


class ReshapeParams(Params):
    shape: list[int | str] = Field(
        description="the new shape, batch included: [N, 768, -1]; symbols as in the input, one -1 inferred")


@register
class Reshape(Op):
    name = "reshape"
    Params = ReshapeParams
    doc = "A new shape of the same elements: [N, 768, 14, 14] -> shape: [N, 768, -1] -> [N, 768, 196]."

    def infer(self, p, inputs):
        (x,) = inputs
        target = list(p.shape)
        if sorted(_symbols(target)) != sorted(_symbols(x.shape)):
            raise RuleError(f"the symbolic dims of shape {format_shape(target)} must be those of input {x}",
                            hint="write the input's symbols (N, T) in the new shape, each once")
        if target.count(-1) > 1 or any(isinstance(d, int) and d < 1 and d != -1 for d in target):
            raise RuleError(f"shape {format_shape(target)} may hold one -1 and positive sizes only")
        if len(_symbols(target)) > 1 and -1 in target:
            raise RuleError(f"shape {format_shape(target)} has a -1 beside two symbolic dims",
                            hint="give every size, or use unflatten / flatten")
        have, want = _sizes(x.shape), _sizes(d for d in target if d != -1)
        if -1 in target:
            if have % want:
                raise RuleError(f"cannot reshape input {x} into {format_shape(target)}: "
                                f"{have} elements per symbolic position do not divide by {want}",
                                hint="the sizes of the new shape must divide the input's")
            target[target.index(-1)] = have // want
        elif have != want:
            raise RuleError(f"cannot reshape input {x} ({have} elements per symbolic position) "
                            f"into {format_shape(target)} ({want})",
                            hint="the new shape must hold as many elements as the input")
        return TensorInfo(tuple(target), x.dtype)

    def lower(self, p, inputs, out):
        symbols = _symbols(out.shape)
        if len(symbols) > 1:
            # torch.reshape takes one -1: two symbolic sizes go through the runtime.
            return ModuleCall("Reshape", (tuple(d if isinstance(d, int) else ("dim", inputs[0].shape.index(d))
                                                for d in out.shape),))
        return FunctionCall("torch.reshape", (tuple(-1 if isinstance(d, str) else d for d in out.shape),))


class UnflattenParams(Params):
    dim: int = Field(description="the dimension split")
    sizes: list[int] = Field(description="its new sizes, one of them -1 at most: [12, 64]")


@register
class Unflatten(Op):
    name = "unflatten"
    Params = UnflattenParams
    doc = "Split one dim into several: [N, T, 768] -> dim: -1, sizes: [12, 64] -> [N, T, 12, 64]."

    def infer(self, p, inputs):
        (x,) = inputs
        d = axis(p.dim, x)
        size = x.shape[d]
        if not isinstance(size, int):
            raise RuleError(f"cannot unflatten symbolic dim '{size}' of input {x}")
        sizes = list(p.sizes)
        if sizes.count(-1) > 1 or any(s < 1 and s != -1 for s in sizes) or not sizes:
            raise RuleError(f"sizes {sizes} may hold one -1 and positive sizes only")
        known_part = _sizes(s for s in sizes if s != -1)
        if (-1 in sizes and size % known_part) or (-1 not in sizes and known_part != size):
            raise RuleError(f"sizes {sizes} do not divide dim {p.dim} ({size}) of input {x}",
                            hint="e.g. heads x head width must equal the width")
        if -1 in sizes:
            sizes[sizes.index(-1)] = size // known_part
        return TensorInfo((*x.shape[:d], *sizes, *x.shape[d + 1:]), x.dtype)

    def lower(self, p, inputs, out):
        return FunctionCall("torch.unflatten", (p.dim, tuple(p.sizes)))


class PermuteParams(Params):
    dims: list[int] = Field(description="the input's dims in their new order: [0, 2, 1, 3]")


@register
class Permute(Op):
    name = "permute"
    Params = PermuteParams
    doc = "Reorder the dims: [N, C, H, W] -> dims: [0, 2, 3, 1] -> [N, H, W, C]."

    def infer(self, p, inputs):
        (x,) = inputs
        if sorted(d % len(x.shape) if -len(x.shape) <= d < len(x.shape) else d for d in p.dims) \
                != list(range(len(x.shape))):
            raise RuleError(f"dims {p.dims} are not an order of the {len(x.shape)} dims of input {x}")
        return TensorInfo(tuple(x.shape[d] for d in p.dims), x.dtype)

    def lower(self, p, inputs, out):
        return FunctionCall("torch.permute", (tuple(p.dims),))


class TransposeParams(Params):
    dim0: int = Field(-2, description="one dimension swapped")
    dim1: int = Field(-1, description="the other")


@register
class Transpose(Op):
    name = "transpose"
    Params = TransposeParams
    doc = "Swap two dims (default the last two: keys for q @ k^T)."

    def infer(self, p, inputs):
        (x,) = inputs
        a, b = axis(p.dim0, x), axis(p.dim1, x)
        shape = list(x.shape)
        shape[a], shape[b] = shape[b], shape[a]
        return TensorInfo(tuple(shape), x.dtype)

    def lower(self, p, inputs, out):
        return FunctionCall("torch.transpose", (p.dim0, p.dim1))


class ExpandParams(Params):
    shape: list[int | str] = Field(
        description="the new shape: -1 keeps a dim, a size repeats a dim of 1, a symbol (N) "
                    "takes that dim of the second input (a class token for every sample)")


@register
class Expand(Op):
    name = "expand"
    Params = ExpandParams
    arity = (1, 2)
    doc = "Repeat dims of size 1 without copying: [1, 1, 768] with shape: [N, -1, -1] -> [N, 1, 768]."

    def infer(self, p, inputs):
        x = inputs[0]
        like = inputs[1] if len(inputs) == 2 else None
        if len(p.shape) != len(x.shape):
            raise RuleError(f"shape {format_shape(p.shape)} must have the rank of input {x}")
        if like is not None and not any(isinstance(d, str) for d in p.shape):
            raise RuleError("a second input is read for symbolic sizes only, and shape has none",
                            hint="write the symbol (shape: [N, -1, -1]), or drop the second input")
        out: list[Dim] = []
        for have, want in zip(x.shape, p.shape):
            if want == -1:
                out.append(have)
                continue
            if isinstance(want, str) and (like is None or want not in like.shape):
                raise RuleError(f"symbolic size '{want}' needs a second input that has it",
                                hint="in: [token, x] takes N from x")
            if have not in (1, want):
                raise RuleError(f"cannot expand dim of size {have} to {want} (input {x})",
                                hint="only dims of size 1 expand")
            out.append(want)
        return TensorInfo(tuple(out), x.dtype)

    def lower(self, p, inputs, out):
        if not any(isinstance(d, str) for d in p.shape):
            return FunctionCall("torch.Tensor.expand", (tuple(p.shape),))
        like = inputs[1].shape
        # The runtime's Expand reads the symbolic sizes from the second input.
        return ModuleCall("Expand", (tuple(d if isinstance(d, int) else ("like", like.index(d)) for d in p.shape),))


class PadParams(Params):
    pad: list[int] = Field(description="F.pad's amounts from the last dim backwards: [left, right, top, bottom]")
    mode: Literal["constant", "reflect", "replicate", "circular"] = Field("constant", description="how to fill")
    value: float = Field(0.0, description="the fill of constant padding")


@register
class Pad(Op):
    name = "pad"
    Params = PadParams
    doc = "F.pad: [left, right] of the last dim, then [top, bottom] of the one before, ..."

    def infer(self, p, inputs):
        (x,) = inputs
        if len(p.pad) % 2 or len(p.pad) // 2 > len(x.shape):
            raise RuleError(f"pad {p.pad} needs pairs, at most one per dim of input {x}")
        shape = list(x.shape)
        for i in range(len(p.pad) // 2):
            d = len(shape) - 1 - i
            if not isinstance(shape[d], int):
                raise RuleError(f"cannot pad symbolic dim '{shape[d]}' of input {x}")
            shape[d] += p.pad[2 * i] + p.pad[2 * i + 1]
            if shape[d] < 1:
                raise RuleError(f"pad {p.pad} leaves nothing of input {x}")
        return TensorInfo(tuple(shape), x.dtype)

    def lower(self, p, inputs, out):
        kwargs = {} if p.mode == "constant" else {"mode": p.mode}
        if p.value:
            kwargs["value"] = p.value
        return FunctionCall("F.pad", (tuple(p.pad),), kwargs)


class ReduceParams(Params):
    dims: list[int] = Field(description="the dimensions reduced: [-1], or [2, 3]")
    keepdim: bool = Field(False, description="keep each reduced dim with size 1")


class _Reduce(Op):
    Params = ReduceParams
    fn: str

    def infer(self, p, inputs):
        (x,) = inputs
        dims = {axis(d, x) for d in p.dims}
        if len(dims) != len(p.dims) or not dims:
            raise RuleError(f"dims {p.dims} must name distinct dims of input {x}")
        shape = tuple(1 if i in dims else d for i, d in enumerate(x.shape) if p.keepdim or i not in dims)
        return TensorInfo(shape, x.dtype)

    def lower(self, p, inputs, out):
        kwargs = {"keepdim": True} if p.keepdim else {}
        return FunctionCall(self.fn, (tuple(p.dims),), kwargs)


def _reduce(op_name: str, fn: str, description: str) -> type[Op]:
    cls = type(op_name.title(), (_Reduce,), {"name": op_name, "fn": fn, "doc": description})
    return register(cls)


Mean = _reduce("mean", "torch.mean", "Mean over `dims` (keepdim: keep them as 1).")
Sum = _reduce("sum", "torch.sum", "Sum over `dims`.")
Amax = _reduce("amax", "torch.amax", "Maximum over `dims`.")
