"""What an op is, and the registry that holds them.

Adding an op is one small class in this package: its parameters (a pydantic
model whose fields have descriptions), its shape rule, its parameter and
multiply-add counts, its lowering to torch, and its properties (internal or
public, in-place variant, fresh output, label, weights, reference mapping).
Rules raise `RuleError`; the pass that calls them adds the node and position.

Ops import nothing of torch: a lowering names the torch module or function
(`nn.Conv2d`, `torch.relu`), and the backend resolves the name.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from ..ir import TensorInfo
from .families import FAMILIES


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class NoParams(Params):
    pass


@dataclass(frozen=True)
class ModuleCall:
    """Lower to a submodule `cls(*args, **kwargs)` called on the inputs.
    `cls` is a torch.nn class (`nn.Conv2d`) or one of the backend's runtime
    modules (`Scan`, `StochasticDepth`, `PackedLSTM`); an argument may be
    `BODY`, the module the backend builds from the node's body."""

    cls: str
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    # Indices into the module's result, applied in turn: nn.LSTM returns
    # (output, (h_n, c_n)), so (1, 0) selects h_n.
    select: tuple = ()


@dataclass(frozen=True)
class FunctionCall:
    """Lower to a call `fn(*inputs, *args, **kwargs)` of a function named
    `torch.X`, `F.X` (torch.nn.functional) or `operator.X`; with `pack=True`
    the inputs are passed as one list (torch.cat); with `fold=True` a binary
    fn is chained over all inputs (a + b + c)."""

    fn: str
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    pack: bool = False
    fold: bool = False


class _Body:
    def __repr__(self) -> str:
        return "BODY"


BODY = _Body()  # stands for the module built from the node's body, in a ModuleCall's arguments

Lowering = ModuleCall | FunctionCall


class Op:
    name: ClassVar[str]
    Params: ClassVar[type[Params]] = NoParams
    arity: ClassVar[int | tuple[int, int | None]] = 1  # exact, or (min, max|None)
    doc: ClassVar[str] = ""
    # Made by expansion only (a cell's scan): a spec cannot name it, and
    # `netspec ops` does not list it.
    internal: ClassVar[bool] = False
    # The output is a new tensor, never a view of an input: an activation that
    # is its only reader may overwrite it (as torchvision's ReLU(inplace=True)).
    fresh_output: ClassVar[bool] = False
    # verify: the torch.nn module this op is, built with its lowering's arguments.
    torch_reference: ClassVar[str | None] = None

    def infer(self, p: Any, inputs: list[TensorInfo]) -> TensorInfo:
        raise NotImplementedError

    def count_params(self, p: Any, inputs: list[TensorInfo], out: TensorInfo) -> int:
        return 0

    def count_macs(self, p: Any, inputs: list[TensorInfo], out: TensorInfo) -> int:
        """Multiply-adds for one sample (the batch dimension excluded)."""
        return 0

    def count_weights(self, p: Any, inputs: list[TensorInfo], out: TensorInfo) -> int:
        """Parameters without bias terms, as papers' tables count them
        (GoogLeNet's Table 1); an op without biases counts all of its own."""
        return self.count_params(p, inputs, out)

    def bounds(self, p: Any, inputs: list[TensorInfo]) -> dict[str, int]:
        """The largest size a symbolic dim of the inputs can take through this
        op ({'T': 64}: a table of 64 positions narrowed to T); {}: no limit."""
        return {}

    def lower(self, p: Any, inputs: list[TensorInfo], out: TensorInfo) -> Lowering | None:
        """The torch computation; None: the node is its input (identity)."""
        raise NotImplementedError

    def lower_in_place(self, p: Any, inputs: list[TensorInfo], out: TensorInfo) -> FunctionCall | None:
        """The same computation overwriting its input, if the op has one."""
        return None

    def label(self, p: Any) -> str:
        """The node's text in a graph picture."""
        return self.name

    def gate_rows(self, p: Any) -> tuple[str, ...] | None:
        """verify: the op's tensors whose rows are its output features (a
        linear's weight and bias), so a cell's gates map onto torch.nn's
        stacked weight_ih/weight_hh rows; None: its weights do not map."""
        return None


class Body(Protocol):
    """What a subgraph op's shape rule gets from the pass that calls it."""

    outputs: dict[str, str]  # the body's output names -> the nodes that give them

    def infer(self, inputs: dict[str, TensorInfo]) -> dict[str, TensorInfo]:
        """Infer the body with these input values; return its outputs'."""


@dataclass(frozen=True)
class BodyCosts:
    """The summed counts of a body's nodes, for one run of the body."""

    params: int
    macs: int


class SubgraphOp(Op):
    """An op that runs a graph of its own (the node's `body`), as ONNX's Scan.
    Its rules receive the body from the pass: they never call a pass."""

    def infer(self, p: Any, inputs: list[TensorInfo], body: Body) -> TensorInfo:  # type: ignore[override]
        raise NotImplementedError

    def count_params(self, p: Any, inputs: list[TensorInfo], out: TensorInfo,  # type: ignore[override]
                     body: BodyCosts) -> int:
        return body.params

    def count_macs(self, p: Any, inputs: list[TensorInfo], out: TensorInfo,  # type: ignore[override]
                   body: BodyCosts) -> int:
        return body.macs


class Registry(Mapping[str, Op]):
    """The ops by name.  It knows every name from `FAMILIES` and imports an
    op's family (its module, which registers the family's ops) the first
    time one of them is looked up; listing them all imports every family."""

    def __init__(self, families: dict[str, tuple[str, ...]]) -> None:
        self._family_of = {name: family for family, names in families.items() for name in names}
        self._ops: dict[str, Op] = {}

    def add(self, op: Op) -> None:
        if op.name in self._ops:
            raise ValueError(f"op '{op.name}' is already registered by {type(self._ops[op.name]).__qualname__}")
        if op.name not in self._family_of:
            raise ValueError(f"op '{op.name}' ({type(op).__module__}) is missing from compiler/ops/families.py")
        self._ops[op.name] = op

    def load_all(self) -> None:
        for family in dict.fromkeys(self._family_of.values()):
            import_module(f"{__package__}.{family}")

    def __getitem__(self, name: str) -> Op:
        if name not in self._ops and name in self._family_of:
            import_module(f"{__package__}.{self._family_of[name]}")
        return self._ops[name]

    def __contains__(self, name: object) -> bool:
        return name in self._family_of

    def __iter__(self) -> Iterator[str]:
        self.load_all()
        return iter(self._family_of)

    def __len__(self) -> int:
        return len(self._family_of)


OPS = Registry(FAMILIES)


def register(cls: type[Op]) -> type[Op]:
    """Register an op under `cls.name`; registering a name twice is a bug."""
    OPS.add(cls())
    return cls


def public_ops() -> dict[str, Op]:
    """The ops a spec may name, by name."""
    return {name: op for name, op in sorted(OPS.items()) if not op.internal}
