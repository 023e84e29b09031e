"""A spec's DAG as a Graphviz picture (`netspec graph`).

Block instances become clusters (nested as the blocks nest); `--depth K`
keeps K levels of instances open and draws each deeper instance as one box.
Edges carry the shape of the tensor they move (batch dimension left out).
The DOT text is written by hand, so only rendering needs Graphviz's `dot`
program (Debian package graphviz); without it the .dot file is still written.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..ir import Graph
from ..ops import OPS

FORMATS = (".dot", ".svg", ".png")
INSTALL_HINT = "install the Debian package graphviz (apt-get install graphviz) for the 'dot' program"


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def lines_label(*lines: str) -> str:
    return quote("\n".join(lines))


def shape_label(shape) -> str:
    """[N, 64, 56, 56] -> '64x56x56': the per-sample shape."""
    dims = shape[1:] if shape and isinstance(shape[0], str) else shape
    return "x".join(str(d) for d in dims) or "scalar"


def op_label(node) -> str:
    """The op and, where it has them, its window and width: 'conv2d 3x3/2 128'."""
    return OPS[node.op].label(node.attrs)


@dataclass
class Cluster:
    name: str  # the instance's full name
    block: str
    nodes: list[str] = field(default_factory=list)  # DOT statements of nodes directly inside
    children: dict[str, "Cluster"] = field(default_factory=dict)


def to_dot(graph: Graph, depth: int | None = None) -> str:
    """The DOT text of `graph`; instances nested deeper than `depth` (0: every
    top-level instance) are drawn as one node each."""
    root = Cluster("", "")
    rep: dict[str, str] = {name: f"input:{name}" for name in graph.inputs}

    def cluster_for(frames) -> Cluster:
        c = root
        for f in frames:
            c = c.children.setdefault(f.instance, Cluster(f.instance, f.block))
        return c

    collapsed: set[str] = set()
    for name, info in graph.inputs.items():
        root.nodes.append(f'{quote(rep[name])} [label={lines_label(name, shape_label(info.shape))}, '
                          f'shape=ellipse, style=filled, fillcolor="#e8f0fe"];')
    for node in graph.nodes.values():
        frames = node.trace
        if depth is not None and len(frames) > depth:
            inst = frames[depth]
            rep[node.name] = f"block:{inst.instance}"
            if inst.instance not in collapsed:
                collapsed.add(inst.instance)
                cluster_for(frames[:depth]).nodes.append(
                    f'{quote(rep[node.name])} [label={lines_label(inst.instance, f"({inst.block})")}, '
                    f'shape=box3d, style=filled, fillcolor="#fff4d6"];')
            continue
        rep[node.name] = node.name
        local = node.name[len(frames[-1].instance) + 1:] if frames else node.name
        cluster_for(frames).nodes.append(
            f'{quote(node.name)} [label={lines_label(*dict.fromkeys([local, op_label(node)]))}];')

    edges: dict[tuple[str, str], str] = {}
    for node in graph.nodes.values():
        for src in node.inputs:
            a, b = rep[src], rep[node.name]
            if a != b:
                edges.setdefault((a, b), shape_label(graph.tensor(src).shape))
    for out_name, src in graph.outputs.items():
        root.nodes.append(f'{quote("output:" + out_name)} [label={quote(out_name)}, shape=ellipse, '
                          f'style=filled, fillcolor="#e6f4ea"];')
        edges[(rep[src], "output:" + out_name)] = shape_label(graph.tensor(src).shape)

    lines = [f"digraph {quote(graph.name + (f' ({graph.variant})' if graph.variant else ''))} {{",
             "  rankdir=TB;",
             '  graph [fontname="Helvetica", fontsize=11];',
             '  node [shape=box, style=rounded, fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=8];']

    def write(c: Cluster, indent: str) -> None:
        for statement in c.nodes:
            lines.append(indent + statement)
        for child in c.children.values():
            lines.append(f"{indent}subgraph {quote('cluster_' + child.name)} {{")
            lines.append(f"{indent}  label={quote(f'{child.name} ({child.block})')}; style=rounded; "
                         f'color="#9aa0a6";')
            write(child, indent + "  ")
            lines.append(indent + "}")

    write(root, "  ")
    for (a, b), label in edges.items():
        lines.append(f"  {quote(a)} -> {quote(b)} [label={quote(label)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot_text: str, path: Path) -> Path:
    """Write `path` (.dot, .svg or .png). Without `dot`, write the .dot file
    beside it and raise FileNotFoundError naming it."""
    if path.suffix == ".dot":
        path.write_text(dot_text)
        return path
    exe = shutil.which("dot")
    if exe is None:
        fallback = path.with_suffix(".dot")
        fallback.write_text(dot_text)
        raise FileNotFoundError(fallback)
    done = subprocess.run([exe, f"-T{path.suffix[1:]}", "-o", str(path)], input=dot_text, text=True,
                          capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"dot failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    return path
