"""Normalisation and dropout."""
from __future__ import annotations

import torch.nn.functional as F

from ..errors import RuleError
from .base import FunctionCall, ModuleCall, Op, Params, expect_rank, known, per_sample, register


class BatchNormParams(Params):
    eps: float = 1e-5
    momentum: float = 0.1
    affine: bool = True


@register
class BatchNorm2d(Op):
    name = "batchnorm2d"
    Params = BatchNormParams
    doc = "Batch normalisation over [N, C, H, W]; num_features is inferred."

    def infer(self, p, inputs):
        expect_rank(inputs[0], 4, "[N, C, H, W]")
        known(inputs[0].shape[1], "the channel count")
        return inputs[0]

    def count_params(self, p, inputs, out):
        return 2 * inputs[0].shape[1] if p.affine else 0

    def lower(self, p, inputs, out):
        kwargs = {}
        if p.eps != 1e-5:
            kwargs["eps"] = p.eps
        if p.momentum != 0.1:
            kwargs["momentum"] = p.momentum
        if not p.affine:
            kwargs["affine"] = False
        return ModuleCall("nn.BatchNorm2d", (inputs[0].shape[1],), kwargs)


class LRNParams(Params):
    size: int
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


@register
class LocalResponseNorm(Op):
    name = "local_response_norm"
    Params = LRNParams
    doc = "AlexNet's normalisation across `size` neighbouring channels."

    def infer(self, p, inputs):
        if len(inputs[0].shape) < 3:
            raise RuleError(f"expects [N, C, ...], got {inputs[0]}")
        if p.size < 1:
            raise RuleError(f"size must be positive, got {p.size}")
        return inputs[0]

    def lower(self, p, inputs, out):
        return FunctionCall(F.local_response_norm, (p.size,), {"alpha": p.alpha, "beta": p.beta, "k": p.k})


class DropoutParams(Params):
    p: float = 0.5


@register
class Dropout(Op):
    name = "dropout"
    Params = DropoutParams
    doc = "Zeroes elements with probability p while training; identity in eval mode."

    def infer(self, p, inputs):
        if not 0 <= p.p < 1:
            raise RuleError(f"p must be in [0, 1), got {p.p}")
        return inputs[0]

    def lower(self, p, inputs, out):
        return ModuleCall("nn.Dropout", (p.p,))


_ = per_sample
