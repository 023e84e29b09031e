"""Names during expansion: what a local name in a scope stands for, and how
a reference (`layer1`, `stem.conv`, `features.2`, `run.h`) is followed to
the node it denotes.

References are resolved after the whole file is expanded, so a forward
reference (or a cycle, which the structure pass reports) is not mistaken
for an unknown name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any

from ..errors import Collector, Frame, Loc
from ..ir import Instance, Node
from .schema import BlockSpec


@dataclass
class Ref:
    scope: "Scope"
    text: str
    loc: Loc


@dataclass
class NodeSym:
    full: str


@dataclass
class AliasSym:
    """A block input: stands for whatever the instance was given."""
    ref: Ref


@dataclass
class InstanceSym:
    scope: "Scope"
    outputs: dict[str, Ref]
    default: str | None  # key into outputs, None if the block has several


@dataclass
class GroupSym:
    """A repeated node or block: `name` is the last repeat, `name.K` repeat K."""
    reps: list[Any]


@dataclass
class DisabledSym:
    loc: Loc
    condition: str


@dataclass
class FailedSym:
    """A node or instance whose expansion failed; its error is already
    reported, so references to it are dropped without a second one."""
    reason: str


@dataclass
class Builder:
    """The nodes of one graph being expanded (the model's, or a cell's step),
    and the references still to resolve once all of them exist."""

    nodes: dict[str, Node] = field(default_factory=dict)
    pending: list[tuple[Node, list[Ref]]] = field(default_factory=list)
    instances: dict[str, Instance] = field(default_factory=dict)
    instance_inputs: list[tuple[Instance, str, Ref]] = field(default_factory=list)
    inputs_of: dict[str, list[Ref]] = field(default_factory=dict)  # a node's references, by its name

    def add(self, node: Node, inputs: list[Ref]) -> None:
        self.nodes[node.name] = node
        self.pending.append((node, inputs))
        self.inputs_of[node.name] = inputs


@dataclass
class Scope:
    env: dict[str, Any]
    prefix: str
    trace: tuple[Frame, ...]
    builder: Builder
    symbols: dict[str, Any] = field(default_factory=dict)
    # An argument of the instance was reported (missing, misspelt): its nodes'
    # values are not to be trusted, so later checks leave them out.
    tainted: bool = False


class Resolver:
    """Follows references, reporting into `errors`; remembers the nodes
    whose inputs could not all be resolved (`is_broken`)."""

    def __init__(self, errors: Collector):
        self.errors = errors
        self._broken: set[int] = set()  # ids: a cell's node may share a name with one outside

    def mark_broken(self, node: Node) -> None:
        self._broken.add(id(node))

    def is_broken(self, node: Node) -> bool:
        return id(node) in self._broken

    def resolve(self, ref: Ref, node: Node | None = None, depth: int = 0, report: bool = True) -> str | None:
        """The full name of the node `ref` denotes, or None (reported unless
        `report` is false)."""
        fail = self._fail if report else _silent
        if depth > 100:
            return fail(ref, node, "block inputs refer to each other in a loop")
        sym, rest = lookup(ref.scope, ref.text)
        if sym is None:
            names = list(ref.scope.symbols)
            close = get_close_matches(ref.text, names, n=1)
            # node is None for what is not a node's input: an output, a cell's next state
            return fail(ref, node, f"unknown {'input' if node else 'node'} '{ref.text}'",
                              f"did you mean '{close[0]}'?" if close else
                              f"names defined here: {', '.join(names[:12])}{' ...' if len(names) > 12 else ''}")
        while True:
            if isinstance(sym, FailedSym):
                if node is not None:
                    self.mark_broken(node)
                return None
            if isinstance(sym, NodeSym) and not rest:
                return sym.full
            if isinstance(sym, NodeSym) and len(rest) == 1 and sym.full in ref.scope.builder.nodes:
                return self._part(sym.full, rest[0], ref)
            if isinstance(sym, AliasSym) and not rest:
                return self.resolve(sym.ref, node, depth + 1, report)
            if isinstance(sym, DisabledSym):
                return fail(ref, node, f"'{ref.text}' is switched off here (when: {sym.condition})",
                                  "give the node a condition that matches, or choose the input with an "
                                  "expression such as ${'a' if cond else 'b'}")
            if isinstance(sym, GroupSym):
                if rest and rest[0].isdigit():
                    idx = int(rest[0])
                    if idx >= len(sym.reps):
                        return fail(ref, node, f"'{ref.text}': there are only {len(sym.reps)} repeats")
                    sym, rest = sym.reps[idx], rest[1:]
                else:
                    active = [s for s in sym.reps if not isinstance(s, DisabledSym)]
                    sym = active[-1] if active else sym.reps[-1]
                continue
            if isinstance(sym, InstanceSym):
                return self._into_instance(sym, rest, ref, node, depth, report)
            return fail(ref, node, f"'{ref.text}' does not name a node")

    def _part(self, full: str, part: str, ref: Ref) -> str:
        """`node.part`: one of the node's several outputs (a split's).  Which
        ones a node has is its op's business: the item's shape rule checks
        the name, so this layer needs to know no op."""
        name = f"{full}.{part}"
        builder = ref.scope.builder
        if name not in builder.nodes:
            source = builder.nodes[full]
            builder.nodes[name] = Node(name, "tuple_item", {"name": part}, [full], ref.loc, {}, source.trace,
                                       synthetic=True)
        return name

    def _into_instance(self, sym: InstanceSym, rest: list[str], ref: Ref, node, depth, report) -> str | None:
        if rest and rest[0] in sym.outputs and len(rest) == 1:
            return self.resolve(sym.outputs[rest[0]], node, depth + 1, report)
        if rest:
            return self.resolve(Ref(sym.scope, ".".join(rest), ref.loc), node, depth + 1, report)
        if sym.default is None:
            return (self._fail if report else _silent)(
                ref, node, f"'{ref.text}' has several outputs: {', '.join(sym.outputs)}",
                f"name one, e.g. '{ref.text}.{next(iter(sym.outputs))}'")
        return self.resolve(sym.outputs[sym.default], node, depth + 1, report)

    def _fail(self, ref: Ref, node: Node | None, message: str, hint: str | None = None) -> None:
        if node is not None:
            self.mark_broken(node)
        self.errors.error(message, loc=ref.loc, node=node.name if node else None,
                          op=node.op if node else None, trace=node.trace if node else ref.scope.trace, hint=hint)
        return None

    def finish(self, builder: Builder) -> None:
        """Resolve every pending reference of a builder's nodes and instances."""
        for node, refs in builder.pending:
            resolved = [self.resolve(r, node) for r in refs]
            node.inputs = [r for r in resolved if r is not None]
        for instance, input_name, ref in builder.instance_inputs:
            # Reported where a node reads the input, if one does.
            source = self.resolve(ref, report=False)
            if source is not None:
                instance.inputs[input_name] = source


def _silent(*args, **kwargs) -> None:
    return None


def lookup(scope: Scope, text: str):
    """The symbol a name starts with, and the dotted parts after it."""
    if text in scope.symbols:
        return scope.symbols[text], []
    parts = text.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:cut])
        if head in scope.symbols:
            return scope.symbols[head], parts[cut:]
    return None, []


@dataclass
class Call:
    """One instantiation of a block, handed to the expansion of a plain block
    or a cell: the instance's full and local names, the block, the
    environment its nodes see, its expansion chain, and its inputs."""

    full: str
    name: str
    block_name: str
    block: BlockSpec
    env: dict[str, Any]
    trace: tuple[Frame, ...]
    loc: Loc
    scope: Scope
    inputs: list[Ref]
    inputs_loc: Loc
    tainted: bool  # an argument was reported: see Scope.tainted
    given: tuple[str, ...] = ()  # the block parameters the instance sets
    inner: "Scope | None" = None  # the scope of a plain block's nodes, its inputs already named
