"""Stage 7: the report: per-layer output shapes, parameters and multiply-adds
(per sample; the batch dimension excluded)."""
from __future__ import annotations

from typing import Any

from .ir import Graph, format_shape


def shape_json(shape) -> list:
    return [d if isinstance(d, int) else str(d) for d in shape]


def summary_dict(graph: Graph) -> dict[str, Any]:
    return {
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


def summary_text(graph: Graph) -> str:
    data = summary_dict(graph)
    rows = [["name", "op", "output shape", "params", "multiply-adds"]]
    for layer in data["layers"]:
        rows.append([layer["name"], layer["op"], format_shape(layer["output_shape"]),
                     f"{layer['params']:,}", f"{layer['macs']:,}"])
    rows.append(["total", "", "", f"{data['total_params']:,}", f"{data['total_macs']:,}"])
    variant = f" (variant {graph.variant})" if graph.variant else ""
    head = f"{graph.name}{variant}: {human(data['total_params'])} parameters, " \
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
