"""Stage 6: emit a torch.fx GraphModule.

Each node becomes one fx node named after it; ops with weights become
submodules at the node's dotted path, so state_dict keys follow the block
nesting (`layer2.0.conv1.weight`) and the generated `forward` reads like
hand-written PyTorch.
"""
from __future__ import annotations

import functools
import operator
import re

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .errors import InternalError
from .ir import Graph
from .ops import OPS, FunctionCall, ModuleCall


def class_name(model: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", model) if part) or "Model"


def fx_name(node_name: str) -> str:
    return re.sub(r"\W", "_", node_name)


def resolve_module(cls: str) -> type[nn.Module]:
    """'nn.Conv2d' -> torch.nn.Conv2d."""
    obj = torch
    for part in cls.split("."):
        obj = getattr(obj, part)
    return obj


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


def emit(graph: Graph, seed: int | None = 0) -> fx.GraphModule:
    """Build the module; weights are initialised as PyTorch does, from `seed`
    (None: from the current global generator)."""
    if seed is not None:
        torch.manual_seed(seed)
    root = nn.Module()
    g = fx.Graph()
    values: dict[str, fx.Node] = {}
    for name in graph.inputs:
        values[name] = g.placeholder(name)
    for node in graph.nodes.values():
        ins = [graph.tensor(src) for src in node.inputs]
        args = [values[src] for src in node.inputs]
        try:
            lowering = OPS[node.op].lower(node.attrs, ins, node.out)
        except Exception as e:  # a lowering that fails after shape inference passed is our bug
            raise InternalError(f"lowering node '{node.name}' ({node.op}) failed: {e}") from e
        if lowering is None:
            values[node.name] = args[0]
            continue
        if isinstance(lowering, ModuleCall):
            module = lowering.factory() if lowering.factory else \
                resolve_module(lowering.cls)(*lowering.args, **lowering.kwargs)
            set_submodule(root, node.name, module)
            if lowering.select:
                out = g.create_node("call_module", node.name, tuple(args), {}, name=fx_name(node.name) + "_all")
                for index in lowering.select:
                    out = g.create_node("call_function", operator.getitem, (out, index), {},
                                        name=fx_name(node.name))
            else:
                out = g.create_node("call_module", node.name, tuple(args), {}, name=fx_name(node.name))
        elif isinstance(lowering, FunctionCall):
            if lowering.pack:
                call_args = (args, *lowering.args)
            elif lowering.fold:
                out = functools.reduce(
                    lambda a, b: g.create_node("call_function", lowering.fn, (a, b), {}, name=fx_name(node.name)),
                    args)
                out.meta["netspec"] = node
                values[node.name] = out
                continue
            else:
                call_args = (*args, *lowering.args)
            out = g.create_node("call_function", lowering.fn, call_args, dict(lowering.kwargs),
                                name=fx_name(node.name))
        else:
            raise InternalError(f"op '{node.op}' lowered to {lowering!r}")
        out.meta["netspec"] = node
        values[node.name] = out
    results = [values[src] for src in graph.outputs.values()]
    g.output(results[0] if len(results) == 1 else tuple(results))
    _activations_in_place(g, root)
    g.lint()
    return fx.GraphModule(root, g, class_name=class_name(graph.name))


# Activations that may overwrite their input, as torchvision's nn.ReLU(inplace=True)
# does: saving a fresh activation-sized tensor per layer is measurable on the CPU.
_IN_PLACE = {torch.relu: (torch.relu_, {}), F.relu6: (F.relu6, {"inplace": True}),
             F.leaky_relu: (F.leaky_relu, {"inplace": True}), F.hardswish: (F.hardswish, {"inplace": True}),
             F.hardsigmoid: (F.hardsigmoid, {"inplace": True}), F.silu: (F.silu, {"inplace": True})}
# Producers whose result is a fresh tensor, never a view of one that is used elsewhere.
_FRESH_MODULES = (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)
_FRESH_FUNCTIONS = {operator.add}


def _activations_in_place(g: fx.Graph, root: nn.Module) -> None:
    """Let an activation overwrite its input where nothing else reads it: the
    input is the fresh output of a convolution, linear layer, batch norm or sum,
    and the activation is its only user (not a graph output, not a branch)."""
    for node in g.nodes:
        if node.op != "call_function" or node.target not in _IN_PLACE or node.kwargs:
            continue
        producer = node.args[0]
        if not isinstance(producer, fx.Node) or len(producer.users) != 1:
            continue
        fresh = (producer.op == "call_module" and isinstance(root.get_submodule(producer.target), _FRESH_MODULES)) \
            or (producer.op == "call_function" and producer.target in _FRESH_FUNCTIONS)
        if fresh:
            node.target, node.kwargs = _IN_PLACE[node.target]
