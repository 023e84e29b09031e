"""Ops that enlarge height and width: transposed convolution, upsampling,
pixel shuffle (decoders, U-Nets, FPNs)."""
from __future__ import annotations

from fractions import Fraction
from typing import Literal

from pydantic import Field

from ..errors import RuleError
from ..ir import TensorInfo, dims
from .base import FunctionCall, ModuleCall, Op, Params, register
from .conv import IntPair, check_groups, conv_kwargs
from .rules import expect_rank, known, pair, per_sample, window_label


class ConvTransposeParams(Params):
    out_channels: int = Field(description="output channels (in_channels is the input's)")
    kernel: IntPair = Field(description="window size: 2, or [height, width]")
    stride: IntPair = Field(1, description="the factor the input is spread by (U-Net: 2)")
    padding: IntPair = Field(0, description="rows and columns removed from each side of the output")
    output_padding: IntPair = Field(0, description="added to one side, to reach an odd size (smaller than stride)")
    groups: int = Field(1, description="groups of channels convolved separately")
    bias: bool = Field(True, description="learn an additive bias per output channel")


@register
class ConvTranspose2d(Op):
    name = "conv_transpose2d"
    Params = ConvTransposeParams
    doc = "Transposed 2-D convolution: H_out = (H - 1) * stride - 2 * padding + kernel + output_padding."
    fresh_output = True

    def infer(self, p, inputs):
        (x,) = inputs
        expect_rank(x, 4, "[N, C, H, W]")
        c = known(x.shape[1], "the channel count")
        k, s, pad, op = pair(p.kernel), pair(p.stride), pair(p.padding), pair(p.output_padding)
        if min(k + s) < 1 or p.out_channels < 1 or p.groups < 1 or min(pad + op) < 0:
            raise RuleError("kernel, stride, groups and out_channels must be positive, padding not negative")
        check_groups(p, c)
        if op[0] >= s[0] or op[1] >= s[1]:
            raise RuleError(f"output_padding {p.output_padding} must be smaller than the stride {p.stride}")
        hw = []
        for i, name in enumerate(("height", "width")):
            if not isinstance(x.shape[2 + i], int):
                hw.append(_spread(x.shape[2 + i], s[i], k[i] - s[i] - 2 * pad[i] + op[i], name))
                continue
            size = (x.shape[2 + i] - 1) * s[i] - 2 * pad[i] + k[i] + op[i]
            if size < 1:
                raise RuleError(f"padding {p.padding} leaves no output {name} for input {x}")
            hw.append(size)
        return TensorInfo((x.shape[0], p.out_channels, *hw), x.dtype)

    def count_params(self, p, inputs, out):
        (kh, kw) = pair(p.kernel)
        return inputs[0].shape[1] * (p.out_channels // p.groups) * kh * kw + (p.out_channels if p.bias else 0)

    def count_weights(self, p, inputs, out):
        return self.count_params(p.model_copy(update={"bias": False}), inputs, out)

    def count_macs(self, p, inputs, out):
        # Each input element meets a kernel of every output channel of its group.
        (kh, kw) = pair(p.kernel)
        return per_sample(inputs[0].shape) * (p.out_channels // p.groups) * kh * kw

    def lower(self, p, inputs, out):
        kwargs = conv_kwargs(p, {"stride": 1, "padding": 0, "output_padding": 0, "groups": 1})
        return ModuleCall("nn.ConvTranspose2d", (inputs[0].shape[1], p.out_channels), kwargs)

    def label(self, p):
        return f"{window_label('up-conv', p.kernel, None)} x{p.stride} {p.out_channels}"


def _scaled_by(size: str, factor: float) -> str:
    """A symbolic size times a whole factor (2) or one over a whole factor (0.5)."""
    exact = Fraction(factor).limit_denominator(1000)
    if float(exact) == factor and 1 in (exact.numerator, exact.denominator):
        scaled = dims.scale(size, exact)
        if scaled is not None:
            return scaled
        raise RuleError(f"cannot scale the symbolic size '{size}'",
                        hint="only a symbol or a multiple of one (H, H/2, 2*H) can be scaled; declare a known size")
    raise RuleError(f"scale {factor:g} of the symbolic size '{size}' is not whole: the output size would depend "
                    f"on rounding", hint="scale symbolic sizes by a whole number (2) or one over it (0.5)")


def _spread(size: str, stride: int, offset: int, name: str) -> str:
    """A transposed convolution over a symbolic size L: L * stride + offset, accepted where offset is 0
    (kernel = stride, no padding: U-Net's 2x2/2 up-convolution)."""
    if offset:
        raise RuleError(f"a transposed convolution over the symbolic {name} '{size}' gives "
                        f"{dims.scale(size, Fraction(stride)) or f'{stride}*({size})'} {'+' if offset > 0 else '-'} {abs(offset)}, "
                        "no multiple of it",
                        hint="choose kernel - 2 * padding + output_padding = stride (kernel 2, stride 2, no "
                             "padding), or declare a known size")
    return _scaled_by(size, stride)


class UpsampleParams(Params):
    scale: float | None = Field(None, description="the factor of height and width (2: twice as large)")
    size: IntPair | None = Field(None, description="or the output's [height, width]")
    mode: Literal["nearest", "bilinear", "bicubic"] = Field("nearest", description="how new pixels are filled")
    align_corners: bool | None = Field(None, description="bilinear/bicubic: the corner pixels' centres align")


@register
class Upsample(Op):
    name = "upsample"
    Params = UpsampleParams
    doc = "Resize [N, C, H, W] by `scale` or to `size` (F.interpolate: nearest, bilinear, bicubic)."

    def infer(self, p, inputs):
        (x,) = inputs
        expect_rank(x, 4, "[N, C, H, W]")
        if (p.scale is None) == (p.size is None):
            raise RuleError("give one of scale and size")
        if p.align_corners is not None and p.mode == "nearest":
            raise RuleError("align_corners applies to bilinear and bicubic only")
        if p.size is not None:
            hw = pair(p.size)
        else:
            if p.scale <= 0:
                raise RuleError(f"scale must be positive, got {p.scale}")
            hw = tuple(int(d * p.scale) if isinstance(d, int) else _scaled_by(d, p.scale) for d in x.shape[2:])
        if min((d for d in hw if isinstance(d, int)), default=1) < 1:
            raise RuleError(f"the output size {list(hw)} must be positive")
        return TensorInfo((*x.shape[:2], *hw), x.dtype)

    def lower(self, p, inputs, out):
        kwargs = {"size": p.size} if p.size is not None else {"scale_factor": p.scale}
        if p.mode != "nearest":
            kwargs["mode"] = p.mode
        if p.align_corners is not None:
            kwargs["align_corners"] = p.align_corners
        return FunctionCall("F.interpolate", (), kwargs)

    def label(self, p):
        return f"upsample {p.mode} x{p.scale:g}" if p.scale is not None else f"upsample {p.mode}"


class PixelShuffleParams(Params):
    factor: int = Field(description="r: [N, C r^2, H, W] -> [N, C, H r, W r]")


@register
class PixelShuffle(Op):
    name = "pixel_shuffle"
    Params = PixelShuffleParams
    doc = "Channels to space: [N, C r^2, H, W] -> [N, C, H r, W r]."

    def infer(self, p, inputs):
        (x,) = inputs
        expect_rank(x, 4, "[N, C, H, W]")
        c, r = known(x.shape[1], "the channel count"), p.factor
        if r < 1 or c % (r * r):
            raise RuleError(f"the channels ({c}) of input {x} must divide by factor^2 = {r * r}")
        return TensorInfo((x.shape[0], c // (r * r), *(d * r if isinstance(d, int) else _scaled_by(d, r)
                                                        for d in x.shape[2:])), x.dtype)

    def lower(self, p, inputs, out):
        return FunctionCall("F.pixel_shuffle", (p.factor,))
