"""Emit a torch.fx GraphModule.

Each block instance whose nodes one call can compute becomes a GraphModule
of its own (the tree of backend.tree), repeats that feed each other an
nn.Sequential of them; each node becomes one fx node in its instance's
graph, named after it, and an op with weights a submodule at the node's
dotted path, so state_dict keys follow the block nesting
(`layer2.0.conv1.weight`).  A node with a body (a cell's scan) holds the
module emitted from its body.  Weights are initialised from a
generator of the compiler's own, never from torch's global one.
"""
from __future__ import annotations

import functools
import operator
import re
from dataclasses import dataclass

import torch.fx as fx
from torch import nn

from ..errors import InternalError
from ..ir import Graph, Node
from ..ops import BODY, FunctionCall, ModuleCall
from . import init, resolve, shared_code, tree
from .lower import Lowerer


@dataclass
class _Shared:
    """What the modules of one emit share: the builder of their modules
    (backend.init) and the code fx generates for equal graphs."""

    builder: init.Builder
    codes: shared_code.Codes


def class_name(model: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", model) if part) or "Model"


def fx_name(node_name: str) -> str:
    return re.sub(r"\W", "_", node_name)


def build_module(call: ModuleCall, node: Node, shared: _Shared) -> nn.Module:
    """The module a ModuleCall names, its body (if it takes one) emitted first."""
    args = tuple(emit_body(node, shared) if a is BODY else a for a in call.args)
    try:
        return shared.builder.build(resolve.module_class(call.cls), args, dict(call.kwargs))
    except (TypeError, ValueError, RuntimeError) as e:
        raise InternalError(f"building {call.cls} failed: {e}", node.name, node.op, node.loc) from e


def emit_body(node: Node, shared: _Shared) -> fx.GraphModule:
    """A cell's step as an fx module: forward(x, *states) -> (*outputs, *next states)."""
    return _emit(node.body, shared, class_name(node.body.name) + "Step")


def emit(graph: Graph, seed: int | None = 0, initialise: bool = True) -> fx.GraphModule:
    """Build the module; weights are initialised as PyTorch does, from a
    generator seeded with `seed` (None: a random seed), or, without
    `initialise`, left as allocated for weights loaded next."""
    shared = _Shared(init.Builder(init.generator(seed) if initialise else None), shared_code.Codes())
    return _emit(graph, shared, class_name(graph.name))


def _emit(graph: Graph, shared: _Shared, name: str) -> fx.GraphModule:
    return _emit_scope(tree.build(graph), Lowerer(graph), shared, name)


def _emit_scope(scope: tree.Scope, lowerer: Lowerer, shared: _Shared, name: str) -> fx.GraphModule:
    """One module per block instance: its own fx graph, called by its parent's."""
    modules: dict[str, nn.Module] = {}
    g = shared.codes.graph()
    values: dict[str, fx.Node] = {src: g.placeholder(arg) for arg, src in scope.inputs.items()}
    for item in scope.items:
        if isinstance(item, tree.Leaf):
            _emit_leaf(item, scope, lowerer, shared, g, values, modules)
            continue
        members = [item.scope] if isinstance(item, tree.Call) else item.members
        children = [_emit_scope(m, lowerer, shared, class_name(m.instance.block)) for m in members]
        modules[item.path] = children[0] if isinstance(item, tree.Call) else nn.Sequential(*children)
        args = tuple(values[src] for src in members[0].inputs.values())
        out = g.create_node("call_module", item.path, args, {}, name=fx_name(item.path))
        results = members[-1].outputs
        if len(results) == 1:
            values[results[0]] = out
        for index, result in enumerate(results if len(results) > 1 else []):
            values[result] = g.create_node("call_function", operator.getitem, (out, index), {},
                                           name=fx_name(scope.local(result)))
    results = [values[src] for src in scope.outputs]
    g.output(results[0] if len(results) == 1 else tuple(results))
    g.lint()
    module = fx.GraphModule(modules, g, class_name=name)
    # fx assigns a dict's modules shallowest first, so `bottom` would come
    # before `down.0`; keep the order they compute in, as a hand-written
    # module registers them (state-dict order is what verify matches by).
    first = {}
    for path in modules:
        first.setdefault(path.split(".")[0], len(first))
    module._modules = dict(sorted(module._modules.items(), key=lambda kv: first.get(kv[0], len(first))))
    return module


def _emit_leaf(leaf: tree.Leaf, scope: tree.Scope, lowerer: Lowerer, shared: _Shared, g: fx.Graph,
               values: dict, modules: dict) -> None:
    node = leaf.node
    args = [values[src] for src in node.inputs]
    lowering = lowerer.lower(node, scope.computes_itself)
    if lowering is None:
        values[node.name] = args[0]
        return
    if isinstance(lowering, ModuleCall):
        modules[leaf.path] = build_module(lowering, node, shared)
        out = _call_module(g, leaf.path, lowering, args)
    elif isinstance(lowering, FunctionCall):
        out = _call_function(g, fx_name(leaf.path), lowering, args)
    else:
        raise InternalError(f"lowered to {lowering!r}", node.name, node.op, node.loc)
    out.meta["netspec"] = node
    values[node.name] = out


def _call_module(g: fx.Graph, path: str, call: ModuleCall, args: list) -> fx.Node:
    if not call.select:
        return g.create_node("call_module", path, tuple(args), {}, name=fx_name(path))
    out = g.create_node("call_module", path, tuple(args), {}, name=fx_name(path) + "_all")
    for index in call.select:
        out = g.create_node("call_function", operator.getitem, (out, index), {}, name=fx_name(path))
    return out


def _call_function(g: fx.Graph, name: str, call: FunctionCall, args: list) -> fx.Node:
    fn = resolve.function(call.fn)
    if call.fold:
        return functools.reduce(lambda a, b: g.create_node("call_function", fn, (a, b), {}, name=name), args)
    call_args = (args, *call.args) if call.pack else (*args, *call.args)
    return g.create_node("call_function", fn, call_args, dict(call.kwargs), name=name)
