"""fx graphs that share the Python code fx generates for them.

Every instance of a block is a GraphModule of its own, and fx generates and
compiles a forward for each (GraphModule.recompile): ResNet-152's 55 graphs
are 4 distinct ones, and generating their code was about a sixth of its
emit.  A graph made here answers `python_code` with the code generated for a
graph of the same structure made with the same `Codes` (every node's op,
name, target, arguments and type, which are all the generated code reads),
so equal graphs generate once.  A graph carrying what emit does not
write (metadata fx prints, arguments other than nodes and plain values)
generates its own.  A graph edited afterwards (batch-norm
folding) generates anew, from what it is then.
"""
from __future__ import annotations

import os

import torch.fx as fx
from torch.fx.graph import CodeGen, PythonCode

from .keys import typed

# The node metadata emit writes, which fx's code generation does not read
# (it reads others: stack traces, annotations, is_wrapped, ...).
_OWN_META = {"netspec"}


class Codes:
    """The code generated for each structure, shared by the graphs it makes."""

    def __init__(self):
        self._by_structure: dict[tuple, PythonCode] = {}

    def graph(self) -> fx.Graph:
        return _SharingGraph(self._by_structure)


class _SharingGraph(fx.Graph):
    def __init__(self, by_structure: dict[tuple, PythonCode]):
        super().__init__()
        self._by_structure = by_structure

    def python_code(self, root_module: str, **options) -> PythonCode:
        key = _structure(self, root_module, options)
        if key is None:
            return super().python_code(root_module, **options)
        if key not in self._by_structure:
            self._by_structure[key] = super().python_code(root_module, **options)
        return self._by_structure[key]


def _structure(graph: fx.Graph, root_module: str, options: dict) -> tuple | None:
    """What fx generates the graph's code from; None for a graph whose code
    may read more (see the module's docstring), or with a code generator of
    its own (a pytree's), which is generated each time."""
    if type(graph._codegen) is not CodeGen or getattr(graph, "_co_fields", None) \
            or os.environ.get("FX_GRAPH_SHOW_META", "0") != "0":
        return None
    if any(n.meta.keys() - _OWN_META for n in graph.nodes):
        return None
    try:
        key = (root_module, tuple(sorted(options.items())),
               tuple((n.op, n.name, n.target, typed(n.args, _node), typed(n.kwargs, _node), n.type)
                     for n in graph.nodes))
        hash(key)
    except TypeError:  # a tensor, a dtype's repr, an unhashable target: not worth the risk
        return None
    return key


def _node(a) -> tuple:
    """An argument that is a node, by its name (the code reads no more of it)."""
    if isinstance(a, fx.Node):
        return fx.Node, a.name
    raise TypeError(a)
