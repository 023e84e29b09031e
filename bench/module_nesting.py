"""Forward time of the emitted module nested as the blocks nest (one
GraphModule per block instance, nn.Sequential for repeats) over the same
graph emitted flat (every layer in one GraphModule), same weights, same
input, interleaved in one process.

    python bench/module_nesting.py [--batch 4] [--repeats 20] [--rows resnet:50 densenet:121 ...]

ratio = nested / flat: 1.00 means nesting costs nothing; the spread is the
25th..75th percentile of the per-pair ratios.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler.api import analyze_file, build  # noqa: E402
from compiler.tools.compare import first_tensor  # noqa: E402
from compiler.tools.report import table  # noqa: E402

ROWS = ["resnet:50", "densenet:121", "googlenet:torchvision", "mobilenet:v2", "shufflenet:v2_x1_0"]


def timed(module, x) -> float:
    start = time.perf_counter()
    module(x)
    return time.perf_counter() - start


def compare(row: str, batch: int, repeats: int) -> list[str]:
    spec, _, variant = row.partition(":")
    graph = analyze_file(ROOT / "specs" / f"{spec}.yaml", variant or None)
    nested = build(graph).module.eval()
    flat = build(dataclasses.replace(graph, instances={})).module.eval()  # no instances: one flat module
    flat.load_state_dict(nested.state_dict())
    x = torch.randn(batch, *graph.inputs[next(iter(graph.inputs))].shape[1:],
                    generator=torch.Generator().manual_seed(0))
    ratios, times = [], []
    with torch.inference_mode():
        assert torch.equal(first_tensor(nested(x)), first_tensor(flat(x)))
        for _ in range(3):
            nested(x), flat(x)
        for i in range(repeats):
            if i % 2 == 0:
                a, b = timed(nested, x), timed(flat, x)
            else:
                b, a = timed(flat, x), timed(nested, x)
            ratios.append(a / b)
            times.append((a, b))
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return [row, f"{statistics.median(t[0] for t in times) * 1e3:.2f}",
            f"{statistics.median(t[1] for t in times) * 1e3:.2f}", f"{statistics.median(ratios):.3f}",
            f"{q1:.3f}..{q3:.3f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--rows", nargs="*", default=ROWS, help="SPEC:VARIANT in specs/")
    args = ap.parse_args()
    print(f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}; batch {args.batch}, "
          f"median of {args.repeats} interleaved calls")
    rows = [["spec", "nested ms", "flat ms", "ratio", "ratio IQR"]]
    rows += [compare(row, args.batch, args.repeats) for row in args.rows]
    print(table(rows, right={1, 2, 3, 4}))


if __name__ == "__main__":
    main()
