"""Parameters and multiply-adds of every node, per sample (the batch
dimension excluded), from its op's counts.  A node with a body counts its
body's nodes (for one run of the body; the op scales by the steps)."""
from __future__ import annotations

from ..errors import InternalError
from ..ir import Graph
from ..ops import OPS, BodyCosts, SubgraphOp


def count(graph: Graph) -> None:
    for node in graph.nodes.values():
        op = OPS[node.op]
        ins = graph.input_infos(node)
        try:
            if isinstance(op, SubgraphOp):
                count(node.body)
                body = BodyCosts(sum(n.n_params for n in node.body.nodes.values()),
                                 sum(n.macs for n in node.body.nodes.values()))
                node.n_params = op.count_params(node.attrs, ins, node.out, body)
                node.macs = op.count_macs(node.attrs, ins, node.out, body)
            else:
                node.n_params = op.count_params(node.attrs, ins, node.out)
                node.macs = op.count_macs(node.attrs, ins, node.out)
        except Exception as e:  # the shapes passed, so a count that fails is our bug
            raise InternalError(f"counting '{node.op}' raised {type(e).__name__}: {e}", node.name, node.op,
                                node.loc) from e


def weights(graph: Graph, node) -> int:
    """The node's parameters without bias terms (papers' tables count so)."""
    if node.body is not None:
        return sum(weights(node.body, n) for n in node.body.nodes.values())
    return OPS[node.op].count_weights(node.attrs, graph.input_infos(node), node.out)
