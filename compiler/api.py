"""The compiler as a library: run the stages on a file or text.

    graph = analyze_file("specs/resnet.yaml", "50")   # checked, shapes and counts known; no torch
    model = build(graph)                              # model.module: a torch.fx GraphModule

Analysis imports no torch; `build` (and `compile_*`) do.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import Collector, Diagnostic, ResourceError, SpecError
from .frontend import expand, load_file, load_text, validate
from .frontend.load import Map
from .ir import Graph, TensorInfo, walk
from .passes import bounds, costs, multiples, shapes, signature, structure

if TYPE_CHECKING:
    import torch


@dataclass
class Model:
    name: str
    variant: str | None
    graph: Graph
    module: "torch.nn.Module"
    inputs: dict[str, TensorInfo] = field(default_factory=dict)
    outputs: dict[str, TensorInfo] = field(default_factory=dict)

    @property
    def warnings(self) -> list[Diagnostic]:
        return self.graph.warnings


def vocabularies(graph: Graph) -> dict[str, int]:
    """{input: n} for every integer input that an embedding (or a lookup) reads: the ids it
    accepts run from 0 to n - 1 (the smallest vocabulary when several read it).
    A server checks requests against these before batching them."""
    sizes: dict[str, int] = {}
    for node in graph.nodes.values():
        if node.op in ("embedding", "lookup") and node.inputs and node.inputs[0] in graph.inputs:
            name = node.inputs[0]
            # lookup reads the rows of a table node: [vocabulary, width]
            n = node.attrs.num_embeddings if node.op == "embedding" else graph.tensor(node.inputs[1]).shape[0]
            sizes[name] = min(sizes.get(name, n), n)
    return sizes


def dim_bounds(graph: Graph) -> dict[str, bounds.Bound]:
    """{symbol: Bound(size, node, op)}: the largest size of each symbolic
    dim that the graph limits (T <= 64 where a 64-row position table is
    narrowed to T).  A server refuses longer requests before running them."""
    return bounds.collect(graph)


def dim_multiples(graph: Graph) -> dict[str, multiples.Multiple]:
    """{symbol: Multiple(of, node)}: what each symbolic dim must be a multiple
    of for every size in the graph to be whole (H a multiple of 32 where five
    stride-2 stages make it H/32).  A server refuses other sizes before running them."""
    return multiples.collect(graph)


def dim_steps(graph: Graph) -> dict[str, int]:
    """{symbol: k}: the multiple of k each symbolic dim must be (dim_multiples
    without where); sizes chosen for a model (examples, tests) take multiples of it."""
    return {symbol: m.of for symbol, m in multiples.collect(graph).items()}


def fix_dims(graph: Graph, sizes: dict[str, int]) -> None:
    """Bind symbols to sizes ({'T': 128}) wherever the spec writes them: the
    inputs' shapes and shape parameters (a reshape's [N, T, 64]), so that
    the counts are those of one stated length rather than per position."""
    def bound(dims):
        return [sizes.get(d, d) if isinstance(d, str) else d for d in dims]

    graph.inputs = {name: TensorInfo(tuple(bound(info.shape)), info.dtype) for name, info in graph.inputs.items()}
    for _, node in walk(graph):
        node.params = {k: bound(v) if isinstance(v, list) else v for k, v in node.params.items()}


def analyze_tree(tree: Map, variant: str | None = None, outputs: list[str] | None = None,
                 dims: dict[str, int] | None = None) -> Graph:
    """Validate, expand, check, shape-infer and count a loaded tree; with
    `outputs`, keep only those outputs and the nodes they depend on; with
    `dims`, those symbolic input dims take the sizes given.
    Problems found before shapes are known are reported together."""
    spec = validate(tree)
    found = Collector()
    graph = expand(spec, variant, found, shapes.node_value)
    if dims:
        fix_dims(graph, dims)
    if outputs:
        try:
            structure.select_outputs(graph, outputs)
        except SpecError as e:
            found.extend(e.diagnostics)
    signature.check(graph, found)
    structure.check(graph, found)
    found.raise_if_any()
    shapes.infer(graph)
    costs.count(graph)
    return graph


def analyze_file(path: str | Path, variant: str | None = None, outputs: list[str] | None = None,
                 dims: dict[str, int] | None = None) -> Graph:
    return analyze_tree(load_file(path), variant, outputs, dims)


def analyze_text(text: str, variant: str | None = None, file: str = "<string>") -> Graph:
    return analyze_tree(load_text(text, file), variant)


def build(g: Graph, seed: int | None = 0, initialise: bool = True) -> Model:
    """The torch module of an analyzed graph; weights are initialised as
    PyTorch does, from a generator seeded with `seed` (None: a random seed),
    leaving torch's global generator untouched.  `initialise=False` draws
    nothing, for a caller that loads every weight next (drawing is most of
    the time a build takes: 0.33 of 0.36 s for ResNet-50)."""
    from .backend.emit import emit

    module = emit(g, seed, initialise)
    return Model(g.name, g.variant, g, module, dict(g.inputs), {k: g.tensor(v) for k, v in g.outputs.items()})


# The smallest spec that runs the whole backend: a convolution, a norm, an
# activation and a linear layer, traced by torch.fx.
_WARM_UP_SPEC = """name: warm_up
inputs: {x: {shape: [N, 1, 4, 4]}}
nodes:
  conv: {op: conv2d, out_channels: 2, kernel: 3}
  bn: {op: batchnorm2d}
  act: {op: relu}
  flat: {op: flatten}
  fc: {op: linear, out_features: 2}
outputs: {y: fc}
"""


def warm_up() -> None:
    """Build one tiny model, so that torch's lazily imported machinery (fx,
    its reference ops: about a second) is loaded before the models that
    count: a server calls this before loads that run under a time limit."""
    build(analyze_text(_WARM_UP_SPEC), seed=0)


def fold_batch_norm(module: "torch.nn.Module") -> int:
    """Fold each batch norm into the convolution before it, in place, for
    inference (the module goes into eval mode); return how many were folded.
    Outputs equal the unfolded module's up to rounding (backend/fold.py)."""
    from .backend.fold import fold_batch_norm as fold

    return fold(module)


def compile_file(path: str | Path, variant: str | None = None, seed: int | None = 0,
                 outputs: list[str] | None = None) -> Model:
    return build(analyze_file(path, variant, outputs), seed)


def compile_text(text: str, variant: str | None = None, seed: int | None = 0, file: str = "<string>") -> Model:
    return build(analyze_text(text, variant, file), seed)


__all__ = ["Model", "ResourceError", "SpecError", "analyze_file", "analyze_text", "compile_file", "compile_text", "build",
           "dim_bounds", "dim_multiples", "dim_steps", "fix_dims", "fold_batch_norm", "vocabularies", "warm_up"]
