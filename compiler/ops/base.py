"""What an op is, and the registry that holds them.

Adding an op is one small class: its parameters (a pydantic model), its shape
rule, its parameter and multiply-add counts, and its torch lowering.  Rules
raise `RuleError`; the shape stage adds the node and position.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict

from ..errors import RuleError
from ..ir import Shape, TensorInfo


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    pass


@dataclass
class ModuleCall:
    """Lower to a submodule `torch.nn.<cls>(*args, **kwargs)` called on the
    inputs. `cls` may be a dotted path into torch (e.g. 'nn.Conv2d')."""

    cls: str
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    # Indices into the module's result, applied in turn: nn.LSTM returns
    # (output, (h_n, c_n)), so (1, 0) selects h_n.
    select: tuple = ()
    # A module that is not in torch.nn (a cell's scan): `factory()` builds it,
    # and `helpers` holds the source of the classes model.py must define.
    factory: Callable | None = None
    helpers: tuple = ()


@dataclass
class FunctionCall:
    """Lower to a function call `fn(*inputs, *args, **kwargs)`; with
    `pack=True` the inputs are passed as one list (torch.cat); with
    `fold=True` a binary fn is chained over all inputs (a + b + c)."""

    fn: Callable
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    pack: bool = False
    fold: bool = False


Lowering = ModuleCall | FunctionCall


class Op:
    name: ClassVar[str]
    Params: ClassVar[type[Params]] = NoParams
    arity: ClassVar[int | tuple[int, int | None]] = 1  # exact, or (min, max|None)
    doc: ClassVar[str] = ""

    def infer(self, p: Any, inputs: list[TensorInfo]) -> TensorInfo:
        raise NotImplementedError

    def count_params(self, p: Any, inputs: list[TensorInfo], out: TensorInfo) -> int:
        return 0

    def count_macs(self, p: Any, inputs: list[TensorInfo], out: TensorInfo) -> int:
        """Multiply-adds for one sample (the batch dimension excluded)."""
        return 0

    def lower(self, p: Any, inputs: list[TensorInfo], out: TensorInfo) -> Lowering:
        raise NotImplementedError


OPS: dict[str, Op] = {}


def register(cls: type[Op]) -> type[Op]:
    """Register an op under `cls.name`; registering a name twice is a bug."""
    if cls.name in OPS:
        raise ValueError(f"op '{cls.name}' is already registered by {type(OPS[cls.name]).__qualname__}")
    OPS[cls.name] = cls()
    return cls


# Helpers shared by the shape rules.

def pair(v: int | list | tuple) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    return (int(v[0]), int(v[1]))


def expect_rank(x: TensorInfo, rank: int, what: str) -> None:
    if len(x.shape) != rank:
        raise RuleError(f"expects a rank-{rank} input {what}, got {x}",
                        hint="add a 'flatten' before a linear layer, or check the previous node")


def known(dim, what: str) -> int:
    if not isinstance(dim, int):
        raise RuleError(f"{what} must be a known size, got symbolic '{dim}'")
    return dim


def per_sample(shape: Shape) -> int:
    """Elements per sample: the product of all dims but a symbolic batch."""
    dims = shape[1:] if shape and isinstance(shape[0], str) else shape
    return math.prod(d for d in dims if isinstance(d, int))


def window_out(size: int, kernel: int, stride: int, pad: int, dilation: int = 1,
               ceil_mode: bool = False) -> int:
    """Output length of a sliding window: floor((L + 2p - d(k-1) - 1)/s) + 1,
    with PyTorch's ceil_mode rule that the last window starts inside the input."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + pad:
            out -= 1
        return out
    return span // stride + 1
