"""The ops a cell instance expands into: `scan` runs the cell's per-step
graph (the node's body) over time, and `tuple_item` takes one of its results.
Both are internal: a spec writes an instance of a block with `state`."""
from __future__ import annotations

from difflib import get_close_matches

from pydantic import Field

from ..errors import RuleError
from ..ir import Dim, TensorInfo, TupleInfo, format_shape, next_state
from .base import BODY, FunctionCall, ModuleCall, Op, Params, SubgraphOp, register
from .sequence import check_lengths


class StateParams(Params):
    name: str
    shape: tuple[Dim, ...] = Field(description="per sample: the state is [N, *shape] at every step")
    init: float = Field(description="every element's value before the first step")


class ScanParams(Params):
    block: str = Field(description="the cell block")
    step_inputs: tuple[str, ...] = Field(description="the body's inputs that take one step of a sequence")
    states: tuple[StateParams, ...] = Field(description="the body's other inputs, and their outputs named 'state''")
    outputs: tuple[str, ...] = Field(description="the body's outputs collected over time")


@register
class Scan(SubgraphOp):
    name = "scan"
    Params = ScanParams
    arity = (1, 2)  # the sequence, and optionally the lengths
    internal = True
    doc = "A cell block run over time (written as an instance of a block with 'state')."

    def infer(self, p, inputs, body):
        x = inputs[0]
        if len(x.shape) < 3:
            raise RuleError(f"a cell runs over a sequence [N, T, features], got {x}")
        if len(inputs) > 1:
            check_lengths(inputs[1], x.shape[0])
        if len(p.step_inputs) != 1:
            raise RuleError("a cell takes one sequence input", hint="list one input under the block's 'inputs'")
        batch, time = x.shape[0], x.shape[1]
        step = {p.step_inputs[0]: TensorInfo((batch, *x.shape[2:]), x.dtype)}
        step.update({s.name: TensorInfo((batch, *s.shape), x.dtype) for s in p.states})
        outs = body.infer(step)
        for s in p.states:
            before, after = step[s.name], outs[next_state(s.name)]
            if before.shape != after.shape or before.dtype != after.dtype:
                source = body.outputs[next_state(s.name)]
                raise RuleError(f"state '{s.name}' changes shape from one step to the next: {before} at step "
                                f"t-1, {after} from '{source}' at step t", at=f"state.{s.name}",
                                hint=f"'{source}' must produce the state's shape "
                                     f"{format_shape(('N', *s.shape))}; check its out_features")
        items = [TensorInfo((batch, time, *outs[k].shape[1:]), x.dtype) for k in p.outputs]
        items += [step[s.name] for s in p.states]
        return TupleInfo(items[0].shape, x.dtype, tuple(items))

    def count_macs(self, p, inputs, out, body):
        # Per time step when T is symbolic, as the built-in recurrent ops.
        t = inputs[0].shape[1]
        return (t if isinstance(t, int) else 1) * body.macs

    def lower(self, p, inputs, out):
        shapes = tuple(tuple(s.shape) for s in p.states)
        inits = tuple(s.init for s in p.states)
        return ModuleCall("Scan", (BODY, shapes, inits, len(p.outputs)))


class ItemParams(Params):
    index: int | None = Field(None, description="the result taken, by position (a cell's)")
    name: str | None = Field(None, description="the result taken, by name (a split's part)")


@register
class TupleItem(Op):
    """Made by a cell instance for each of its outputs and final states, and
    by a reference to a named part of a node (`qkv.q` of a split)."""
    name = "tuple_item"
    Params = ItemParams
    internal = True
    doc = "One of a node's several results (written as 'instance.output', 'instance.<state>' or 'split.part')."

    def infer(self, p, inputs):
        index = self._index(p, inputs[0])
        return inputs[0].items[index]

    @staticmethod
    def _index(p, value: TensorInfo) -> int:
        if p.name is None:
            return p.index
        if not isinstance(value, TupleInfo) or not value.names:
            raise RuleError(f"'{p.name}' is not an output: the node has a single value", at="name",
                            hint="read the node itself, without the part after the dot")
        if p.name not in value.names:
            close = get_close_matches(p.name, value.names, n=1)
            raise RuleError(f"'{p.name}' is not one of the node's outputs: {', '.join(value.names)}",
                            at="name", hint=f"did you mean '{close[0]}'?" if close else None)
        return value.names.index(p.name)

    def lower(self, p, inputs, out):
        return FunctionCall("operator.getitem", (self._index(p, inputs[0]),))
