"""Stochastic depth (Huang et al., 2016, "Deep Networks with Stochastic
Depth"): drops a residual branch while training; the identity in eval mode."""
from __future__ import annotations

from typing import Literal

from ..errors import RuleError
from .base import Op, Params, register


class StochasticDepthParams(Params):
    p: float
    mode: Literal["row", "batch"] = "row"  # per sample, or the whole batch (torchvision's modes)


@register
class StochasticDepth(Op):
    name = "stochastic_depth"
    Params = StochasticDepthParams
    doc = "Drops a residual branch with probability p while training; identity in eval mode."

    def infer(self, p, inputs):
        if not 0 <= p.p < 1:
            raise RuleError(f"p must be in [0, 1), got {p.p}")
        return inputs[0]

    def lower(self, p, inputs, out):
        # netspec emits inference modules, and torch has no stochastic-depth
        # layer (torchvision's would add a dependency the emitted code does
        # not have): in eval mode it is the identity, so it lowers to one.
        # The node stays in the graph, the report and the expanded spec.
        return None
