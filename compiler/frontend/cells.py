"""Cells: a block with `state` runs once per time step over a sequence.

An instance of a cell expands into a `scan` node whose body is the cell's
own per-step graph: its inputs are the block's inputs at one step ([N, F])
and the states at the previous step ([N, *shape]); its outputs are the
block's outputs and, for each state, the node whose output is the state at
the next step (named `state'`).  The recurrence is that declared edge from
`next` back to the state, which is not an edge of either graph: a cycle
among the cell's nodes is still an error.  One `tuple_item` node per output
and final state makes them readable as `instance.output` and
`instance.<state>`.
"""
from __future__ import annotations

from typing import Any, Protocol

from ..errors import Collector, Loc
from ..ir import Graph, Node, TensorInfo, next_state
from .schema import BlockSpec
from .scope import Builder, Call, InstanceSym, NodeSym, Ref, Resolver, Scope


class Expanding(Protocol):
    """What a cell's expansion uses of the expander."""

    errors: Collector
    resolver: Resolver
    file: str

    def evaluate(self, value: Any, env: dict, loc: Loc | None) -> Any: ...

    def eval_ref(self, text: Any, env: dict, loc: Loc | None) -> str: ...

    def expand_nodes(self, owner: BlockSpec, scope: Scope, prev: Ref) -> Ref: ...

    def block_outputs(self, block: BlockSpec, inner: Scope, last: Ref, single: str) -> tuple[dict[str, Ref], str | None]: ...


def expand_cell(ex: Expanding, call: Call):
    """Expand one cell instance: the scan node `call.full`, with the cell's
    step graph as its body, and the nodes of its results."""
    block, scope = call.block, call.scope
    if len(call.inputs) not in (len(block.inputs), len(block.inputs) + 1):
        ex.errors.error(f"cell '{call.block_name}' takes {len(block.inputs)} sequence input(s) "
                        f"({', '.join(block.inputs)}), and optionally the lengths, got {len(call.inputs)}",
                        loc=call.loc, node=call.full, trace=scope.trace, hint="list them in order under 'in:'")
        return None
    if call.full in scope.builder.nodes:
        ex.errors.error(f"duplicate node name '{call.full}'", loc=call.loc, node=call.full, trace=scope.trace)
        return None
    body, states, outputs, state_locs = _step_graph(ex, call)
    params = {"block": call.block_name, "step_inputs": list(block.inputs), "states": states,
              "outputs": list(outputs)}
    scan = Node(call.full, "scan", params, [], call.loc, state_locs, call.trace, body=body, synthetic=True)
    scope.builder.add(scan, call.inputs)
    if call.tainted:
        ex.resolver.mark_broken(scan)

    outer = Scope(call.env, call.full + ".", call.trace, scope.builder)
    results = list(outputs) + [s["name"] for s in states]
    for index, item in enumerate(results):
        item_full = f"{call.full}.{item}"
        scope.builder.nodes[item_full] = Node(item_full, "tuple_item", {"index": index}, [call.full], call.loc,
                                              {}, call.trace, synthetic=True)
        outer.symbols[item] = NodeSym(item_full)
    sym = InstanceSym(outer, {k: Ref(outer, k, call.loc) for k in results}, results[0])
    return sym, Ref(scope, call.name, call.loc)


def _step_graph(ex: Expanding, call: Call):
    """The cell's per-step graph, its states (name, shape, init), the names
    of its per-step outputs, and where each state's `next` is written."""
    block = call.block
    # Cell nodes keep their local names (the expansion chain names the
    # instance); a name outside the cell is therefore unknown inside it.
    inner = Scope(call.env, "", call.trace, Builder(), tainted=call.tainted)
    placeholder = TensorInfo(())  # the scan's shape rule gives the step's values
    inputs: dict[str, TensorInfo] = {}
    for input_name in block.inputs:
        inner.symbols[input_name] = NodeSym(input_name)
        inputs[input_name] = placeholder
    states, next_refs, state_locs = [], [], {}
    for name, state in block.state.items():
        if name in inner.symbols:
            ex.errors.error(f"state '{name}' has the name of a cell input", loc=block.entry_key_loc("state", name),
                            node=call.full, trace=call.trace)
            continue
        inner.symbols[name] = NodeSym(name)
        inputs[name] = placeholder
        shape = ex.evaluate(state.shape, call.env, state.value_loc("shape"))
        states.append({"name": name, "shape": list(shape or ()), "init": state.init})
        loc = state.value_loc("next")
        next_refs.append((name, Ref(inner, ex.eval_ref(state.next, call.env, loc), loc)))
        state_locs[f"state.{name}"] = loc
    last = ex.expand_nodes(block, inner, Ref(inner, block.inputs[0], call.loc))

    out_refs, _ = ex.block_outputs(block, inner, last, "output")
    outputs = {}
    for k, ref in out_refs.items():
        resolved = ex.resolver.resolve(ref)
        if resolved is not None:
            outputs[k] = resolved
    for name, ref in next_refs:
        resolved = ex.resolver.resolve(ref)
        if resolved is not None:
            outputs[next_state(name)] = resolved
    ex.resolver.finish(inner.builder)
    body = Graph(call.block_name, None, ex.file, inputs, outputs, inner.builder.nodes,
                 instances=inner.builder.instances)
    return body, states, list(out_refs), state_locs
