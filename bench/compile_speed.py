"""How long each compiler stage takes, per spec and variant, load to emit.

    python bench/compile_speed.py [--repeats 3] [--specs lenet vgg ...] [--default-only]

Each row: milliseconds per stage (median of --repeats, after one warm-up), for load (YAML with
positions), validate (pydantic), expand (blocks, repeats, variants), check
(op signatures, and the structure checks), shapes (inference and
counts), emit (the fx GraphModule built with its parameters allocated and
nothing drawn into them: what the server builds before it loads a model's
weights) and init (building it again with its parameters initialised as
PyTorch does, less the emit time).  total = load + validate + expand + check
+ shapes + emit + init: what `netspec compile` spends before writing files.
(Emitting under `torch.device("meta")` instead would add the cost of torch's
device mode, which sees every tensor call, to a path no command takes.)
What the imports made is frozen out of the garbage collector's reach, as
the `netspec` command does, and each run starts with the last one's garbage
collected, as a fresh command starts without it.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler.backend.emit import emit  # noqa: E402
from compiler.frontend import expand, load_file, validate  # noqa: E402
from compiler.passes import costs, shapes, signature, structure  # noqa: E402
from compiler.tools.report import table  # noqa: E402

gc.freeze()  # as the netspec command does once its imports are done (compiler/cli.py)

STAGES = ("load", "validate", "expand", "check", "shapes", "emit", "init")


def variants_of(path: Path) -> list[str | None]:
    """The spec's variants, its default first."""
    tree = load_file(path)
    variants = [str(v) for v in tree.get("variants") or {}]
    default = tree.get("default_variant")
    if default is not None and str(default) in variants:
        variants.remove(str(default))
        variants.insert(0, str(default))
    return variants or [None]


def run_once(path: Path, variant: str | None) -> tuple[dict[str, float], int, int]:
    # A fresh `netspec compile` has no earlier model's garbage: the last run's
    # modules (fx modules and their graphs are reference cycles, freed only
    # by a full collection) are collected before the clock starts.
    gc.collect()
    times = {}

    def step(name, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        times[name] = (time.perf_counter() - start) * 1e3
        return out

    tree = step("load", load_file, path)
    spec = step("validate", validate, tree)
    # as compiler.api does: a spec reading a shape (`shape(x)`) infers it while expanding
    g = step("expand", expand, spec, variant, None, shapes.node_value)
    step("check", lambda: (signature.check(g), structure.check(g)))
    step("shapes", lambda: (shapes.infer(g), costs.count(g)))
    step("emit", emit, g, 0, False)
    step("init", emit, g, 0)
    times["init"] -= times["emit"]
    return times, len(g.nodes), sum(n.n_params for n in g.nodes.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--specs", nargs="*", help="spec names in specs/ (default: all)")
    ap.add_argument("--default-only", action="store_true", help="only each spec's default variant")
    args = ap.parse_args()
    paths = [ROOT / "specs" / f"{s}.yaml" for s in args.specs] if args.specs else sorted((ROOT / "specs").glob("*.yaml"))
    print(f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"milliseconds, median of {args.repeats}")
    rows = [["spec", "variant", "nodes", "params", *STAGES, "total"]]
    for path in paths:
        variants = variants_of(path)
        for variant in variants[:1] if args.default_only else variants:
            run_once(path, variant)  # warm-up: first-call costs (imports, caches) are not the spec's
            runs = [run_once(path, variant) for _ in range(args.repeats)]
            med = {s: statistics.median(r[0][s] for r in runs) for s in STAGES}
            _, nodes, params = runs[0]
            total = statistics.median(sum(r[0].values()) for r in runs)
            rows.append([path.stem, variant or "-", str(nodes), f"{params / 1e6:.1f}M",
                         *(f"{med[s]:.1f}" for s in STAGES), f"{total:.1f}"])
            print(f"  {path.stem} {variant or ''}: {total:.0f} ms", file=sys.stderr, flush=True)
    print(table(rows, right=set(range(2, len(rows[0])))))


if __name__ == "__main__":
    main()
