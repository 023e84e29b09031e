"""The structural checks that need no shapes, on the graph as a networkx
DAG: cycles (reported as the whole cycle), a topological order, and unused
nodes and inputs (warnings).  Recurses into node bodies."""
from __future__ import annotations

import networkx as nx

from ..errors import Collector, Diagnostic, SpecError
from ..ir import Graph


def build(graph: Graph) -> nx.DiGraph:
    g = nx.DiGraph()
    for name in graph.inputs:
        g.add_node(name, kind="input")
    for node in graph.nodes.values():
        g.add_node(node.name, kind="op")
        for i, src in enumerate(node.inputs):
            g.add_edge(src, node.name, index=i)
    return g


def check(graph: Graph, errors: Collector | None = None) -> nx.DiGraph:
    """Raise SpecError for cycles (with `errors`, add them to it and return
    if there are any); put warnings on graph.warnings; reorder graph.nodes
    topologically (definition order breaks ties)."""
    found = errors if errors is not None else Collector()
    g = build(graph)
    _cycles(graph, g, found)
    for node in graph.nodes.values():
        if node.body is not None:
            check(node.body, found)
    if errors is None:
        found.raise_if_any()
    if found.errors:
        return g

    # Definition order is kept wherever the edges allow it.
    position = {name: i for i, name in enumerate([*graph.inputs, *graph.nodes])}
    order = list(nx.lexicographical_topological_sort(g, key=position.__getitem__))
    graph.nodes = {name: graph.nodes[name] for name in order if name in graph.nodes}
    warnings = Collector()
    _unused(graph, g, warnings)
    graph.warnings.extend(warnings.warnings)
    return g


def _cycles(graph: Graph, g: nx.DiGraph, errors: Collector) -> None:
    seen: set[frozenset] = set()
    for component in nx.strongly_connected_components(g):
        if len(component) == 1:
            (only,) = component
            if not g.has_edge(only, only):
                continue
        key = frozenset(component)
        if key in seen:
            continue
        seen.add(key)
        cycle = nx.find_cycle(g.subgraph(component))
        path = [u for u, _ in cycle] + [cycle[0][0]]
        first = graph.nodes[path[0]]
        errors.error("the graph has a cycle: " + " -> ".join(path), loc=first.loc, node=first.name,
                     op=first.op, trace=first.trace,
                     hint="a node cannot depend on its own output; for recurrence use a cell block")


def _unused(graph: Graph, g: nx.DiGraph, errors: Collector) -> None:
    needed = set()
    for target in graph.outputs.values():
        needed |= nx.ancestors(g, target) | {target}
    for node in graph.nodes.values():
        if node.name not in needed:
            errors.warn("unused: no output depends on this node", loc=node.loc, node=node.name, op=node.op,
                        trace=node.trace, hint="remove it, connect it, or list it under 'outputs'")
    for name in graph.inputs:
        if name not in needed:
            errors.warn(f"input '{name}' is not used by any output", loc=graph.input_locs.get(name))


def select_outputs(graph: Graph, names: list[str]) -> None:
    """Keep only the outputs `names` (in that order) and the nodes they need:
    a model compiled without its training-only heads (GoogLeNet's auxiliary
    classifiers).  Runs before `check`, so the dropped nodes are not reported
    as unused."""
    unknown = [n for n in names if n not in graph.outputs]
    if unknown:
        raise SpecError(Diagnostic(
            f"unknown output{'s' if len(unknown) > 1 else ''} {', '.join(repr(n) for n in unknown)}",
            loc=graph.output_locs.get(next(iter(graph.outputs)), None),
            hint=f"this spec's outputs: {', '.join(graph.outputs)}"))
    graph.outputs = {n: graph.outputs[n] for n in names}
    graph.output_locs = {n: graph.output_locs[n] for n in names if n in graph.output_locs}
    g = build(graph)
    needed = set()
    for target in graph.outputs.values():
        if target in g:
            needed |= nx.ancestors(g, target) | {target}
    graph.nodes = {k: v for k, v in graph.nodes.items() if k in needed}
