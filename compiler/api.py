"""The compiler as a library: run the stages on a file or text."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import emit, graph as graph_stage, shapes
from .errors import Diagnostic, SpecError
from .expand import expand
from .ir import Graph, TensorInfo
from .load import load_file, load_text
from .validate import validate


@dataclass
class Model:
    name: str
    variant: str | None
    graph: Graph
    module: torch.nn.Module
    inputs: dict[str, TensorInfo] = field(default_factory=dict)
    outputs: dict[str, TensorInfo] = field(default_factory=dict)

    @property
    def warnings(self) -> list[Diagnostic]:
        return self.graph.warnings


def vocabularies(graph: Graph) -> dict[str, int]:
    """{input: n} for every integer input that an embedding reads: the ids it
    accepts run from 0 to n - 1 (the smallest vocabulary when several read it).
    A server checks requests against these before batching them."""
    sizes: dict[str, int] = {}
    for node in graph.nodes.values():
        if node.op == "embedding" and node.inputs and node.inputs[0] in graph.inputs:
            name = node.inputs[0]
            sizes[name] = min(sizes.get(name, node.attrs.num_embeddings), node.attrs.num_embeddings)
    return sizes


def analyze_tree(tree, variant: str | None = None, outputs: list[str] | None = None) -> Graph:
    """Validate, expand, check and shape-infer a loaded tree; with `outputs`,
    keep only those outputs and the nodes they depend on."""
    spec = validate(tree)
    g = expand(spec, tree, variant)
    if outputs:
        graph_stage.select_outputs(g, outputs)
    graph_stage.check(g)
    shapes.infer(g)
    return g


def analyze_file(path: str | Path, variant: str | None = None, outputs: list[str] | None = None) -> Graph:
    return analyze_tree(load_file(path), variant, outputs)


def analyze_text(text: str, variant: str | None = None, file: str = "<string>") -> Graph:
    return analyze_tree(load_text(text, file), variant)


def build(g: Graph, seed: int | None = 0) -> Model:
    module = emit.emit(g, seed)
    return Model(g.name, g.variant, g, module, dict(g.inputs),
                 {k: g.tensor(v) for k, v in g.outputs.items()})


def compile_file(path: str | Path, variant: str | None = None, seed: int | None = 0,
                 outputs: list[str] | None = None) -> Model:
    return build(analyze_file(path, variant, outputs), seed)


def compile_text(text: str, variant: str | None = None, seed: int | None = 0, file: str = "<string>") -> Model:
    return build(analyze_text(text, variant, file), seed)


__all__ = ["Model", "SpecError", "analyze_file", "analyze_text", "compile_file", "compile_text", "build",
           "vocabularies"]
