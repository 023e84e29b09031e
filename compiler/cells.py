"""Cells: a block with `state` runs once per time step over a sequence.

A cell is expanded once into its own per-step graph, whose inputs are the
block's inputs at one step ([N, F]) and the states at the previous step
([N, *shape]); the state's `next` node gives the state at this step.  The
recurrence is the declared edge from `next` back to the state, which is not
an edge of either graph: a cycle among the cell's nodes is still an error.

Shape inference runs the cell's graph with symbolic N and proves each state
keeps its shape from one step to the next.  The emitted `Scan` module loops
the cell over time, returning the sequence of per-step outputs and the final
states; with a lengths input a sequence's states stop changing after its
last step (masking), so its final states are those at its own end.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field

import torch
from torch import nn

from .errors import Collector, Diagnostic, Frame, Loc, SpecError
from .ir import Graph, TensorInfo


@dataclass
class State:
    name: str
    shape: tuple  # per sample: [N, *shape] at every step
    init: float
    next: str  # the cell node whose output is this state at the next step
    loc: Loc


@dataclass(eq=False)
class Cell:
    block: str
    instance: str
    graph: Graph  # the per-step graph; inputs: the block's inputs, then the states
    step_inputs: list[str]
    states: list[State]
    outputs: list[str]  # names of the per-step outputs, in graph.outputs
    loc: Loc
    trace: tuple[Frame, ...] = ()
    module: nn.Module | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # shown in reports and expanded specs
        return f"<cell '{self.block}'>"


@dataclass(frozen=True)
class TupleInfo(TensorInfo):
    """A node whose value is a tuple of tensors (the scan: the per-step
    outputs as sequences, then the final states); `shape` is the first's."""

    items: tuple[TensorInfo, ...] = ()


def expand_cell(ex, full: str, name: str, block_name: str, block, env: dict, trace, loc: Loc,
                scope, inputs: list, rep):
    """Expand instance `full` of the cell block into a Cell and the outer
    nodes: `full` (the scan) and one `full.<output>` per output and state."""
    from .expand import InstanceSym, NodeSym, Ref, Scope
    from .graph import check

    block_inputs = list(block.get("inputs") or ["x"])
    if len(inputs) not in (len(block_inputs), len(block_inputs) + 1):
        ex.errors.error(f"cell '{block_name}' takes {len(block_inputs)} sequence input(s) "
                        f"({', '.join(block_inputs)}), and optionally the lengths, got {len(inputs)}",
                        loc=loc, node=full, trace=scope.trace, hint="list them in order under 'in:'")
        return None
    states_map = block["state"]
    saved = ex.nodes, ex.pending
    ex.nodes, ex.pending = {}, []
    # Cell nodes keep their local names (the expansion chain names the
    # instance); a name outside the cell is therefore unknown inside it.
    inner = Scope(env, "", trace)
    placeholder = TensorInfo(())
    sub_inputs: dict[str, TensorInfo] = {}
    for input_name in block_inputs:
        inner.symbols[input_name] = NodeSym(input_name)
        sub_inputs[input_name] = placeholder
    states: list[State] = []
    for sname, sbody in states_map.items():
        if sname in inner.symbols:
            ex.errors.error(f"state '{sname}' has the name of a cell input", loc=states_map.key_locs[sname],
                            node=full, trace=trace)
            continue
        inner.symbols[sname] = NodeSym(sname)
        sub_inputs[sname] = placeholder
        shape = ex._eval(sbody["shape"], env, sbody.loc_of("shape"))
        states.append(State(sname, tuple(shape or ()), float(sbody.get("init", 0.0)), sbody["next"],
                            sbody.loc_of("next")))
    last = ex._expand_nodes(block["nodes"], inner, Ref(inner, block_inputs[0], loc))

    raw_out = block.get("outputs")
    if raw_out is None:
        out_refs = {"output": last}
    elif isinstance(raw_out, str):
        out_refs = {"output": Ref(inner, ex._eval_ref(raw_out, env, block.loc_of("outputs")),
                                  block.loc_of("outputs"))}
    else:
        out_refs = {k: Ref(inner, ex._eval_ref(v, env, raw_out.loc_of(k)), raw_out.loc_of(k))
                    for k, v in raw_out.items()}
    sub_outputs = {}
    for k, ref in out_refs.items():
        resolved = ex._resolve(ref)
        if resolved is not None:
            sub_outputs[k] = resolved
    for state in states:
        resolved = ex._resolve(Ref(inner, ex._eval_ref(state.next, env, state.loc), state.loc))
        if resolved is not None:
            state.next = resolved
            sub_outputs[f"{state.name}'"] = resolved
    for node, refs in ex.pending:
        resolved = [ex._resolve(r, node) for r in refs]
        node.inputs = [r for r in resolved if r is not None]
    sub_nodes = ex.nodes
    ex.nodes, ex.pending = saved

    graph = Graph(block_name, None, ex.file, sub_inputs, sub_outputs, sub_nodes)
    cell = Cell(block_name, full, graph, block_inputs, states, list(out_refs), loc, trace)
    if not ex.errors.errors:
        try:
            check(graph)  # arity, and cycles among the cell's nodes
        except SpecError as e:
            ex.errors.errors.extend(e.diagnostics)

    # The outer graph: the scan node, and one node per output and state.
    if full in ex.nodes:
        ex.errors.error(f"duplicate node name '{full}'", loc=loc, node=full, trace=scope.trace)
        return None
    from .ir import Node
    scan = Node(full, "scan", {"cell": cell}, [], loc, {}, trace)
    ex.nodes[full] = scan
    ex.pending.append((scan, inputs))
    outer = Scope(env, full + ".", trace)
    names = list(out_refs) + [s.name for s in states]
    for index, item in enumerate(names):
        item_full = f"{full}.{item}"
        node = Node(item_full, "tuple_item", {"index": index}, [full], loc, {}, trace)
        ex.nodes[item_full] = node
        ex.cell_items.add(item_full)
        outer.symbols[item] = NodeSym(item_full)
    outputs = {k: Ref(outer, k, loc) for k in names}
    sym = InstanceSym(outer, outputs, names[0])
    return sym, Ref(scope, name, loc)


