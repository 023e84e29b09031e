"""Each node's lowering, as both emitters use it, with activations that
overwrite their input where nothing else reads it (as torchvision's
nn.ReLU(inplace=True) does: a fresh activation-sized tensor per layer is
measurable on the CPU).  Which ops may run in place, and whose outputs are
fresh, the ops say (`lower_in_place`, `fresh_output`)."""
from __future__ import annotations

from collections import Counter
from typing import Callable

from ..errors import InternalError
from ..ir import Graph, Node
from ..ops import OPS, FunctionCall, Lowering


class Lowerer:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.readers = Counter(src for n in graph.nodes.values() for src in n.inputs)
        self.readers.update(graph.outputs.values())

    def lower(self, node: Node, same_module: Callable[[str], bool] = lambda name: True) -> Lowering | None:
        """The node's lowering; an activation overwrites its input when the
        input is the fresh output of a node computed by the same module (a
        convolution's, linear layer's, batch norm's or sum's) and the
        activation is its only reader (not an output, not a branch)."""
        lowering = self._lower(node, in_place=False)
        if isinstance(lowering, FunctionCall) and not lowering.kwargs and node.inputs:
            producer = self.graph.nodes.get(node.inputs[0])
            if producer is not None and OPS[producer.op].fresh_output and self.readers[producer.name] == 1 \
                    and same_module(producer.name):
                return self._lower(node, in_place=True) or lowering
        return lowering

    def _lower(self, node: Node, in_place: bool) -> Lowering | None:
        op = OPS[node.op]
        try:
            if in_place:
                return op.lower_in_place(node.attrs, self.graph.input_infos(node), node.out)
            return op.lower(node.attrs, self.graph.input_infos(node), node.out)
        except Exception as e:  # shape inference passed, so a lowering that fails is our bug
            raise InternalError(f"lowering failed: {type(e).__name__}: {e}", node.name, node.op, node.loc) from e
