"""Fully connected layer."""
from __future__ import annotations

from pydantic import Field

from ..errors import RuleError
from ..ir import TensorInfo
from .base import ModuleCall, Op, Params, register
from .rules import known, per_sample


class LinearParams(Params):
    out_features: int = Field(description="output features (in_features is the input's last dimension)")
    bias: bool = Field(True, description="learn an additive bias per output feature")
    channels_last: bool = Field(
        False, description="the input is an image channels last, [N, H, W, C] (ConvNeXt): act at each position")


@register
class Linear(Op):
    name = "linear"
    Params = LinearParams
    doc = "y = x W^T + b over the last dimension; in_features is inferred."
    fresh_output = True

    def infer(self, p, inputs):
        (x,) = inputs
        if len(x.shape) < 2:
            raise RuleError(f"expects at least [N, features], got {x}")
        known(x.shape[-1], "the feature dimension")
        if p.out_features < 1:
            raise RuleError(f"out_features must be positive, got {p.out_features}")
        # An image reaching a linear layer is most often a forgotten flatten;
        # a channels-last image says so.
        if len(x.shape) > 3 and all(isinstance(d, int) for d in x.shape[2:]) and not p.channels_last:
            raise RuleError(f"input {x} still has spatial dimensions",
                            hint="add a 'flatten' node (or a global pool) before this linear layer; "
                                 "for an image channels last ([N, H, W, C]) set channels_last: true")
        if p.channels_last and len(x.shape) != 4:
            raise RuleError(f"channels_last expects [N, H, W, C], got {x}", at="channels_last")
        return TensorInfo((*x.shape[:-1], p.out_features), x.dtype)

    def count_params(self, p, inputs, out):
        return inputs[0].shape[-1] * p.out_features + (p.out_features if p.bias else 0)

    def count_weights(self, p, inputs, out):
        return inputs[0].shape[-1] * p.out_features

    def count_macs(self, p, inputs, out):
        return per_sample(out.shape) * inputs[0].shape[-1]

    def lower(self, p, inputs, out):
        kwargs = {} if p.bias else {"bias": False}
        return ModuleCall("nn.Linear", (inputs[0].shape[-1], p.out_features), kwargs)

    def label(self, p):
        return f"{self.name} {p.out_features}"

    def gate_rows(self, p):
        return ("weight", "bias") if p.bias else ("weight",)
