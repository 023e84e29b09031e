"""A learned tensor of its own: a class token, a position embedding, a
layer scale. The node has no inputs; other nodes read it."""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from ..errors import RuleError
from ..ir import TensorInfo
from .base import ModuleCall, Op, Params, register


class ParameterParams(Params):
    shape: list[int] = Field(description="its shape, sizes only: [1, 1, 768] (broadcast over the batch)")
    init: Literal["zeros", "ones", "normal", "trunc_normal", "constant"] = Field(
        "zeros", description="its initial values")
    std: float = Field(0.02, description="standard deviation of normal and trunc_normal (cut at two of them)")
    value: float = Field(0.0, description="the value of init: constant (layer scale: 1e-6)")


@register
class Parameter(Op):
    name = "parameter"
    Params = ParameterParams
    arity = 0
    doc = "A learned tensor of a fixed shape (in: []): a class token, position embedding or layer scale."

    def infer(self, p, inputs):
        if not p.shape or min(p.shape) < 1:
            raise RuleError(f"shape {p.shape} must list positive sizes")
        if p.std <= 0:
            raise RuleError(f"std must be positive, got {p.std}")
        return TensorInfo(tuple(p.shape))

    def count_params(self, p, inputs, out):
        return math.prod(p.shape)

    def lower(self, p, inputs, out):
        kwargs = {"init": p.init}
        if p.init in ("normal", "trunc_normal"):
            kwargs["std"] = p.std
        if p.init == "constant":
            kwargs["value"] = p.value
        return ModuleCall("LearnedTensor", (tuple(p.shape),), kwargs)

    def label(self, p):
        return f"parameter {'x'.join(map(str, p.shape))}"
