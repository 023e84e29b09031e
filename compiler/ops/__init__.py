"""The op registry. Each module holds one family of ops, imported the first
time one of its ops is looked up in `OPS` (families.py says which module
holds which op)."""
from .base import (BODY, OPS, Body, BodyCosts, FunctionCall, Lowering, ModuleCall, Op, Params, SubgraphOp,
                   public_ops, register)

__all__ = ["BODY", "OPS", "Body", "BodyCosts", "FunctionCall", "Lowering", "ModuleCall", "Op", "Params",
           "SubgraphOp", "public_ops", "register"]
