"""The largest size each symbolic dimension can take: a table of L
positions narrowed to a sequence's length T serves any T up to L, and no
more.  Read after shapes are known; a server checks requests against it
before running them, as it checks token ids against the vocabulary."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph, walk
from ..ops import OPS


@dataclass(frozen=True)
class Bound:
    size: int  # the largest size the dimension may take
    node: str  # the node that sets it (the tightest when several do)
    op: str


def collect(graph: Graph) -> dict[str, Bound]:
    """{symbol: Bound} for every symbolic dim some op limits."""
    found: dict[str, Bound] = {}
    for holder, node in walk(graph):
        for symbol, size in OPS[node.op].bounds(node.attrs, holder.input_infos(node)).items():
            if symbol not in found or size < found[symbol].size:
                found[symbol] = Bound(size, node.name, node.op)
    return found
