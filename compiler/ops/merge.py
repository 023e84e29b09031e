"""Ops that join several inputs: elementwise sum and concatenation."""
from __future__ import annotations

import operator

import torch

from ..errors import RuleError
from ..ir import TensorInfo, format_shape
from .base import FunctionCall, Op, Params, register


@register
class Add(Op):
    name = "add"
    arity = (2, None)
    doc = "Elementwise sum of inputs of one shape (a residual link)."

    def infer(self, p, inputs):
        first = inputs[0]
        for other in inputs[1:]:
            if other.shape != first.shape:
                raise RuleError("input shapes differ",
                                hint="a residual link needs equal shapes: project the shortcut "
                                     "(a 1x1 convolution with the same stride) where they change")
        return first

    def lower(self, p, inputs, out):
        return FunctionCall(operator.add, fold=True)


class ConcatParams(Params):
    dim: int = 1


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
        return FunctionCall(torch.cat, (), {"dim": p.dim}, pack=True)


_ = format_shape
