"""Normalisation and dropout."""
from __future__ import annotations

from pydantic import Field

from ..errors import RuleError
from .base import FunctionCall, ModuleCall, Op, Params, register
from .rules import expect_rank, known


class BatchNormParams(Params):
    eps: float = Field(1e-5, description="added to the variance before its square root")
    momentum: float = Field(0.1, description="weight of the current batch in the running statistics")
    affine: bool = Field(True, description="learn a scale and a shift per channel")


@register
class BatchNorm2d(Op):
    name = "batchnorm2d"
    Params = BatchNormParams
    doc = "Batch normalisation over [N, C, H, W]; num_features is inferred."
    fresh_output = True

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
    size: int = Field(description="neighbouring channels normalised over")
    alpha: float = Field(1e-4, description="multiplicative factor")
    beta: float = Field(0.75, description="exponent")
    k: float = Field(1.0, description="additive factor (AlexNet: 2)")


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
        return FunctionCall("F.local_response_norm", (p.size,), {"alpha": p.alpha, "beta": p.beta, "k": p.k})


class DropoutParams(Params):
    p: float = Field(0.5, description="probability of zeroing an element while training")


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
