"""Emit a torch.fx GraphModule.

Each node becomes one fx node named after it; ops with weights become
submodules at the node's dotted path, so state_dict keys follow the block
nesting (`layer2.0.conv1.weight`).  A node with a body (a cell's scan)
holds the module emitted from its body.  Weights are initialised from a
generator of the compiler's own, never from torch's global one.
"""
from __future__ import annotations

import functools
import operator
import re

import torch
import torch.fx as fx
from torch import nn

from ..errors import InternalError
from ..ir import Graph, Node
from ..ops import BODY, OPS, FunctionCall, Lowering, ModuleCall
from . import init, resolve
from .inplace import activations_in_place


def class_name(model: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", model) if part) or "Model"


def fx_name(node_name: str) -> str:
    return re.sub(r"\W", "_", node_name)


def lowering_of(graph: Graph, node: Node) -> Lowering | None:
    """The node's lowering; one that fails after shape inference passed is our bug."""
    try:
        return OPS[node.op].lower(node.attrs, graph.input_infos(node), node.out)
    except Exception as e:
        raise InternalError(f"lowering failed: {type(e).__name__}: {e}", node.name, node.op, node.loc) from e


def build_module(call: ModuleCall, node: Node, g: torch.Generator) -> nn.Module:
    """The module a ModuleCall names, its body (if it takes one) emitted first."""
    args = tuple(emit_body(node, g) if a is BODY else a for a in call.args)
    try:
        return init.build(resolve.module_class(call.cls), args, dict(call.kwargs), g)
    except (TypeError, ValueError, RuntimeError) as e:
        raise InternalError(f"building {call.cls} failed: {e}", node.name, node.op, node.loc) from e


def emit_body(node: Node, g: torch.Generator) -> fx.GraphModule:
    """A cell's step as an fx module: forward(x, *states) -> (*outputs, *next states)."""
    return _emit(node.body, g, class_name(node.body.name) + "Step")


def emit(graph: Graph, seed: int | None = 0) -> fx.GraphModule:
    """Build the module; weights are initialised as PyTorch does, from a
    generator seeded with `seed` (None: a random seed)."""
    return _emit(graph, init.generator(seed), class_name(graph.name))


def _emit(graph: Graph, gen: torch.Generator, name: str) -> fx.GraphModule:
    root = nn.Module()
    g = fx.Graph()
    values: dict[str, fx.Node] = {name: g.placeholder(name) for name in graph.inputs}
    for node in graph.nodes.values():
        args = [values[src] for src in node.inputs]
        lowering = lowering_of(graph, node)
        if lowering is None:
            values[node.name] = args[0]
            continue
        if isinstance(lowering, ModuleCall):
            set_submodule(root, node.name, build_module(lowering, node, gen))
            out = _call_module(g, node, lowering, args)
        elif isinstance(lowering, FunctionCall):
            out = _call_function(g, node, lowering, args)
        else:
            raise InternalError(f"lowered to {lowering!r}", node.name, node.op, node.loc)
        out.meta["netspec"] = node
        values[node.name] = out
    results = [values[src] for src in graph.outputs.values()]
    g.output(results[0] if len(results) == 1 else tuple(results))
    activations_in_place(g, graph)
    g.lint()
    return fx.GraphModule(root, g, class_name=name)


def _call_module(g: fx.Graph, node: Node, call: ModuleCall, args: list) -> fx.Node:
    if not call.select:
        return g.create_node("call_module", node.name, tuple(args), {}, name=fx_name(node.name))
    out = g.create_node("call_module", node.name, tuple(args), {}, name=fx_name(node.name) + "_all")
    for index in call.select:
        out = g.create_node("call_function", operator.getitem, (out, index), {}, name=fx_name(node.name))
    return out


def _call_function(g: fx.Graph, node: Node, call: FunctionCall, args: list) -> fx.Node:
    fn = resolve.function(call.fn)
    if call.fold:
        return functools.reduce(
            lambda a, b: g.create_node("call_function", fn, (a, b), {}, name=fx_name(node.name)), args)
    call_args = (args, *call.args) if call.pack else (*args, *call.args)
    return g.create_node("call_function", fn, call_args, dict(call.kwargs), name=fx_name(node.name))


def set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    *parents, leaf = path.split(".")
    parent = root
    for part in parents:
        child = getattr(parent, part, None) if part in parent._modules else None
        if child is None:
            child = nn.Module()
            parent.add_module(part, child)
        parent = child
    parent.add_module(leaf, module)
