"""The output shape of each node entry, shown at the end of its line.

An entry that became several nodes (a repeat, or a node of a block with
several instances) shows their shapes merged one dimension at a time, as the
zoo's comments write them: `[N, 64|128|256, 56|28|14, 56|28|14]`.  A block
entry shows what its instances output.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..frontend.load import Map
from ..ir import Shape, format_shape
from .outline import Entry, GraphIndex, Outline
from .spans import value_end


@dataclass(frozen=True)
class Hint:
    line: int  # 0-based
    col: int
    label: str


def entry_shapes(entry: Entry, index: GraphIndex) -> list[Shape]:
    if entry.block:
        return [n.out.shape for name in index.instances_of(entry)
                for n in index.instance_outputs(name) if n.out is not None]
    return [n.out.shape for n in index.nodes_of(entry) if n.out is not None]


def merge_shapes(shapes: list[Shape]) -> str:
    distinct = list(dict.fromkeys(shapes))
    if len({len(s) for s in distinct}) != 1:
        return " | ".join(format_shape(s) for s in distinct)
    dims = ["|".join(str(d) for d in dict.fromkeys(column)) for column in zip(*distinct)]
    return "[" + ", ".join(dims) + "]"


def shape_hints(positions: Outline, shapes_from: Outline, index: GraphIndex) -> list[Hint]:
    """Hints placed by `positions` (the text on screen) with the shapes of
    the graph `index` holds, whose entries `shapes_from` holds (the last
    analysis that checked): an entry is matched by its scope and name."""
    hints = []
    for entry in positions.entries:
        analysed = shapes_from.find(entry.scope, entry.name)
        shapes = entry_shapes(analysed, index) if analysed is not None else []
        if not shapes:
            continue
        line = entry.key.line - 1
        body = entry.body
        if isinstance(body, Map) and positions.lines[body.loc.line - 1][body.loc.col - 1:body.loc.col] == "{":
            line = value_end(positions.lines, body.loc.line - 1, body.loc.col - 1)[0]  # a flow mapping's last line
        hints.append(Hint(line, len(positions.lines[line]), merge_shapes(shapes)))
    return hints
