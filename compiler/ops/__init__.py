"""The op registry. Importing this package registers every built-in op;
each module holds one family."""
from . import (activation, attention, channels, conv, drop, layout, linear, merge, norm, pool,  # noqa: F401
               positions, reshape, resize, scan, sequence, tensor)
from .base import (BODY, OPS, Body, BodyCosts, FunctionCall, Lowering, ModuleCall, Op, Params, SubgraphOp,
                   public_ops, register)

__all__ = ["BODY", "OPS", "Body", "BodyCosts", "FunctionCall", "Lowering", "ModuleCall", "Op", "Params",
           "SubgraphOp", "public_ops", "register"]
