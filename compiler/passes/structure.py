"""The structural checks that need no shapes: cycles (reported as the whole
cycle), a topological order, and unused nodes and inputs (warnings).
Recurses into node bodies.

The graph is walked through each node's `inputs` in plain Python rather than
built as a networkx DiGraph: importing networkx costs more than `netspec
check` may take in all, and these four walks are short."""
from __future__ import annotations

from ..errors import Collector, Diagnostic, SpecError
from ..ir import Graph, topological_order


def successors(graph: Graph) -> dict[str, list[str]]:
    """{name: the nodes reading it, in definition order} for inputs and nodes
    (a name read but never defined gets an entry too, as an edge's end)."""
    out: dict[str, list[str]] = {name: [] for name in [*graph.inputs, *graph.nodes]}
    for node in graph.nodes.values():
        for src in node.inputs:
            out.setdefault(src, []).append(node.name)
    return out


def ancestors(graph: Graph, target: str) -> set[str]:
    """`target` and every name it depends on."""
    seen, stack = {target}, [target]
    while stack:
        node = graph.nodes.get(stack.pop())
        for src in node.inputs if node is not None else ():
            if src not in seen:
                seen.add(src)
                stack.append(src)
    return seen


def check(graph: Graph, errors: Collector | None = None) -> None:
    """Raise SpecError for cycles (with `errors`, add them to it and return
    if there are any); put warnings on graph.warnings; reorder graph.nodes
    topologically (definition order breaks ties)."""
    found = errors if errors is not None else Collector()
    after = successors(graph)
    _cycles(graph, after, found)
    for node in graph.nodes.values():
        if node.body is not None:
            check(node.body, found)
    if errors is None:
        found.raise_if_any()
    if found.errors:
        return

    graph.nodes = {name: graph.nodes[name] for name in topological_order(after) if name in graph.nodes}
    warnings = Collector()
    _unused(graph, warnings)
    graph.warnings.extend(warnings.warnings)


def _components(after: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components (Tarjan's algorithm, without
    recursion so that a long chain cannot overflow the stack)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in after:
        if root in index:
            continue
        work = [(root, iter(after[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            name, readers = work[-1]
            for reader in readers:
                if reader not in index:
                    index[reader] = low[reader] = len(index)
                    stack.append(reader)
                    on_stack.add(reader)
                    work.append((reader, iter(after[reader])))
                    break
                if reader in on_stack:
                    low[name] = min(low[name], index[reader])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[name])
                if low[name] == index[name]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == name:
                            break
                    found.append(component)
    return found


def _cycle_in(component: set[str], start: str, after: dict[str, list[str]]) -> list[str]:
    """A cycle through the component, from `start` back to where it closes:
    [a, b, ..., a]."""
    path, on_path = [start], {start: 0}
    work = [iter(r for r in after[start] if r in component)]
    while work:
        reader = next(work[-1], None)
        if reader is None:
            on_path.pop(path.pop())
            work.pop()
        elif reader in on_path:
            return path[on_path[reader]:] + [reader]
        else:
            on_path[reader] = len(path)
            path.append(reader)
            work.append(iter(r for r in after[reader] if r in component))
    raise AssertionError("a strongly connected component without a cycle")


def _cycles(graph: Graph, after: dict[str, list[str]], errors: Collector) -> None:
    position = {name: i for i, name in enumerate(after)}
    for members in _components(after):
        if len(members) == 1 and members[0] not in after[members[0]]:
            continue
        start = min(members, key=position.__getitem__)
        path = _cycle_in(set(members), start, after)
        first = graph.nodes[path[0]]
        errors.error("the graph has a cycle: " + " -> ".join(path), loc=first.loc, node=first.name,
                     op=first.op, trace=first.trace,
                     hint="a node cannot depend on its own output; for recurrence use a cell block")


def _unused(graph: Graph, errors: Collector) -> None:
    needed = set()
    for target in graph.outputs.values():
        needed |= ancestors(graph, target)
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
    needed = set()
    for target in graph.outputs.values():
        needed |= ancestors(graph, target)
    graph.nodes = {k: v for k, v in graph.nodes.items() if k in needed}
