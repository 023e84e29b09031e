"""Ops that only rearrange: flatten and identity."""
from __future__ import annotations

import math

from pydantic import Field

from ..errors import RuleError
from ..ir import TensorInfo
from .base import FunctionCall, Op, Params, register


class FlattenParams(Params):
    start_dim: int = Field(1, description="first dimension merged (default 1: keep the batch)")
    end_dim: int = Field(-1, description="last dimension merged")


@register
class Flatten(Op):
    name = "flatten"
    Params = FlattenParams
    doc = "Merge dimensions start_dim..end_dim into one: [N, 16, 5, 5] -> [N, 400]."

    def infer(self, p, inputs):
        shape = inputs[0].shape
        rank = len(shape)
        start, end = p.start_dim % rank, p.end_dim % rank
        if start > end:
            raise RuleError(f"start_dim {p.start_dim} comes after end_dim {p.end_dim} for input {inputs[0]}")
        merged = shape[start:end + 1]
        if not all(isinstance(d, int) for d in merged):
            raise RuleError(f"cannot flatten symbolic dimensions {list(merged)} of {inputs[0]}",
                            hint="flatten from dim 1 to keep the batch dimension separate")
        return TensorInfo(shape[:start] + (math.prod(merged),) + shape[end + 1:], inputs[0].dtype)

    def lower(self, p, inputs, out):
        args = (p.start_dim,) if p.end_dim == -1 else (p.start_dim, p.end_dim)
        return FunctionCall("torch.flatten", args)


@register
class Identity(Op):
    name = "identity"
    doc = "Passes its input through unchanged (a named point in the graph)."

    def infer(self, p, inputs):
        return inputs[0]

    def lower(self, p, inputs, out):
        return None  # no computation: the emitter aliases the input
