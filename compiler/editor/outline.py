"""Where things are written in a spec: each node entry (of the top level and
of every block), the names each scope can refer to, and the graph nodes and
block instances an entry expanded into.

Positions come from the loaded tree (1-based `Loc`s); an entry spans the
lines from its key to the next key at its level or above.  Graph nodes and
instances are found by the position of the entry that made them
(`Node.loc`, `Frame.instance_loc`), so an entry inside a block finds all of
its expansions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from ..errors import Loc
from ..frontend.load import Map, Seq
from ..ir import Graph, Instance, Node, walk
from .spans import value_end

TOP = None  # the scope of the spec's own nodes; a block's scope is its name


@dataclass
class Entry:
    name: str
    scope: str | None
    key: Loc  # where its name is written
    body: Any  # what is written under it: a Map with 'op' or 'block'
    first: int = 0  # the lines it spans, 1-based, inclusive
    last: int = 0

    @property
    def op(self) -> str | None:
        value = self.body.get("op") if isinstance(self.body, Map) else None
        return value if isinstance(value, str) else None

    @property
    def block(self) -> str | None:
        value = self.body.get("block") if isinstance(self.body, Map) else None
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Reference:
    """A name written as a value that refers to something: a node or input
    (`in:`, `outputs:`, a state's `next:`) or a block (`block:`)."""

    kind: str  # "node" or "block"
    name: str
    scope: str | None
    loc: Loc
    end: tuple[int, int]  # 0-based line and column just after it


class Outline:
    def __init__(self, tree: Map, text: str):
        self.tree = tree
        self.lines = text.split("\n")
        self.entries: list[Entry] = []
        self.names: dict[str | None, dict[str, Loc]] = {TOP: {}}  # what a reference in each scope can name
        self.blocks: dict[str, Loc] = {}
        self.block_params: dict[str, dict[str, Any]] = {}
        self.inputs: dict[str, Loc] = {}  # the spec's inputs, where their names are written
        self.outputs: dict[str, Loc] = {}  # and its outputs
        self._read()
        self._by_name = {(e.scope, e.name): e for e in self.entries}

    # -- reading the tree ----------------------------------------------------

    def _read(self) -> None:
        tree, bounds = self.tree, []
        bounds += tree.key_locs.values()
        inputs = tree.get("inputs")
        if isinstance(inputs, Map):
            self.inputs = dict(inputs.key_locs)
            self.names[TOP].update(inputs.key_locs)
        self._nodes(tree.get("nodes"), TOP, bounds)
        outputs = tree.get("outputs")
        if isinstance(outputs, Map):
            self.outputs = dict(outputs.key_locs)
        elif "outputs" in tree:  # `outputs: fc`: one output, named 'output'
            self.outputs = {"output": tree.key_locs["outputs"]}
        blocks = tree.get("blocks")
        if isinstance(blocks, Map):
            bounds += blocks.key_locs.values()
            for name, block in blocks.items():
                self.blocks[name] = blocks.key_locs[name]
                self.names[name] = {}
                if not isinstance(block, Map):
                    continue
                bounds += block.key_locs.values()
                params = block.get("params")
                self.block_params[name] = dict(params) if isinstance(params, Map) else {}
                block_inputs = block.get("inputs", ["x"])
                if isinstance(block_inputs, Seq):
                    self.names[name].update({v: block_inputs.loc_of(i) for i, v in enumerate(block_inputs)
                                             if isinstance(v, str)})
                elif block_inputs == ["x"]:  # the default input, written nowhere: its block's name stands for it
                    self.names[name]["x"] = blocks.key_locs[name]
                state = block.get("state")
                if isinstance(state, Map):
                    self.names[name].update(state.key_locs)
                self._nodes(block.get("nodes"), name, bounds)
        self._spans(sorted(bounds, key=lambda loc: (loc.line, loc.col)))

    def _nodes(self, nodes: Any, scope: str | None, bounds: list) -> None:
        if not isinstance(nodes, Map):
            return
        for name, body in nodes.items():
            key = nodes.key_locs[name]
            self.entries.append(Entry(str(name), scope, key, body))
            self.names[scope][str(name)] = key
            bounds.append(key)

    def _spans(self, bounds: list[Loc]) -> None:
        for entry in self.entries:
            after = [b.line for b in bounds if b.line > entry.key.line and b.col <= entry.key.col]
            last = min(after) - 1 if after else len(self.lines)
            while last > entry.key.line and self.lines[last - 1].strip()[:1] in ("", "#"):
                last -= 1  # blank lines and comments after it belong to what follows
            entry.first, entry.last = entry.key.line, last

    # -- questions -----------------------------------------------------------

    def entry_at(self, line: int) -> Entry | None:
        """The node entry written on a (1-based) line."""
        for entry in self.entries:
            if entry.first <= line <= entry.last:
                return entry
        return None

    def find(self, scope: str | None, name: str) -> Entry | None:
        return self._by_name.get((scope, name))

    def references(self, entry: Entry) -> Iterator[tuple[str, Any, Loc]]:
        """(kind, value, where) for each value of an entry that names something."""
        body = entry.body
        if not isinstance(body, Map):
            return
        given = body.get("in")
        if isinstance(given, Seq):
            for i, value in enumerate(given):
                yield "node", value, given.loc_of(i)
        elif "in" in body:
            yield "node", given, body.loc_of("in")
        if "block" in body:
            yield "block", body.get("block"), body.loc_of("block")

    def output_references(self) -> Iterator[tuple[str | None, Any, Loc]]:
        """(scope, value, where) for the outputs of the spec and of its blocks, and the states' `next:`."""
        yield from _outputs(self.tree, TOP)
        blocks = self.tree.get("blocks")
        for name, block in blocks.items() if isinstance(blocks, Map) else ():
            if isinstance(block, Map):
                yield from _outputs(block, name)
                state = block.get("state")
                for value in state.values() if isinstance(state, Map) else ():
                    if isinstance(value, Map) and "next" in value:
                        yield name, value.get("next"), value.loc_of("next")

    def reference_at(self, line: int, col: int) -> Reference | None:
        """The reference under a (1-based) position."""
        entry = self.entry_at(line)
        found = [(kind, value, loc, entry.scope) for kind, value, loc in self.references(entry)] if entry else []
        found += [("node", value, loc, scope) for scope, value, loc in self.output_references()]
        for kind, value, loc, scope in found:
            if not isinstance(value, str) or loc.line != line or value.lstrip().startswith("$") or "${" in value:
                continue  # an expression names what it evaluates to: unknown until expanded
            end = value_end(self.lines, loc.line - 1, loc.col - 1)
            if loc.col <= col <= end[1] + 1:
                return Reference(kind, value, scope, loc, end)
        return None

    def target(self, ref: Reference) -> Loc | None:
        """Where the thing a reference names is defined."""
        if ref.kind == "block":
            return self.blocks.get(ref.name)
        names = self.names.get(ref.scope, {})
        return names.get(ref.name) or names.get(ref.name.split(".")[0])


def _outputs(owner: Map, scope: str | None) -> Iterator[tuple[str | None, Any, Loc]]:
    outputs = owner.get("outputs")
    if isinstance(outputs, Map):
        for key, value in outputs.items():
            yield scope, value, outputs.loc_of(key)
    elif "outputs" in owner:
        yield scope, outputs, owner.loc_of("outputs")


# -- what an entry became in the graph -------------------------------------

class GraphIndex:
    """The graph nodes and block instances each entry made, found by the
    position of the entry (`Node.loc`, `Frame.instance_loc`), and what each
    instance outputs; built once per analysis, in one walk of the graph."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.nodes_at: dict[Loc, list[Node]] = {}
        self.instances_at: dict[Loc, dict[str, None]] = {}  # ordered, without repeats
        for _, node in walk(graph):
            if not node.synthetic:
                self.nodes_at.setdefault(node.loc, []).append(node)
            for frame in node.trace:
                self.instances_at.setdefault(frame.instance_loc, {}).setdefault(frame.instance)
        self.members: dict[str, list[Node]] = {}  # instance name -> its nodes
        self.readers: dict[str, list[str]] = {}
        for node in graph.nodes.values():
            parts = node.name.split(".")
            for k in range(1, len(parts)):
                self.members.setdefault(".".join(parts[:k]), []).append(node)
            for src in node.inputs:
                self.readers.setdefault(src, []).append(node.name)
        for output in graph.outputs.values():
            self.readers.setdefault(output, []).append("")  # read by the caller of the model

    def nodes_of(self, entry: Entry) -> list[Node]:
        """The graph nodes an op entry expanded into (several when it repeats or
        sits in a block that has several instances)."""
        return self.nodes_at.get(entry.key, [])

    def instances_of(self, entry: Entry) -> list[str]:
        """The names of the block instances a block entry made, in graph order."""
        return list(self.instances_at.get(entry.key, ()))

    def instance_outputs(self, name: str) -> list[Node]:
        """The nodes of an instance whose values leave it: read by a node
        outside it, or an output of the model."""
        prefix = name + "."
        inside = self.members.get(name)
        if inside is None:  # a cell instance is one scan node
            return [self.graph.nodes[name]] if name in self.graph.nodes else []
        return [n for n in inside if any(not r.startswith(prefix) for r in self.readers.get(n.name, ()))]

    def instance(self, name: str) -> Instance | None:
        return self.graph.instances.get(name)
