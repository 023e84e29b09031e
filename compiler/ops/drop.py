"""Stochastic depth (Huang et al., 2016, "Deep Networks with Stochastic
Depth"): drops a residual branch while training; the identity in eval mode."""
from __future__ import annotations

import inspect
from typing import Literal

import torch
from torch import nn

from ..errors import RuleError
from .base import ModuleCall, Op, Params, register


class StochasticDepthParams(Params):
    p: float
    mode: Literal["row", "batch"] = "row"  # per sample, or the whole batch (torchvision's modes)


class StochasticDepth(nn.Module):
    """Zeroes the branch for a sample ('row') or the whole batch ('batch') with
    probability p while training, scaling what is kept by 1 / (1 - p), as
    torchvision.ops.stochastic_depth does; the identity in eval mode."""

    def __init__(self, p: float, mode: str = "row"):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        shape = [x.shape[0]] + [1] * (x.dim() - 1) if self.mode == "row" else [1] * x.dim()
        keep = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1.0 - self.p)
        return x * keep.div_(1.0 - self.p)

    def extra_repr(self):
        return f"p={self.p}, mode={self.mode!r}"


@register
class StochasticDepthOp(Op):
    name = "stochastic_depth"
    Params = StochasticDepthParams
    doc = "Drops a residual branch with probability p while training; identity in eval mode."

    def infer(self, p, inputs):
        if not 0 <= p.p < 1:
            raise RuleError(f"p must be in [0, 1), got {p.p}")
        return inputs[0]

    def lower(self, p, inputs, out):
        # torch has no stochastic-depth layer; model.py carries this one's source.
        return ModuleCall("StochasticDepth", (p.p, p.mode), factory=lambda: StochasticDepth(p.p, p.mode),
                          helpers=(("StochasticDepth", inspect.getsource(StochasticDepth)),))
