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


# nn.Conv1d/nn.Conv2d keyword arguments with torch's defaults: those left at it are not written,
# so the generated model code reads as short as a hand-written one.
_CONV_DEFAULTS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}


def conv_kwargs(p: Params, defaults: dict) -> dict:
    """kernel_size, every field of `defaults` that differs from its default, and bias=False if there is none."""
    kwargs = {"kernel_size": p.kernel}
    kwargs.update({key: getattr(p, key) for key, default in defaults.items() if getattr(p, key) != default})
    if not p.bias:
        kwargs["bias"] = False
    return kwargs


def check_groups(p: Params, in_channels: int) -> None:
    if in_channels % p.groups or p.out_channels % p.groups:
        raise RuleError(f"groups={p.groups} must divide both the input channels ({in_channels}) "
                        f"and out_channels ({p.out_channels})")


def _check_conv(p: Params, in_channels: int, kernel: tuple, stride: tuple, dilation: tuple,
                padding: tuple | None) -> None:
    """Checks Conv1d and Conv2d share; each tuple holds one value per spatial axis (padding: None for a word)."""
    if min(kernel + stride + dilation) < 1 or p.out_channels < 1 or p.groups < 1:
        raise RuleError("kernel, stride, dilation, groups and out_channels must be positive")
    check_groups(p, in_channels)
    if padding is not None and min(padding) < 0:
        raise RuleError(f"padding must not be negative, got {p.padding}")
    if p.padding == "same" and set(stride) != {1}:
        raise RuleError("padding 'same' needs stride 1", hint="give the padding as a number instead")


class _Conv(Op):
    """What Conv1d and Conv2d share: counts and lowering; a subclass gives `module` and `kernel_volume`."""
    module: str
    fresh_output = True

    def kernel_volume(self, p) -> int:
        raise NotImplementedError

    def count_params(self, p, inputs, out):
        weights = p.out_channels * (inputs[0].shape[1] // p.groups) * self.kernel_volume(p)
        return weights + (p.out_channels if p.bias else 0)

    def count_weights(self, p, inputs, out):
        return self.count_params(p.model_copy(update={"bias": False}), inputs, out)

    def count_macs(self, p, inputs, out):
        # per output element; a symbolic length counts one position (the figure is then per step)
        return per_sample(out.shape) * (inputs[0].shape[1] // p.groups) * self.kernel_volume(p)

    def lower(self, p, inputs, out):
        return ModuleCall(self.module, (inputs[0].shape[1], p.out_channels), conv_kwargs(p, _CONV_DEFAULTS))


@register
class Conv2d(_Conv):
    name = "conv2d"
    module = "nn.Conv2d"
    Params = Conv2dParams
    doc = "2-D convolution over [N, C, H, W]; in_channels is inferred."

    def infer(self, p, inputs):
        (x,) = inputs
        expect_rank(x, 4, "[N, C, H, W]")
        c = known(x.shape[1], "the channel count")
        k, s, d = pair(p.kernel), pair(p.stride), pair(p.dilation)
        _check_conv(p, c, k, s, d, None if p.padding in ("same", "valid") else pair(p.padding))
        pad = conv_padding(p, k)
        hw = []
        for i, axis in enumerate(("height", "width")):
            size = x.shape[2 + i]
            if not isinstance(size, int):  # H, H/2: a window that keeps or divides it
                hw.append(size if p.padding == "same" else window_length(size, k[i], s[i], pad[i], d[i], what=axis))
                continue
            span = d[i] * (k[i] - 1) + 1
            if span > size + 2 * pad[i]:
                raise RuleError(
                    f"kernel {k[0]}x{k[1]}"
                    + (f" (dilation {d[i]}: spans {span})" if d[i] > 1 else "")
                    + f" is larger than the padded input {axis} {size + 2 * pad[i]} (input {x})",
                    hint="use a smaller kernel, add padding, or remove a pooling layer before this one")
            hw.append(window_out(size, k[i], s[i], pad[i], d[i]) if p.padding != "same" else size)
        return TensorInfo((x.shape[0], p.out_channels, *hw), x.dtype)

    def kernel_volume(self, p):
        kh, kw = pair(p.kernel)
        return kh * kw

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
class Conv1d(_Conv):
    name = "conv1d"
    module = "nn.Conv1d"
    Params = Conv1dParams
    doc = "1-D convolution over [N, C, L] (L may be symbolic where the window keeps it); in_channels is inferred."

    def infer(self, p, inputs):
        (x,) = inputs
        expect_rank(x, 3, "[N, C, L]")
        c = known(x.shape[1], "the channel count")
        _check_conv(p, c, (p.kernel,), (p.stride,), (p.dilation,),
                    (p.padding,) if isinstance(p.padding, int) else None)
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

    def kernel_volume(self, p):
        return p.kernel

    def label(self, p):
        return f"{self.name} {p.kernel}" + (f"/{p.stride}" if p.stride != 1 else "") + f" {p.out_channels}"
