"""The expanded graph: what every stage after `expand` works on."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import Frame, Loc

Dim = int | str  # a str dimension is symbolic: "N" (batch), "T" (time)
Shape = tuple[Dim, ...]


@dataclass(frozen=True)
class TensorInfo:
    shape: Shape
    dtype: str = "float32"

    def __str__(self) -> str:
        return format_shape(self.shape)


def format_shape(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


@dataclass
class Node:
    """One op after expansion. `name` is the dotted path through block
    instances (`layer1.0.conv1`), which is also its module path."""

    name: str
    op: str
    params: dict[str, Any]
    inputs: list[str]
    loc: Loc
    param_locs: dict[str, Loc] = field(default_factory=dict)
    trace: tuple[Frame, ...] = ()
    attrs: Any = None  # the op's validated parameters, set by `shapes`
    out: TensorInfo | None = None  # set by `shapes`
    n_params: int = 0
    macs: int = 0


@dataclass
class Graph:
    name: str
    variant: str | None
    source: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, str]  # output name -> node (or input) name
    nodes: dict[str, Node]  # in definition order, which is a topological order once checked
    input_locs: dict[str, Loc] = field(default_factory=dict)
    output_locs: dict[str, Loc] = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def tensor(self, name: str) -> TensorInfo:
        return self.inputs[name] if name in self.inputs else self.nodes[name].out
