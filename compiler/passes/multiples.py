"""What each symbolic size must be a multiple of: an image of height H
through five stride-2 stages is H/32 high there, a whole size only when H is
a multiple of 32.  Read after shapes are known; a server refuses a request
whose sizes the model cannot divide before running it, as it refuses a
sequence longer than the model's position table."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..ir import Graph, TensorInfo, TupleInfo, dims, walk


@dataclass(frozen=True)
class Multiple:
    of: int  # the symbol must be a multiple of this
    node: str  # the first node whose size needs the largest factor of it
    size: str  # that size, spelled (H/32)


def _tensors(info: TensorInfo):
    yield info
    if isinstance(info, TupleInfo):
        for item in info.items:
            yield from _tensors(item)


def collect(graph: Graph) -> dict[str, Multiple]:
    """{symbol: Multiple} for every symbol some size divides (none for a symbol no stride divides)."""
    found: dict[str, Multiple] = {}
    for _, node in walk(graph):
        for info in _tensors(node.out) if node.out is not None else ():
            for dim in info.shape:
                need = dims.needed_multiple(dim) if isinstance(dim, str) else None
                if need is None:
                    continue
                symbol, k = need
                known = found.get(symbol)
                if known is None:
                    found[symbol] = Multiple(k, node.name, dim)
                elif known.of % k:
                    found[symbol] = Multiple(math.lcm(known.of, k), node.name, dim)
    return found
