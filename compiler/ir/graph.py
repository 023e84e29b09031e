"""The expanded graph every stage after `expand` works on.

A node may hold a graph of its own (`body`): a recurrent cell is the graph
of one time step inside the node that scans it over time, as ONNX's Scan
holds its body.  Passes recurse into bodies; ops never call passes.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Iterator

from ..errors import Frame, Loc
from .types import TensorInfo


@dataclass
class Node:
    """One op after expansion. `name` is the dotted path through block
    instances (`layer1.0.conv1`), which is also its module path."""

    name: str
    op: str
    params: dict[str, Any]  # as written, expressions evaluated
    inputs: list[str]
    loc: Loc
    param_locs: dict[str, Loc] = field(default_factory=dict)
    trace: tuple[Frame, ...] = ()
    body: Graph | None = None  # the subgraph the op runs (a cell's step)
    synthetic: bool = False  # made by expansion (a cell's scan and results), not written in the spec
    # Filled in by the passes, in the order they run:
    attrs: Any = None  # the op's validated parameters (passes.signature)
    out: TensorInfo | None = None  # its value (passes.shapes)
    n_params: int = 0  # parameters and multiply-adds per sample (passes.costs)
    macs: int = 0


@dataclass
class Instance:
    """One instance of a block: which block, the values it was given, and
    where its inputs come from (block input name -> node or input name).
    The backend nests modules by it, one class per block."""

    name: str  # its full name, the prefix of its nodes: 'layer1.0'
    block: str
    args: dict[str, Any]  # the block's parameters, as this instance sets them
    inputs: dict[str, str]
    given: frozenset[str] = frozenset()  # the parameters set by the instance (the others took their defaults)


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
    instances: dict[str, Instance] = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def tensor(self, name: str) -> TensorInfo:
        return self.inputs[name] if name in self.inputs else self.nodes[name].out

    def input_infos(self, node: Node) -> list[TensorInfo]:
        return [self.tensor(src) for src in node.inputs]


def next_state(name: str) -> str:
    """The name of the output of a cell's step graph that gives state `name`
    at the next step."""
    return f"{name}'"


def walk(graph: Graph) -> Iterator[tuple[Graph, Node]]:
    """Every node with the graph that holds it, bodies included (a body's
    nodes come right after the node that holds it)."""
    for node in graph.nodes.values():
        yield graph, node
        if node.body is not None:
            yield from walk(node.body)


def topological_order(after: dict[Hashable, Iterable[Hashable]]) -> list[Hashable]:
    """A topological order of the keys of `after` ({key: the keys that read
    it}) that keeps their order wherever the edges allow it (Kahn's
    algorithm, the ready key that comes first taken first). Keys on or
    behind a cycle are left out: a shorter order than `after` means one."""
    position = {key: i for i, key in enumerate(after)}
    waiting = {key: 0 for key in after}
    for readers in after.values():
        for reader in readers:
            waiting[reader] += 1
    ready = [position[key] for key, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    keys, order = list(after), []
    while ready:
        key = keys[heapq.heappop(ready)]
        order.append(key)
        for reader in after[key]:
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, position[reader])
    return order
