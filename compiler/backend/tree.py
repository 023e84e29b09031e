"""The module tree of a graph: which nodes a block instance's module
computes, in which order, what it takes and what it returns.

An instance of a block becomes a module of its own (a `Scope`) when its
nodes can be computed by one call: nothing outside it both depends on one
of its nodes and feeds another (ONNX calls such a subgraph convex).  Repeats
of an instance that each feed only the next become one `Chain` (an
nn.Sequential).  Module paths are the nodes' dotted names, so state-dict
keys are the same however the modules nest (`layer1.0.conv1.weight`).  The
fx module and model.py are both emitted from this tree.
"""
from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field

from ..errors import InternalError
from ..ir import Graph, Instance, Node, topological_order


@dataclass
class Leaf:
    node: Node
    path: str  # its attribute path from its scope's module: 'conv1', 'conv.0'


@dataclass
class Call:
    scope: Scope
    path: str  # 'downsample', 'layer1.0'


@dataclass
class Chain:
    """Repeats of an instance, each feeding the next: one nn.Sequential."""

    path: str  # 'layer1'
    members: list[Scope]


Item = Leaf | Call | Chain


@dataclass(eq=False)
class Scope:
    name: str  # its full name, the prefix of its nodes ('' for the model itself)
    instance: Instance | None
    graph: Graph
    items: list[Item] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)  # argument name -> the outer value it receives
    outputs: list[str] = field(default_factory=list)  # full names of the values it returns, in order
    members: set[str] = field(default_factory=set)  # full names of the nodes it computes, nested ones included
    _own: set[str] | None = field(default=None, repr=False)

    def local(self, full: str) -> str:
        return full[len(self.name) + 1:] if self.name else full

    def computes_itself(self, name: str) -> bool:
        """Whether node `name` is one of this scope's own items (not inside a child's module)."""
        if self._own is None:
            self._own = {i.node.name for i in self.items if isinstance(i, Leaf)}
        return name in self._own


def item_path(item: Item) -> str:
    return item.path


def build(graph: Graph) -> Scope:
    """The tree of `graph` (whose nodes are in topological order)."""
    dag = _Dag(graph)
    members = _members(graph)
    nested = {name for name, nodes in members.items() if name in graph.instances and dag.convex(nodes)}
    root = Scope("", None, graph, members=set(graph.nodes))
    scopes = {name: Scope(name, graph.instances[name], graph, members=members[name]) for name in nested}

    def home(node: Node) -> Scope:
        for frame in reversed(node.trace):
            if frame.instance in scopes:
                return scopes[frame.instance]
        return root

    def parent(scope: Scope) -> Scope:
        """The scope an instance's call is an item of: its nearest nested enclosing instance."""
        some = graph.nodes[next(iter(scope.members))]
        outer = [f.instance for f in some.trace]
        for name in reversed(outer[:outer.index(scope.name)]):
            if name in scopes:
                return scopes[name]
        return root

    owner: dict[str, tuple[Scope, int]] = {}  # item key -> (scope, index in scope.items)
    for node in graph.nodes.values():
        scope, item = home(node), None
        item = Leaf(node, scope.local(node.name))
        while True:
            key = node.name if isinstance(item, Leaf) else item.scope.name
            if key not in owner:
                owner[key] = (scope, len(scope.items))
                scope.items.append(item)
            if scope is root:
                break
            item, scope = Call(scope, parent(scope).local(scope.name)), parent(scope)
    for scope in [root, *scopes.values()]:
        _interface(scope, graph, dag)
    for scope in [root, *scopes.values()]:
        _order(scope, graph)
        _chain(scope, graph, dag)
    return root


class _Dag:
    """The graph's edges both ways, and each node's place in its
    topological order (the order of graph.nodes)."""

    def __init__(self, graph: Graph):
        self.index = {name: i for i, name in enumerate(graph.nodes)}
        self.successors: dict[str, list[str]] = defaultdict(list)
        self.predecessors: dict[str, list[str]] = defaultdict(list)
        for node in graph.nodes.values():
            for src in node.inputs:
                if src in graph.nodes:
                    self.successors[src].append(node.name)
                    self.predecessors[node.name].append(src)

    def _reach(self, start: set[str], step: dict[str, list[str]], inside) -> set[str]:
        seen, todo = set(start), deque(start)
        while todo:
            for nxt in step[todo.popleft()]:
                if nxt not in seen and inside(self.index[nxt]):
                    seen.add(nxt)
                    todo.append(nxt)
        return seen - start

    def convex(self, nodes: set[str]) -> bool:
        """Whether no path leaves `nodes` and comes back into them. Every
        node of such a path lies between the first and the last of `nodes`
        in topological order, so the walks stay inside that window (one
        block's worth of nodes, not the whole graph, for each instance)."""
        first, last = min(self.index[n] for n in nodes), max(self.index[n] for n in nodes)
        after = self._reach(nodes, self.successors, lambda i: i < last)
        before = self._reach(nodes, self.predecessors, lambda i: i > first)
        return not (after & before)


