"""The op registry. Importing this package registers every built-in op;
each module holds one family."""
from . import activation, channels, conv, drop, elementwise, linear, merge, norm, pool, recurrent, reshape  # noqa: F401
from .base import OPS, FunctionCall, ModuleCall, Op, Params, register

__all__ = ["OPS", "Op", "Params", "ModuleCall", "FunctionCall", "register"]
