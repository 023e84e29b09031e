"""Convolution: 2-D over images, 1-D over sequences."""
from __future__ import annotations

from typing import Literal, Union

from pydantic import Field

from ..errors import RuleError
from ..ir import TensorInfo
from .base import ModuleCall, Op, Params, register
from .rules import expect_rank, known, pair, per_sample, window_label, window_length, window_out

IntPair = Union[int, tuple[int, int]]


class Conv2dParams(Params):
    out_channels: int = Field(description="output channels (in_channels is the input's)")
    kernel: IntPair = Field(description="window size: 3, or [height, width]")
    stride: IntPair = Field(1, description="step of the window")
    padding: Union[IntPair, Literal["same", "valid"]] = Field(
        0, description="zeros added on each side, or 'same' (output size = input size, stride 1) or 'valid'")
    dilation: IntPair = Field(1, description="spacing between kernel elements")
    groups: int = Field(1, description="groups of channels convolved separately (depthwise: the input channels)")
    bias: bool = Field(True, description="learn an additive bias per output channel")


def conv_padding(p: Conv2dParams, k: tuple[int, int]) -> tuple[int, int]:
    """Symmetric padding per side; 'same' pads (total // 2) in front like torch."""
    if p.padding == "valid":
        return (0, 0)
    if p.padding == "same":
        d = pair(p.dilation)
        return tuple(d[i] * (k[i] - 1) // 2 for i in range(2))
    return pair(p.padding)


@register
class Conv2d(Op):
    name = "conv2d"
    Params = Conv2dParams
    doc = "2-D convolution over [N, C, H, W]; in_channels is inferred."
    fresh_output = True

    def infer(self, p, inputs):
        (x,) = inputs
        expect_rank(x, 4, "[N, C, H, W]")
        c = known(x.shape[1], "the channel count")
        k, s, d = pair(p.kernel), pair(p.stride), pair(p.dilation)
        if min(k + s + d) < 1 or p.out_channels < 1 or p.groups < 1:
            raise RuleError("kernel, stride, dilation, groups and out_channels must be positive")
        if c % p.groups or p.out_channels % p.groups:
            raise RuleError(f"groups={p.groups} must divide both the input channels ({c}) "
                            f"and out_channels ({p.out_channels})")
        if p.padding not in ("same", "valid") and min(pair(p.padding)) < 0:
            raise RuleError(f"padding must not be negative, got {p.padding}")
        if p.padding == "same" and s != (1, 1):
            raise RuleError("padding 'same' needs stride 1", hint="give the padding as a number instead")
        pad = conv_padding(p, k)
        hw = []
        for i, axis in enumerate(("height", "width")):
            size = known(x.shape[2 + i], f"the input {axis}")
            span = d[i] * (k[i] - 1) + 1
            if span > size + 2 * pad[i]:
                raise RuleError(
                    f"kernel {k[0]}x{k[1]}"
                    + (f" (dilation {d[i]}: spans {span})" if d[i] > 1 else "")
                    + f" is larger than the padded input {axis} {size + 2 * pad[i]} (input {x})",
                    hint="use a smaller kernel, add padding, or remove a pooling layer before this one")
            hw.append(window_out(size, k[i], s[i], pad[i], d[i]) if p.padding != "same" else size)
        return TensorInfo((x.shape[0], p.out_channels, *hw), x.dtype)

    def count_params(self, p, inputs, out):
        c, (kh, kw) = inputs[0].shape[1], pair(p.kernel)
        return p.out_channels * (c // p.groups) * kh * kw + (p.out_channels if p.bias else 0)

    def count_weights(self, p, inputs, out):
        return self.count_params(p.model_copy(update={"bias": False}), inputs, out)

    def count_macs(self, p, inputs, out):
        c, (kh, kw) = inputs[0].shape[1], pair(p.kernel)
        return per_sample(out.shape) * (c // p.groups) * kh * kw

    def lower(self, p, inputs, out):
        kwargs = {"kernel_size": p.kernel}
        if p.stride != 1:
            kwargs["stride"] = p.stride
        if p.padding != 0:
            kwargs["padding"] = p.padding
        if p.dilation != 1:
            kwargs["dilation"] = p.dilation
        if p.groups != 1:
            kwargs["groups"] = p.groups
        if not p.bias:
            kwargs["bias"] = False
        return ModuleCall("nn.Conv2d", (inputs[0].shape[1], p.out_channels), kwargs)

    def label(self, p):
        return f"{window_label(self.name, p.kernel, p.stride)} {p.out_channels}"


class Conv1dParams(Params):
    out_channels: int = Field(description="output channels (in_channels is the input's)")
    kernel: int = Field(description="window length")
    stride: int = Field(1, description="step of the window")
    padding: Union[int, Literal["same", "valid"]] = Field(
        0, description="zeros added at each end, or 'same' (output length = input length, stride 1) or 'valid'")
    dilation: int = Field(1, description="spacing between kernel elements")
    groups: int = Field(1, description="groups of channels convolved separately (depthwise: the input channels)")
    bias: bool = Field(True, description="learn an additive bias per output channel")


@register
class Conv1d(Op):
    name = "conv1d"
    Params = Conv1dParams
    doc = "1-D convolution over [N, C, L] (L may be symbolic where the window keeps it); in_channels is inferred."
    fresh_output = True

    def infer(self, p, inputs):
        (x,) = inputs
        expect_rank(x, 3, "[N, C, L]")
        c = known(x.shape[1], "the channel count")
        if min(p.kernel, p.stride, p.dilation, p.groups, p.out_channels) < 1:
            raise RuleError("kernel, stride, dilation, groups and out_channels must be positive")
        if c % p.groups or p.out_channels % p.groups:
            raise RuleError(f"groups={p.groups} must divide both the input channels ({c}) "
                            f"and out_channels ({p.out_channels})")
        if isinstance(p.padding, int) and p.padding < 0:
            raise RuleError(f"padding must not be negative, got {p.padding}")
        if p.padding == "same" and p.stride != 1:
            raise RuleError("padding 'same' needs stride 1", hint="give the padding as a number instead")
        length = x.shape[2]
        if p.padding == "same":
            return TensorInfo((x.shape[0], p.out_channels, length), x.dtype)
        pad = 0 if p.padding == "valid" else p.padding
        span = p.dilation * (p.kernel - 1) + 1
        if isinstance(length, int) and span > length + 2 * pad:
            raise RuleError(f"kernel {p.kernel}" + (f" (dilation {p.dilation}: spans {span})" if p.dilation > 1 else "")
                            + f" is longer than the padded input length {length + 2 * pad} (input {x})",
                            hint="use a smaller kernel or add padding")
        out = window_length(length, p.kernel, p.stride, pad, p.dilation)
        return TensorInfo((x.shape[0], p.out_channels, out), x.dtype)

    def count_params(self, p, inputs, out):
        return p.out_channels * (inputs[0].shape[1] // p.groups) * p.kernel + (p.out_channels if p.bias else 0)

    def count_weights(self, p, inputs, out):
        return self.count_params(p.model_copy(update={"bias": False}), inputs, out)

    def count_macs(self, p, inputs, out):
        # per output element; a symbolic length counts one position (the figure is then per step)
        return per_sample(out.shape) * (inputs[0].shape[1] // p.groups) * p.kernel

    def lower(self, p, inputs, out):
        kwargs = {"kernel_size": p.kernel}
        if p.stride != 1:
            kwargs["stride"] = p.stride
        if p.padding != 0:
            kwargs["padding"] = p.padding
        if p.dilation != 1:
            kwargs["dilation"] = p.dilation
        if p.groups != 1:
            kwargs["groups"] = p.groups
        if not p.bias:
            kwargs["bias"] = False
        return ModuleCall("nn.Conv1d", (inputs[0].shape[1], p.out_channels), kwargs)

    def label(self, p):
        return f"{self.name} {p.kernel}" + (f"/{p.stride}" if p.stride != 1 else "") + f" {p.out_channels}"