def infer(cell: Cell, x: TensorInfo, lengths: TensorInfo | None) -> TupleInfo:
    """Shape-infer the cell for one step of `x` ([N, T, *F]) and prove every
    state keeps its shape; return the scan's value: the per-step outputs as
    sequences, then the final states."""
    from . import shapes

    batch, time = x.shape[0], x.shape[1]
    errors = Collector()
    if len(cell.step_inputs) != 1:
        raise SpecError(Diagnostic("a cell takes one sequence input", loc=cell.loc, node=cell.instance,
                                   trace=cell.trace))
    g = cell.graph
    g.inputs[cell.step_inputs[0]] = TensorInfo((batch, *x.shape[2:]), x.dtype)
    for s in cell.states:
        g.inputs[s.name] = TensorInfo((batch, *s.shape), x.dtype)
    shapes.infer(g)  # raises SpecError naming the cell's node and the instance
    for s in cell.states:
        before, after = g.inputs[s.name], g.tensor(s.next)
        if before.shape != after.shape or before.dtype != after.dtype:
            errors.error(f"state '{s.name}' changes shape from one step to the next: {before} at step t-1, "
                         f"{after} from '{s.next}' at step t", loc=s.loc, node=cell.instance, op="scan",
                         trace=cell.trace,
                         hint=f"'{s.next}' must produce the state's shape [N, "
                              f"{', '.join(map(str, s.shape))}]; check its out_features")
    errors.raise_if_any()
    items = [TensorInfo((batch, time, *g.tensor(g.outputs[k]).shape[1:]), x.dtype) for k in cell.outputs]
    items += [g.inputs[s.name] for s in cell.states]
    return TupleInfo(items[0].shape, x.dtype, tuple(items))


def build_step(cell: Cell) -> nn.Module:
    """The cell as an fx module: forward(x, *states) -> (*outputs, *next states)."""
    from . import emit

    g = dataclasses.replace(cell.graph, name=cell.block)
    gm = emit.emit(g, seed=None)
    return gm


class Scan(nn.Module):
    """Runs `cell` over dimension 1 of x ([N, T, ...]): returns the per-step
    outputs stacked over time, then the final states. With `lengths`, the
    states of sequence n stop at step lengths[n] - 1 and its outputs after
    that step are zero."""

    def __init__(self, cell: nn.Module, state_shapes: tuple, inits: tuple, outputs: int = 1):
        super().__init__()
        self.cell = cell
        self.state_shapes = [tuple(s) for s in state_shapes]
        self.inits = list(inits)
        self.outputs = outputs

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        if not torch.jit.is_scripting():  # TorchScript skips this branch unread
            if hasattr(torch.compiler, "is_exporting") and torch.compiler.is_exporting():  # torch >= 2.5
                return self._scan_op(x, lengths)
        states = self._initial_states(x)
        per_step: list[list[torch.Tensor]] = [[] for _ in range(self.outputs)]
        for t in range(x.shape[1]):
            outs, states = self._step(x[:, t], states, lengths, t)
            for store, o in zip(per_step, outs):
                store.append(o)
        return (*[torch.stack(store, 1) for store in per_step], *states)

    def _initial_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.full((x.shape[0], *shape), init, dtype=x.dtype, device=x.device)
                for shape, init in zip(self.state_shapes, self.inits)]

    def _step(self, x_t, states, lengths, t):
        """One step: (this step's outputs, the next states)."""
        result = self.cell(x_t, *states)
        outs, new = list(result[:self.outputs]), list(result[self.outputs:])
        if lengths is not None:
            alive = lengths > t  # [N]: which sequences are still running
            new = [torch.where(alive.view(-1, *([1] * (s.dim() - 1))), ns, s) for s, ns in zip(states, new)]
            outs = [torch.where(alive.view(-1, *([1] * (o.dim() - 1))), o, torch.zeros_like(o)) for o in outs]
        return outs, new

    def _scan_op(self, x: torch.Tensor, lengths: torch.Tensor | None):
        """The same loop as torch's scan operator, for torch.export: a Python
        loop over time would be unrolled and fix the number of steps, while
        the operator keeps it dynamic (it becomes ONNX's Scan)."""
        from torch._higher_order_ops.scan import scan

        steps = torch.arange(x.shape[1], device=x.device)

        def step(states, inputs):
            x_t, t = inputs
            outs, new = self._step(x_t, states, lengths, t)
            return new, [o.clone() for o in outs]  # scan's outputs may not alias its carried states

        states, per_step = scan(step, self._initial_states(x), [x.transpose(0, 1), steps])
        return (*[y.transpose(0, 1) for y in per_step], *states)


def scan_source() -> str:
    """The source of Scan for a standalone model.py."""
    return inspect.getsource(Scan)


class Code(str):
    """Source text that a constructor's arguments print as is (`LstmStep()`)."""

    def __repr__(self) -> str:
        return str(self)


def step_class_name(cell: Cell) -> str:
    from .emit import class_name
    return class_name(cell.block) + "Step"