def _members(graph: Graph) -> dict[str, set[str]]:
    members: dict[str, set[str]] = defaultdict(set)
    for node in graph.nodes.values():
        for frame in node.trace:
            members[frame.instance].add(node.name)
    return members


def _interface(scope: Scope, graph: Graph, dag: _Dag) -> None:
    """A scope's arguments (named as the block names its inputs) and the
    values it returns (those read outside it, and the graph's outputs).
    Walks the scope's own nodes and their edges only: a model has a scope
    per block instance."""
    if scope.instance is None:
        scope.inputs = {name: name for name in graph.inputs}
        scope.outputs = list(graph.outputs.values())  # in order, a node as often as it is an output
        return
    members = sorted(scope.members, key=dag.index.__getitem__)  # in the graph's order
    sources = list(dict.fromkeys(src for name in members
                                 for src in graph.nodes[name].inputs if src not in scope.members))
    by_source = {}
    for arg, src in scope.instance.inputs.items():
        by_source.setdefault(src, arg)
    scope.inputs = {arg: src for arg, src in scope.instance.inputs.items() if by_source[src] == arg}
    for src in sources:
        if src not in by_source:  # reached other than through a block input: named after itself
            scope.inputs[src.replace(".", "_")] = src
    results = set(graph.outputs.values())
    scope.outputs = [name for name in members
                     if name in results or any(r not in scope.members for r in dag.successors[name])]


def _key(item: Item) -> str:
    return item.node.name if isinstance(item, Leaf) else item.scope.name


def _covers(item: Item) -> set[str]:
    return {item.node.name} if isinstance(item, Leaf) else item.scope.members


def _order(scope: Scope, graph: Graph) -> None:
    """The items in an order their inputs allow (first appearance breaks ties)."""
    which = {name: i for i, item in enumerate(scope.items) for name in _covers(item)}
    after: dict[int, set[int]] = {i: set() for i in range(len(scope.items))}
    for i, item in enumerate(scope.items):
        for name in _covers(item):
            for src in graph.nodes[name].inputs:
                j = which.get(src)
                if j is not None and j != i:
                    after[j].add(i)
    order = topological_order(after)
    if len(order) < len(scope.items):
        raise InternalError(f"the modules of '{scope.name or graph.name}' depend on each other in a circle")
    scope.items = [scope.items[i] for i in order]


def _chain(scope: Scope, graph: Graph, dag: _Dag) -> None:
    """Repeats `G.0 .. G.k` of an instance where each takes one value, the
    previous one's only result, become one Chain."""
    groups: dict[str, list[Call]] = defaultdict(list)
    for item in scope.items:
        if isinstance(item, Call) and "." in item.path:
            head, _, index = item.path.rpartition(".")
            if index.isdigit():
                groups[head].append(item)
    for head, calls in groups.items():
        if [c.path for c in calls] != [f"{head}.{i}" for i in range(len(calls))] or not _chains(calls, graph, dag):
            continue
        members = [c.scope for c in calls]
        last = scope.items.index(calls[-1])
        scope.items[last] = Chain(head, members)
        scope.items = [i for i in scope.items if not (isinstance(i, Call) and i in calls)]


def _chains(calls: list[Call], graph: Graph, dag: _Dag) -> bool:
    scopes = [c.scope for c in calls]
    if any(len(s.inputs) != 1 or len(s.outputs) != 1 for s in scopes):
        return False
    outputs = set(graph.outputs.values())
    for a, b in zip(scopes, scopes[1:]):
        (out,) = a.outputs
        readers = set(dag.successors[out])
        if list(b.inputs.values()) != [out] or not readers <= b.members or out in outputs:
            return False
    return True
