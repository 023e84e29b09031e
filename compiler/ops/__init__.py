"""The op registry. Importing this package registers every built-in op;
each module holds one family."""
from . import activation, channels, conv, drop, linear, merge, norm, pool, reshape, scan, sequence  # noqa: F401
from .base import (BODY, OPS, Body, BodyCosts, FunctionCall, Lowering, ModuleCall, Op, Params, SubgraphOp,
                   public_ops, register)

__all__ = ["BODY", "OPS", "Body", "BodyCosts", "FunctionCall", "Lowering", "ModuleCall", "Op", "Params",
           "SubgraphOp", "public_ops", "register"]
