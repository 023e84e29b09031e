"""Normalisation (batch, layer, group, instance, local response) and dropout."""
from __future__ import annotations

import math

from pydantic import Field

from ..errors import RuleError
from .base import FunctionCall, ModuleCall, Op, Params, register
from .rules import expect_rank, known

# torch's eps for every normalisation here; left out of the generated code when it is kept.
_TORCH_EPS = 1e-5


def _eps_kwargs(p: Params) -> dict:
    return {} if p.eps == _TORCH_EPS else {"eps": p.eps}


class _PerChannelAffine(Op):
    """A normalisation whose affine form learns one scale and one shift per channel (dim 1)."""
    fresh_output = True

    def count_params(self, p, inputs, out):
        return 2 * inputs[0].shape[1] if p.affine else 0

    def count_weights(self, p, inputs, out):
        return inputs[0].shape[1] if p.affine else 0


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
        kwargs = _eps_kwargs(p)
        if p.momentum != 0.1:
            kwargs["momentum"] = p.momentum
        if not p.affine:
            kwargs["affine"] = False
        return ModuleCall("nn.BatchNorm2d", (inputs[0].shape[1],), kwargs)


@register
class BatchNorm1d(BatchNorm2d):
    name = "batchnorm1d"
    doc = "Batch normalisation over [N, C] or [N, C, L]; num_features is inferred."

    def infer(self, p, inputs):
        if len(inputs[0].shape) not in (2, 3):
            raise RuleError(f"expects [N, C] or [N, C, L], got {inputs[0]}")
        known(inputs[0].shape[1], "the channel count")
        return inputs[0]

    def lower(self, p, inputs, out):
        call = super().lower(p, inputs, out)
        return ModuleCall("nn.BatchNorm1d", call.args, call.kwargs)


class LayerNormParams(Params):
    dims: int = Field(1, description="normalise over the last `dims` dimensions (ViT: 1)")
    channels_first: bool = Field(
        False, description="normalise over dim 1 of [N, C, H, W] instead (ConvNeXt's downsampling)")
    eps: float = Field(1e-5, description="added to the variance before its square root")
    affine: bool = Field(True, description="learn a scale and a shift per element of the normalised shape")
    bias: bool = Field(True, description="learn the shift (with affine)")


@register
class LayerNorm(Op):
    name = "layer_norm"
    Params = LayerNormParams
    doc = "Layer normalisation over the last `dims` dims, or over channels (channels_first: true)."
    fresh_output = True

    def _normalized(self, p, x) -> tuple:
        if p.channels_first:
            expect_rank(x, 4, "[N, C, H, W] (channels_first)")
            return (known(x.shape[1], "the channel count"),)
        if not 1 <= p.dims < len(x.shape):
            raise RuleError(f"dims must be in 1..{len(x.shape) - 1} for input {x}, got {p.dims}",
                            hint="dims counts the trailing dimensions normalised together")
        return tuple(known(d, "a normalised dimension") for d in x.shape[-p.dims:])

    def infer(self, p, inputs):
        self._normalized(p, inputs[0])
        return inputs[0]

    def count_params(self, p, inputs, out):
        if not p.affine:
            return 0
        return (2 if p.bias else 1) * math.prod(self._normalized(p, inputs[0]))

    def count_weights(self, p, inputs, out):
        return math.prod(self._normalized(p, inputs[0])) if p.affine else 0

    def lower(self, p, inputs, out):
        shape = self._normalized(p, inputs[0])
        kwargs = _eps_kwargs(p)
        if not p.affine:
            kwargs["elementwise_affine"] = False
        if not p.bias:
            kwargs["bias"] = False
        # nn.LayerNorm normalises the trailing dims; the channels-first form
        # is the runtime's LayerNorm2d, whose weights keep nn.LayerNorm's names.
        return ModuleCall("LayerNorm2d" if p.channels_first else "nn.LayerNorm",
                          (shape[0] if len(shape) == 1 else list(shape),), kwargs)

    def label(self, p):
        return "layer_norm (channels)" if p.channels_first else self.name


class GroupNormParams(Params):
    groups: int = Field(description="groups the channels are split into (1: over all of C, H, W)")
    eps: float = Field(1e-5, description="added to the variance before its square root")
    affine: bool = Field(True, description="learn a scale and a shift per channel")


@register
class GroupNorm(_PerChannelAffine):
    name = "group_norm"
    Params = GroupNormParams
    doc = "Group normalisation of [N, C, ...] over groups of channels; num_channels is inferred."

    def infer(self, p, inputs):
        (x,) = inputs
        if len(x.shape) < 2:
            raise RuleError(f"expects [N, C, ...], got {x}")
        c = known(x.shape[1], "the channel count")
        if p.groups < 1 or c % p.groups:
            raise RuleError(f"groups={p.groups} must divide the channels ({c}) of input {x}")
        return x

    def lower(self, p, inputs, out):
        kwargs = _eps_kwargs(p)
        if not p.affine:
            kwargs["affine"] = False
        return ModuleCall("nn.GroupNorm", (p.groups, inputs[0].shape[1]), kwargs)


class InstanceNormParams(Params):
    eps: float = Field(1e-5, description="added to the variance before its square root")
    affine: bool = Field(False, description="learn a scale and a shift per channel (torch's default: no)")


@register
class InstanceNorm(_PerChannelAffine):
    name = "instance_norm"
    Params = InstanceNormParams
    doc = "Instance normalisation: each sample's each channel over its positions, [N, C, L] or [N, C, H, W]."

    def infer(self, p, inputs):
        (x,) = inputs
        if len(x.shape) not in (3, 4):
            raise RuleError(f"expects [N, C, L] or [N, C, H, W], got {x}")
        known(x.shape[1], "the channel count")
        return x

    def lower(self, p, inputs, out):
        # Statistics of the sample itself, in training and eval alike
        # (torch's default track_running_stats=False).
        kwargs = _eps_kwargs(p)
        if p.affine:
            kwargs["affine"] = True
        cls = "nn.InstanceNorm1d" if len(inputs[0].shape) == 3 else "nn.InstanceNorm2d"
        return ModuleCall(cls, (inputs[0].shape[1],), kwargs)


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
