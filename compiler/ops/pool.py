"""Pooling: max and average (2-D and 1-D), adaptive average and global average.  Pooling
performs additions and comparisons only: it counts no multiply-adds."""
from __future__ import annotations

from typing import Optional, Union

from pydantic import Field

from ..errors import RuleError
from ..ir import TensorInfo
from .base import FunctionCall, ModuleCall, Op, Params, register
from .rules import expect_rank, known, pair, window_label, window_length, window_out

IntPair = Union[int, tuple[int, int]]


class PoolParams(Params):
    kernel: IntPair = Field(description="window size: 3, or [height, width]")
    stride: Optional[IntPair] = Field(None, description="step of the window (default: the kernel size, as in torch)")
    padding: IntPair = Field(0, description="added on each side, at most kernel // 2")
    ceil_mode: bool = Field(False, description="round the output size up (Caffe's pooling)")


class MaxPoolParams(PoolParams):
    dilation: IntPair = Field(1, description="spacing between window elements")


class AvgPoolParams(PoolParams):
    count_include_pad: bool = Field(True, description="average over the padding too")


def _check_pool(p, kernel: tuple, stride: tuple, dilation: tuple, padding: tuple) -> None:
    """Checks the 1-D and 2-D pools share; each tuple holds one value per spatial axis."""
    if min(kernel + stride + dilation) < 1 or min(padding) < 0:
        raise RuleError("kernel, stride and dilation must be positive, and padding not negative")
    if any(pad * 2 > k for pad, k in zip(padding, kernel)):
        raise RuleError(f"padding {p.padding} is more than half the kernel {p.kernel}",
                        hint="pooling padding may be at most kernel // 2")


def _pool_infer(p, x: TensorInfo) -> TensorInfo:
    expect_rank(x, 4, "[N, C, H, W]")
    k = pair(p.kernel)
    s = pair(p.stride if p.stride is not None else p.kernel)
    pad = pair(p.padding)
    d = pair(getattr(p, "dilation", 1))
    _check_pool(p, k, s, d, pad)
    hw = []
    for i, axis in enumerate(("height", "width")):
        size = x.shape[2 + i]
        if not isinstance(size, int):  # H, H/2: a window that keeps or divides it
            hw.append(window_length(size, k[i], s[i], pad[i], d[i], p.ceil_mode, what=axis))
            continue
        span = d[i] * (k[i] - 1) + 1
        if span > size + 2 * pad[i]:
            raise RuleError(f"pooling window {k[0]}x{k[1]} is larger than the padded input {axis} "
                            f"{size + 2 * pad[i]} (input {x})",
                            hint="use a smaller window, or fewer downsampling layers before this one")
        hw.append(window_out(size, k[i], s[i], pad[i], d[i], p.ceil_mode))
    return TensorInfo((x.shape[0], x.shape[1], *hw), x.dtype)


def _pool_kwargs(p, extra: dict) -> dict:
    kwargs = {"kernel_size": p.kernel}
    if p.stride is not None and p.stride != p.kernel:
        kwargs["stride"] = p.stride
    if p.padding != 0:
        kwargs["padding"] = p.padding
    if p.ceil_mode:
        kwargs["ceil_mode"] = True
    kwargs.update(extra)
    return kwargs


def _max_pool_kwargs(p) -> dict:
    return _pool_kwargs(p, {"dilation": p.dilation} if p.dilation != 1 else {})


def _avg_pool_kwargs(p) -> dict:
    return _pool_kwargs(p, {} if p.count_include_pad else {"count_include_pad": False})


class _Pool(Op):
    def infer(self, p, inputs):
        return _pool_infer(p, inputs[0])

    def label(self, p):
        return window_label(self.name, p.kernel, p.stride)


@register
class MaxPool2d(_Pool):
    name = "max_pool2d"
    Params = MaxPoolParams
    doc = "2-D max pooling."

    def lower(self, p, inputs, out):
        return ModuleCall("nn.MaxPool2d", (), _max_pool_kwargs(p))


