"""Helpers shared by the shape rules."""
from __future__ import annotations

import math
from fractions import Fraction

from ..errors import RuleError
from ..ir import Shape, TensorInfo, dims


def pair(v: int | list | tuple) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    return (int(v[0]), int(v[1]))


def expect_rank(x: TensorInfo, rank: int, what: str) -> None:
    if len(x.shape) != rank:
        raise RuleError(f"expects a rank-{rank} input {what}, got {x}",
                        hint="add a 'flatten' before a linear layer, or check the previous node")


def known(dim, what: str) -> int:
    if not isinstance(dim, int):
        raise RuleError(f"{what} must be a known size, got symbolic '{dim}'")
    return dim


def axis(dim: int, x: TensorInfo) -> int:
    """`dim` of x as a non-negative index, or a RuleError."""
    rank = len(x.shape)
    if not -rank <= dim < rank:
        raise RuleError(f"dim {dim} is out of range for input {x}")
    return dim % rank


def per_sample(shape: Shape) -> int:
    """Elements per sample: the product of all dims but a symbolic batch."""
    dims = shape[1:] if shape and isinstance(shape[0], str) else shape
    return math.prod(d for d in dims if isinstance(d, int))


def window_out(size: int, kernel: int, stride: int, pad: int, dilation: int = 1,
               ceil_mode: bool = False) -> int:
    """Output length of a sliding window: floor((L + 2p - d(k-1) - 1)/s) + 1,
    with PyTorch's ceil_mode rule that the last window starts inside the input."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + pad:
            out -= 1
        return out
    return span // stride + 1


def window_length(size, kernel: int, stride: int, pad: int, dilation: int = 1, ceil_mode: bool = False,
                  what: str = "length"):
    """The output length of a 1-D sliding window over `size`, a number or a
    symbol.  Over a symbolic size L that is a multiple of the stride, the
    output is L/stride + e for an offset e that depends on the window alone;
    the window is accepted where e is 0 (stride 1 with padding (kernel - 1) / 2
    keeps L; 3x3/2 with padding 1, or 2x2/2, halves it), and the output is then
    the scaled symbol (T, H/2, 3*W/4: compiler/ir/dims.py).  Any other window
    would give L/stride + e, which a shape cannot hold."""
    if isinstance(size, int):
        return window_out(size, kernel, stride, pad, dilation, ceil_mode)
    # e is the same for every multiple of the stride: read it at a large one
    probe = 1_000_000 * stride
    offset = window_out(probe, kernel, stride, pad, dilation, ceil_mode) - probe // stride
    if offset == 0:
        if stride == 1:
            return size
        out = dims.scale(size, Fraction(1, stride))
        if out is not None:
            return out
        raise RuleError(f"a window of stride {stride} cannot divide the symbolic {what} '{size}'",
                        hint="only a symbol or a multiple of one (H, H/2, 2*H) can be divided; declare a known size")
    raise RuleError(f"a window of {kernel} (stride {stride}, padding {pad}) over the symbolic {what} '{size}' "
                    f"gives no multiple of it ({size}/{stride} {'+' if offset > 0 else '-'} {abs(offset)})"
                    if stride > 1 else
                    f"a window of {kernel} (stride {stride}, padding {pad}) changes the symbolic {what} '{size}'",
                    hint=f"pad by {(dilation * (kernel - 1)) // 2} to keep the size (or to divide it by the stride), "
                         "or declare a known size")


def window_label(name: str, kernel, stride) -> str:
    """'conv2d 3x3/2': an op with a sliding window, as a picture labels it."""
    k = f"{kernel}x{kernel}" if isinstance(kernel, int) else "x".join(map(str, kernel))
    return f"{name} {k}" + (f"/{stride}" if stride not in (1, None, (1, 1)) else "")
