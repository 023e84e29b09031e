"""The compiler's stages import only what lies below them.

Every import in compiler/ (at module level or inside a function) is read
from the source, without running it.  The packages form layers; an import
may go down or stay inside its own package, never up or sideways, never in a
circle, and the compiler never imports the service.  The front half (ir,
frontend, passes, ops) does not import torch when its modules load: `check`
and `summary` need no torch.

    python tests/test_imports.py [ROOT]

prints the layers and every import between packages, and lists any cycle
(ROOT: a checkout; default: this one).
"""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

import networkx as nx
from common import ROOT


# Each unit of the compiler and the units it may import.  A unit is a
# package below compiler/ or a module directly in it.
ALLOWED = {
    "errors": set(),
    "protocol": set(),  # Triton's model config and tensor types: what tools write and the service reads
    "ir": {"errors"},
    "ops": {"errors", "ir"},
    "frontend": {"errors", "ir"},
    "passes": {"errors", "ir", "ops"},
    "backend": {"errors", "ir", "ops"},
    "api": {"errors", "ir", "frontend", "passes", "backend"},
    "tools": {"errors", "protocol", "ir", "ops", "passes", "backend", "api"},
    "editor": {"errors", "ir", "ops", "frontend", "passes", "api"},  # what an editor asks: no torch, no backend
    "cli": {"errors", "ir", "ops", "frontend", "passes", "backend", "api", "tools", "editor"},
}
# Units whose modules may not import torch when they load.
NO_TORCH_AT_IMPORT = {"errors", "protocol", "ir", "ops", "frontend", "passes", "api", "editor", "cli"}
# ... and modules of other units: the report and picture run without torch,
# and the command line's parser reads the export formats.
NO_TORCH_MODULES = {"compiler.tools.report", "compiler.tools.picture", "compiler.tools.pbtxt",
                    "compiler.tools.export", "compiler.tools.export.common"}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> list[tuple[str, bool, int]]:
    """(imported module, at module level?, line) for each import in a file;
    `from X import name` counts as importing X.name when that is a module."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        eager = id(node) in top_level
        if isinstance(node, ast.Import):
            found += [(alias.name, eager, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                child = f"{target}.{alias.name}"
                as_module = (root / Path(*child.split("."))).with_suffix(".py").exists() or \
                    (root / Path(*child.split(".")) / "__init__.py").exists()
                found.append((child if as_module else target, eager, node.lineno))
    return found


def unit_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "compiler" and len(parts) > 1 else None


def read(root: Path = ROOT) -> tuple[nx.DiGraph, list[str]]:
    """The module import graph of compiler/ (edges carry `eager` and `line`)
    and the names of every module in it."""
    g = nx.DiGraph()
    modules = []
    for path in sorted((root / "compiler").rglob("*.py")):
        name = module_name(path, root)
        modules.append(name)
        g.add_node(name, path=path)
        for target, eager, line in imports_of(path, root):
            if target != name:
                if g.has_edge(name, target):
                    eager = eager or g.edges[name, target]["eager"]
                g.add_edge(name, target, eager=eager, line=line)
    return g, modules


def internal(g: nx.DiGraph, modules: list[str]) -> nx.DiGraph:
    """Edges between compiler modules only (a package's __init__ stands for it)."""
    known = set(modules)
    h = nx.DiGraph()
    h.add_nodes_from(modules)
    for a, b, data in g.edges(data=True):
        while b not in known and "." in b:
            b = b.rpartition(".")[0]
        if b in known and a != b:
            h.add_edge(a, b, **data)
    return h


def cycles(g: nx.DiGraph) -> list[list[str]]:
    return sorted(sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1)


def test_no_import_cycles():
    g, modules = read()
    found = cycles(internal(g, modules))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_stages_import_only_what_lies_below():
    g, modules = read()
    wrong = []
    for a, b, data in internal(g, modules).edges(data=True):
        ua, ub = unit_of(a), unit_of(b)
        if ua is None or ub is None or ua == ub:
            continue
        if ua not in ALLOWED:
            wrong.append(f"{a}: not in any layer (add compiler.{ua} to ALLOWED)")
        elif ub not in ALLOWED[ua]:
            wrong.append(f"{a} imports {b} (line {data['line']}): {ua} may import only "
                         f"{', '.join(sorted(ALLOWED[ua])) or 'nothing'}")
    assert not wrong, "\n".join(wrong)


def test_compiler_never_imports_the_service():
    g, _ = read()
    wrong = [f"{a} imports {b}" for a, b in g.edges if b.split(".")[0] == "service"]
    assert not wrong, wrong


def test_front_half_does_not_import_torch_when_loading():
    g, modules = read()
    wrong = [f"{a} (line {data['line']})" for a, b, data in g.edges(data=True)
             if b.split(".")[0] in ("torch", "torchvision", "safetensors") and data["eager"]
             and (unit_of(a) in NO_TORCH_AT_IMPORT or a in NO_TORCH_MODULES)]
    assert not wrong, "imports torch at module level: " + ", ".join(wrong)


def test_every_module_is_in_a_layer():
    _, modules = read()
    assert {unit_of(m) for m in modules if unit_of(m)} <= set(ALLOWED)


def describe(root: Path) -> str:
    g, modules = read(root)
    h = internal(g, modules)
    lines = []
    units = defaultdict(list)
    for m in modules:
        units[unit_of(m) or "(compiler)"].append(m)
    order = [u for u in ALLOWED if u in units] + [u for u in units if u not in ALLOWED]
    lines.append("layers, lowest first (a unit may import the ones listed after '->'):")
    for u in order:
        may = ", ".join(sorted(ALLOWED.get(u, ()))) or "-"
        lines.append(f"  {u:10} -> {may:50}  ({len(units[u])} modules)")
    lines.append("imports between modules (* = inside a function):")
    for a in modules:
        targets = sorted(f"{b}{'' if d['eager'] else '*'}" for _, b, d in h.out_edges(a, data=True))
        if targets:
            lines.append(f"  {a} -> {', '.join(targets)}")
    found = cycles(h)
    lines.append(f"cycles: {len(found)}")
    lines += ["  " + " <-> ".join(c) for c in found]
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT))
