"""Ops that rearrange or select channels: ShuffleNet's channel shuffle, and
the channel split of ShuffleNet v2, CSPNet and GhostNet as `chunk` (equal
parts, like torch.chunk) or `slice` (a range), which select one part, and
`split`, one node with a named output per part (`qkv.q`, `qkv.k`, `qkv.v`)."""
from __future__ import annotations

from typing import Optional

from pydantic import Field

from ..errors import RuleError
from ..ir import TensorInfo, TupleInfo
from .base import FunctionCall, Op, Params, register
from .rules import axis, expect_rank, known


def _narrowed(x: TensorInfo, dim: int, length: int) -> TensorInfo:
    return TensorInfo(x.shape[:dim] + (length,) + x.shape[dim + 1:], x.dtype)


class ShuffleParams(Params):
    groups: int = Field(description="groups whose channels are interleaved")


@register
class ChannelShuffle(Op):
    name = "channel_shuffle"
    Params = ShuffleParams
    doc = "Interleave the channels of `groups` groups (ShuffleNet): [g, C/g] -> [C/g, g]."

    def infer(self, p, inputs):
        (x,) = inputs
        expect_rank(x, 4, "[N, C, H, W]")
        c = known(x.shape[1], "the channel count")
        if p.groups < 1 or c % p.groups:
            raise RuleError(f"groups={p.groups} must be positive and divide the channels ({c})")
        return x

    def lower(self, p, inputs, out):
        return FunctionCall("torch.channel_shuffle", (p.groups,))


class ChunkParams(Params):
    chunks: int = Field(description="equal parts the dimension is split into (torch.chunk)")
    index: int = Field(description="the part this node is, from 0")
    dim: int = Field(1, description="the dimension split (default 1: channels)")


@register
class Chunk(Op):
    name = "chunk"
    Params = ChunkParams
    doc = "Part `index` of `chunks` equal parts along `dim` (torch.chunk(x, chunks, dim)[index])."

    def infer(self, p, inputs):
        (x,) = inputs
        dim = axis(p.dim, x)
        size = known(x.shape[dim], f"dimension {dim}")
        if p.chunks < 1:
            raise RuleError(f"chunks must be positive, got {p.chunks}")
        start, length = self._range(p, size)
        if not 0 <= p.index < p.chunks or length < 1:
            raise RuleError(f"index {p.index} is not a part of {size} split into {p.chunks} chunks",
                            hint=f"torch.chunk makes parts of {-(-size // p.chunks)}; use an index from 0")
        return _narrowed(x, dim, length)

    @staticmethod
    def _range(p, size: int) -> tuple[int, int]:
        part = -(-size // p.chunks)  # torch.chunk: parts of ceil(size / chunks), the last smaller
        start = p.index * part
        return start, max(0, min(part, size - start))

    def lower(self, p, inputs, out):
        dim = axis(p.dim, inputs[0])
        start, length = self._range(p, inputs[0].shape[dim])
        return FunctionCall("torch.narrow", (p.dim, start, length))


class SliceParams(Params):
    start: int = Field(0, description="first index; negative counts from the end")
    end: Optional[int] = Field(None, description="index after the last (default: to the end); negative counts from the end")
    dim: int = Field(1, description="the dimension sliced (default 1: channels)")


@register
class Slice(Op):
    name = "slice"
    Params = SliceParams
    doc = "The range start:end along `dim` (x[:, start:end] for dim 1); negative counts from the end."

    def infer(self, p, inputs):
        (x,) = inputs
        dim = axis(p.dim, x)
        size = known(x.shape[dim], f"dimension {dim}")
        start, end = self._bounds(p, size)
        if not 0 <= start < end <= size:
            raise RuleError(f"range {p.start}:{p.end} selects nothing of dimension {dim} (size {size})"
                            if start >= end else f"range {p.start}:{p.end} is outside dimension {dim} (size {size})",
                            hint=f"use 0 <= start < end <= {size}")
        return _narrowed(x, dim, end - start)

    @staticmethod
    def _bounds(p, size: int) -> tuple[int, int]:
        start = p.start + size if p.start < 0 else p.start
        end = size if p.end is None else p.end + size if p.end < 0 else p.end
        return start, end

    def lower(self, p, inputs, out):
        start, end = self._bounds(p, inputs[0].shape[axis(p.dim, inputs[0])])
        return FunctionCall("torch.narrow", (p.dim, start, end - start))


class SplitParams(Params):
    names: list[str] = Field(description="a name per part, in order; the parts are read as NODE.NAME (qkv.q)")
    sizes: Optional[list[int]] = Field(None, description="the parts' sizes (default: equal parts, one per name)")
    dim: int = Field(1, description="the dimension split (default 1: channels)")


@register
class Split(Op):
    name = "split"
    Params = SplitParams
    doc = "Parts of one dim, one named output each: names: [q, k, v] -> qkv.q, qkv.k, qkv.v (torch.split)."

    def infer(self, p, inputs):
        (x,) = inputs
        if not p.names or len(set(p.names)) != len(p.names):
            raise RuleError(f"names {p.names} must be distinct, one per part", at="names")
        bad = [n for n in p.names if not n.isidentifier()]
        if bad:
            raise RuleError(f"part name '{bad[0]}' must be a plain name (letters, digits, '_')", at="names",
                            hint="a part is read as NODE.NAME, so its name has no dot and does not start with a digit")
        dim = axis(p.dim, x)
        size = known(x.shape[dim], f"dimension {dim}")
        sizes = self._sizes(p, size, dim)
        if len(sizes) != len(p.names):
            raise RuleError(f"{len(sizes)} sizes {sizes} for {len(p.names)} names {p.names}",
                            hint="give one size per name")
        if min(sizes) < 1 or sum(sizes) != size:
            raise RuleError(f"sizes {sizes} do not add up to dimension {dim} (size {size}) of input {x}",
                            hint=f"positive sizes whose sum is {size}")
        parts = tuple(_narrowed(x, dim, n) for n in sizes)
        return TupleInfo(parts[0].shape, x.dtype, parts, tuple(p.names))

    @staticmethod
    def _sizes(p, size: int, dim: int) -> list[int]:
        if p.sizes is not None:
            return list(p.sizes)
        if size % len(p.names):
            raise RuleError(f"{len(p.names)} equal parts do not divide dimension {dim} (size {size})",
                            hint=f"give the parts' sizes (sizes: [...], adding up to {size}), "
                                 f"or split into a number of parts that divides {size}")
        return [size // len(p.names)] * len(p.names)

    def lower(self, p, inputs, out):
        sizes = [t.shape[axis(p.dim, inputs[0])] for t in out.items]
        return FunctionCall("torch.split", (sizes[0] if len(set(sizes)) == 1 else sizes, p.dim))

    def label(self, p):
        return f"split {', '.join(p.names)}"
