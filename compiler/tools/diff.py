"""The semantic difference between two analyzed graphs: what a reader of
two specs wants to know (which layers came or went, which changed op,
parameters, inputs or output shape, and what that did to the parameter
and multiply-add counts), not which lines of YAML moved.

Nodes are matched by their dotted names after expansion, so the same
network written with or without a block, or with a repeat unrolled, has no
difference; a repeat count raised from 6 to 23 adds 17 block instances.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..ir import Graph, Node, format_shape
from .report import human


@dataclass
class NodeChange:
    name: str
    op: tuple[str, str] | None = None
    params: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    inputs: tuple[list[str], list[str]] | None = None
    shape: tuple[str, str] | None = None
    params_delta: int = 0
    macs_delta: int = 0


@dataclass
class Group:
    """Nodes added or removed together: a whole block instance (`block` set)
    or one node outside any instance wholly added or removed."""

    name: str
    block: str | None
    nodes: list[Node]

    @property
    def params(self) -> int:
        return sum(n.n_params for n in self.nodes)

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes)


@dataclass
class GraphDiff:
    a: Graph
    b: Graph
    inputs: dict[str, tuple[str | None, str | None]]  # name -> (shape in a, shape in b); None: absent
    outputs: dict[str, tuple[str | None, str | None]]
    added: list[Group]
    removed: list[Group]
    changed: list[NodeChange]

    @property
    def empty(self) -> bool:
        return not (self.inputs or self.outputs or self.added or self.removed or self.changed)


def flatten(graph: Graph, prefix: str = "") -> dict[str, Node]:
    """Every node by its name; a body's nodes (a cell's step) as `cell/node`."""
    nodes: dict[str, Node] = {}
    for node in graph.nodes.values():
        nodes[prefix + node.name] = node
        if node.body is not None:
            nodes.update(flatten(node.body, f"{prefix}{node.name}/"))
    return nodes


def _attrs(node: Node) -> dict[str, Any]:
    """The op's parameters with their defaults, so `stride: 1` written out
    and left to its default are the same."""
    return node.attrs.model_dump() if node.attrs is not None else dict(node.params)


def _shape(node: Node) -> str:
    return format_shape(node.out.shape) if node.out is not None else "?"


def _node_change(name: str, x: Node, y: Node) -> NodeChange | None:
    change = NodeChange(name, params_delta=y.n_params - x.n_params, macs_delta=y.macs - x.macs)
    if x.op != y.op:
        change.op = (x.op, y.op)
    else:  # parameters of different ops are not comparable one by one
        px, py = _attrs(x), _attrs(y)
        change.params = {k: (px.get(k), py.get(k)) for k in sorted(px.keys() | py.keys()) if px.get(k) != py.get(k)}
    if x.inputs != y.inputs:
        change.inputs = (list(x.inputs), list(y.inputs))
    if _shape(x) != _shape(y):
        change.shape = (_shape(x), _shape(y))
    if change.op or change.params or change.inputs or change.shape or change.params_delta or change.macs_delta:
        return change
    return None


def _groups(only: dict[str, Node], nodes: dict[str, Node], graph: Graph) -> list[Group]:
    """The nodes of one side only (`only`, out of that side's `nodes`), as
    the outermost block instances they fill wholly, and single nodes for
    the rest, in definition order."""
    whole: dict[str, Group] = {}
    for instance in sorted(graph.instances.values(), key=lambda i: i.name.count(".")):
        if any(instance.name.startswith(w + ".") for w in whole):
            continue
        keys = [key for key in nodes if key.startswith(instance.name + ".")]
        if keys and all(key in only for key in keys):
            whole[instance.name] = Group(instance.name, instance.block, [nodes[key] for key in keys])
    groups, seen = [], set()
    for key, node in only.items():
        owner = next((w for w in whole if key.startswith(w + ".")), None)
        if owner is None:
            groups.append(Group(key, None, [node]))
        elif owner not in seen:
            seen.add(owner)
            groups.append(whole[owner])
    return groups


def _io(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    out = {}
    for name in [*a, *(k for k in b if k not in a)]:
        x = format_shape(a[name].shape) if name in a else None
        y = format_shape(b[name].shape) if name in b else None
        if x != y:
            out[name] = (x, y)
    return out


def diff(a: Graph, b: Graph) -> GraphDiff:
    na, nb = flatten(a), flatten(b)
    changed = [c for name, x in na.items() if name in nb and (c := _node_change(name, x, nb[name]))]
    return GraphDiff(
        a, b,
        inputs=_io(a.inputs, b.inputs),
        outputs=_io({k: a.tensor(v) for k, v in a.outputs.items()}, {k: b.tensor(v) for k, v in b.outputs.items()}),
        added=_groups({k: v for k, v in nb.items() if k not in na}, nb, b),
        removed=_groups({k: v for k, v in na.items() if k not in nb}, na, a),
        changed=changed,
    )


def _totals(g: Graph) -> tuple[int, int]:
    """As `netspec summary` counts: a cell's node counts its body."""
    return sum(n.n_params for n in g.nodes.values()), sum(n.macs for n in g.nodes.values())


def _title(g: Graph) -> str:
    return f"{g.name} ({g.variant})" if g.variant else g.name


def _signed(n: int) -> str:
    return f"{n:+,}"


def _group_line(sign: str, g: Group) -> str:
    what = f"{g.block}, {len(g.nodes)} nodes" if g.block else g.nodes[0].op
    counts = ", ".join(f"{k} {sign}{v:,}" for k, v in (("params", g.params), ("MACs", g.macs)) if v)
    return f"  {sign} {g.name} ({what})" + (f": {counts}" if counts else "")


def _change_lines(c: NodeChange) -> list[str]:
    parts = []
    if c.op:
        parts.append(f"op {c.op[0]} -> {c.op[1]}")
    parts += [f"{k} {x!r} -> {y!r}" for k, (x, y) in c.params.items()]
    if c.inputs:
        parts.append(f"in [{', '.join(c.inputs[0])}] -> [{', '.join(c.inputs[1])}]")
    if c.shape:
        parts.append(f"shape {c.shape[0]} -> {c.shape[1]}")
    counts = [f"{k} {_signed(v)}" for k, v in (("params", c.params_delta), ("MACs", c.macs_delta)) if v]
    return [f"  ~ {c.name}: " + "; ".join(parts + counts)]


def diff_text(d: GraphDiff) -> str:
    lines = [f"--- {_title(d.a)}  ({d.a.source})", f"+++ {_title(d.b)}  ({d.b.source})"]
    for label, io in (("inputs", d.inputs), ("outputs", d.outputs)):
        for name, (x, y) in io.items():
            lines.append(f"{label[:-1]} {name}: {x or 'absent'} -> {y or 'absent'}")
    for sign, label, groups in (("+", "added", d.added), ("-", "removed", d.removed)):
        if groups:
            n = sum(len(g.nodes) for g in groups)
            lines.append(f"{label}: {n} node{'s' if n != 1 else ''}")
            lines += [_group_line(sign, g) for g in groups]
    if d.changed:
        lines.append(f"changed: {len(d.changed)} node{'s' if len(d.changed) != 1 else ''}")
        for c in d.changed:
            lines += _change_lines(c)
    if d.empty:
        lines.append("no difference after expansion")
    (pa, ma), (pb, mb) = _totals(d.a), _totals(d.b)
    lines.append(f"params: {pa:,} -> {pb:,} ({_signed(pb - pa)}); "
                 f"MACs: {human(ma)} -> {human(mb)} ({_signed(mb - ma)})")
    return "\n".join(lines)


def _json_value(v: Any) -> Any:
    return v if isinstance(v, (int, float, str, bool, type(None))) else (
        [_json_value(x) for x in v] if isinstance(v, (list, tuple)) else str(v))


def diff_dict(d: GraphDiff) -> dict[str, Any]:
    (pa, ma), (pb, mb) = _totals(d.a), _totals(d.b)

    def group(g: Group) -> dict[str, Any]:
        return {"name": g.name, "block": g.block, "nodes": [n.name for n in g.nodes], "params": g.params,
                "macs": g.macs}

    def change(c: NodeChange) -> dict[str, Any]:
        out: dict[str, Any] = {"name": c.name}
        if c.op:
            out["op"] = list(c.op)
        if c.params:
            out["params"] = {k: [_json_value(x), _json_value(y)] for k, (x, y) in c.params.items()}
        if c.inputs:
            out["inputs"] = [c.inputs[0], c.inputs[1]]
        if c.shape:
            out["shape"] = list(c.shape)
        out["params_delta"], out["macs_delta"] = c.params_delta, c.macs_delta
        return out

    return {
        "a": {"model": d.a.name, "variant": d.a.variant, "source": d.a.source, "params": pa, "macs": ma},
        "b": {"model": d.b.name, "variant": d.b.variant, "source": d.b.source, "params": pb, "macs": mb},
        "inputs": {k: list(v) for k, v in d.inputs.items()},
        "outputs": {k: list(v) for k, v in d.outputs.items()},
        "added": [group(g) for g in d.added],
        "removed": [group(g) for g in d.removed],
        "changed": [change(c) for c in d.changed],
        "params_delta": pb - pa,
        "macs_delta": mb - ma,
        "same": d.empty,
    }


__all__ = ["GraphDiff", "diff", "diff_dict", "diff_text"]