@register
class AvgPool2d(_Pool):
    name = "avg_pool2d"
    Params = AvgPoolParams
    doc = "2-D average pooling."

    def lower(self, p, inputs, out):
        return ModuleCall("nn.AvgPool2d", (), _avg_pool_kwargs(p))


class Pool1dParams(Params):
    kernel: int = Field(description="window length")
    stride: Optional[int] = Field(None, description="step of the window (default: the kernel size, as in torch)")
    padding: int = Field(0, description="added at each end, at most kernel // 2")
    ceil_mode: bool = Field(False, description="round the output length up")


class MaxPool1dParams(Pool1dParams):
    dilation: int = Field(1, description="spacing between window elements")


class AvgPool1dParams(Pool1dParams):
    count_include_pad: bool = Field(True, description="average over the padding too")


class _Pool1d(Op):
    def infer(self, p, inputs):
        (x,) = inputs
        expect_rank(x, 3, "[N, C, L]")
        s = p.stride if p.stride is not None else p.kernel
        d = getattr(p, "dilation", 1)
        _check_pool(p, (p.kernel,), (s,), (d,), (p.padding,))
        length, span = x.shape[2], d * (p.kernel - 1) + 1
        if isinstance(length, int) and span > length + 2 * p.padding:
            raise RuleError(f"pooling window {p.kernel} is longer than the padded input length "
                            f"{length + 2 * p.padding} (input {x})",
                            hint="use a smaller window, or fewer downsampling layers before this one")
        out = window_length(length, p.kernel, s, p.padding, d, p.ceil_mode)
        return TensorInfo((x.shape[0], x.shape[1], out), x.dtype)

    def label(self, p):
        return window_label(self.name, (p.kernel,), p.stride)


@register
class MaxPool1d(_Pool1d):
    name = "max_pool1d"
    Params = MaxPool1dParams
    doc = "1-D max pooling over [N, C, L]."

    def lower(self, p, inputs, out):
        return ModuleCall("nn.MaxPool1d", (), _max_pool_kwargs(p))


@register
class AvgPool1d(_Pool1d):
    name = "avg_pool1d"
    Params = AvgPool1dParams
    doc = "1-D average pooling over [N, C, L]."

    def lower(self, p, inputs, out):
        return ModuleCall("nn.AvgPool1d", (), _avg_pool_kwargs(p))


class AdaptiveParams(Params):
    output_size: IntPair = Field(description="the output's height and width: 1, or [height, width]")


@register
class AdaptiveAvgPool2d(Op):
    name = "adaptive_avg_pool2d"
    Params = AdaptiveParams
    doc = "Average pooling to a fixed output size."

    def infer(self, p, inputs):
        (x,) = inputs
        expect_rank(x, 4, "[N, C, H, W]")
        if min(pair(p.output_size)) < 1:
            raise RuleError(f"output_size must be positive, got {p.output_size}")
        return TensorInfo((x.shape[0], x.shape[1], *pair(p.output_size)), x.dtype)

    def lower(self, p, inputs, out):
        return ModuleCall("nn.AdaptiveAvgPool2d", (p.output_size,))


class GlobalParams(Params):
    keepdim: bool = Field(False, description="keep the spatial dimensions as size 1: [N, C, 1, 1]")


@register
class GlobalAvgPool(Op):
    name = "global_avg_pool"
    Params = GlobalParams
    doc = "Mean over all spatial positions: [N, C, H, W] -> [N, C] (or [N, C, 1, 1] with keepdim)."

    def infer(self, p, inputs):
        (x,) = inputs
        if len(x.shape) < 3:
            raise RuleError(f"expects [N, C, ...spatial], got {x}")
        tail = (1,) * (len(x.shape) - 2) if p.keepdim else ()
        return TensorInfo((x.shape[0], x.shape[1], *tail), x.dtype)

    def lower(self, p, inputs, out):
        dims = tuple(range(2, len(inputs[0].shape)))
        return FunctionCall("torch.mean", (dims,), {"keepdim": True} if p.keepdim else {})
