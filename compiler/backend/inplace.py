"""Activations that overwrite their input where nothing else reads it, as
torchvision's nn.ReLU(inplace=True) does: a fresh activation-sized tensor
per layer is measurable on the CPU.  Which ops may run in place, and whose
outputs are fresh, the ops say (`lower_in_place`, `fresh_output`)."""
from __future__ import annotations

import torch.fx as fx

from ..ir import Graph
from ..ops import OPS
from . import resolve


def activations_in_place(g: fx.Graph, graph: Graph) -> None:
    """An activation overwrites its input when the input is a fresh output
    (a convolution's, linear layer's, batch norm's or sum's) and the
    activation is its only reader (not a graph output, not a branch)."""
    for node in g.nodes:
        ours = node.meta.get("netspec")
        if node.op != "call_function" or ours is None or node.kwargs:
            continue
        producer = node.args[0]
        if not isinstance(producer, fx.Node) or len(producer.users) != 1:
            continue
        source = producer.meta.get("netspec")
        if source is None or not OPS[source.op].fresh_output:
            continue
        in_place = OPS[ours.op].lower_in_place(ours.attrs, graph.input_infos(ours), ours.out)
        if in_place is not None:
            node.target, node.kwargs = resolve.function(in_place.fn), dict(in_place.kwargs)
            node.args = (producer, *in_place.args)
