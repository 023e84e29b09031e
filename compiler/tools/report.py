"""The report: per-layer output shapes, parameters and multiply-adds (per
sample; the batch dimension excluded)."""
from __future__ import annotations

from typing import Any

from ..ir import Graph, format_shape
from ..passes.costs import weights as node_weights


def shape_json(shape) -> list:
    return [d if isinstance(d, int) else str(d) for d in shape]


def group_of(node) -> tuple[str, str]:
    """(row name, kind) of a node grouped by block instance: the outermost
    block instance it belongs to (`inception3a`, `layer1.0`), or itself."""
    if node.trace:
        return node.trace[0].instance, node.trace[0].block
    return node.name, node.op


def block_rows(graph: Graph, weights_only: bool = False) -> list[dict[str, Any]]:
    """One row per top-level block instance (or node outside any block):
    summed parameters and multiply-adds, and the shape of its last node."""
    rows: dict[str, dict[str, Any]] = {}
    for node in graph.nodes.values():
        name, kind = group_of(node)
        row = rows.setdefault(name, {"name": name, "kind": kind, "nodes": 0, "params": 0, "macs": 0})
        row["nodes"] += 1
        row["params"] += node_weights(graph, node) if weights_only else node.n_params
        row["macs"] += node.macs
        row["output_shape"] = shape_json(node.out.shape)
    return list(rows.values())


def paper_units(params: int, macs: int) -> tuple[str, str]:
    """Parameters in K = 1024 and operations in M = 10^6, as GoogLeNet's
    Table 1 gives them."""
    return (f"{params / 1024:,.1f}K" if params else "", f"{macs / 1e6:,.1f}M" if macs else "")


def summary_dict(graph: Graph, by: str | None = None, weights_only: bool = False) -> dict[str, Any]:
    data = {
        "model": graph.name,
        "variant": graph.variant,
        "inputs": {k: shape_json(v.shape) for k, v in graph.inputs.items()},
        "outputs": {k: shape_json(graph.tensor(v).shape) for k, v in graph.outputs.items()},
        "total_params": sum(n.n_params for n in graph.nodes.values()),
        "total_macs": sum(n.macs for n in graph.nodes.values()),
        "layers": [
            {"name": n.name, "op": n.op, "output_shape": shape_json(n.out.shape),
             "params": n.n_params, "macs": n.macs}
            for n in graph.nodes.values()
        ],
    }
    if weights_only:
        data["total_weights"] = sum(node_weights(graph, n) for n in graph.nodes.values())
        for layer, n in zip(data["layers"], graph.nodes.values()):
            layer["weights"] = node_weights(graph, n)
    if by == "block":
        data["blocks"] = block_rows(graph, weights_only)
    return data


def human(n: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def table(rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_text(graph: Graph, by: str | None = None, weights_only: bool = False, units: str = "exact") -> str:
    """The per-layer table; `by='block'` sums rows per block instance,
    `weights_only` leaves biases out of the params column, and
    `units='paper'` prints params in K (1024) and multiply-adds in M (10^6)."""
    data = summary_dict(graph, by, weights_only)
    key = "weights" if weights_only else "params"
    total_params = data["total_weights"] if weights_only else data["total_params"]
    rows = [["name", "block" if by == "block" else "op", "output shape",
             "weights" if weights_only else "params", "multiply-adds"]]

    def cells(params: int, macs: int) -> list[str]:
        return list(paper_units(params, macs)) if units == "paper" else [f"{params:,}", f"{macs:,}"]

    if by == "block":
        for row in data["blocks"]:
            rows.append([row["name"], row["kind"], format_shape(row["output_shape"]),
                         *cells(row["params"], row["macs"])])
    else:
        for layer in data["layers"]:
            rows.append([layer["name"], layer["op"], format_shape(layer["output_shape"]),
                         *cells(layer[key], layer["macs"])])
    rows.append(["total", "", "", *cells(total_params, data["total_macs"])])
    variant = f" (variant {graph.variant})" if graph.variant else ""
    head = f"{graph.name}{variant}: {human(total_params)} {'weights' if weights_only else 'parameters'}, " \
           f"{human(data['total_macs'])} multiply-adds per sample"
    return head + "\n" + table(rows, right={3, 4})


def io_text(graph: Graph) -> str:
    lines = [f"{graph.name}" + (f" (variant {graph.variant})" if graph.variant else "") + ": ok"]
    for k, v in graph.inputs.items():
        lines.append(f"  input   {k}: {format_shape(v.shape)} {v.dtype}")
    for k, v in graph.outputs.items():
        t = graph.tensor(v)
        lines.append(f"  output  {k}: {format_shape(t.shape)} {t.dtype}  (from '{v}')")
    return "\n".join(lines)
