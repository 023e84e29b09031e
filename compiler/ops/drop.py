"""Stochastic depth (Huang et al., 2016, "Deep Networks with Stochastic
Depth"): drops a residual branch while training; the identity in eval mode.
torch has no such layer: the backend's runtime module `StochasticDepth`
implements it, and model.py carries its source."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..errors import RuleError
from .base import ModuleCall, Op, Params, register


class StochasticDepthParams(Params):
    p: float = Field(description="probability of dropping the branch while training")
    mode: Literal["row", "batch"] = Field("row", description="drop per sample ('row') or for the whole batch")


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
        return ModuleCall("StochasticDepth", (p.p, p.mode))
