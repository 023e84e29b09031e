"""Forward time of the module netspec emits over torchvision's, with the same
weights and the same input.

    python bench/forward_vs_reference.py [--device cpu|cuda] [--batch B] [--repeats R] [--rows alexnet vgg16 ...]

Both models run in eval mode under torch.inference_mode, interleaved in one
process (ours, theirs, theirs, ours, ...) so that drift in clock speed or
cache state falls on both alike.  Each column is the median of --repeats
timed calls after warm-up; ratio = ours / torchvision, so 1.00 means the
emitted code adds nothing, and its spread is the 25th..75th percentile of
the per-pair ratios.  max rel diff checks that the two computed the same
thing.  A row whose spec is not in specs/ is skipped.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler.api import compile_file  # noqa: E402
from compiler.tools.report import table  # noqa: E402
from compiler.tools.verify import build_reference, copy_weights, first_tensor, randomize_norms  # noqa: E402


@dataclass
class Row:
    spec: str  # file in specs/, without .yaml
    variant: str | None
    reference: str  # torchvision model name
    outputs: tuple[str, ...] | None = None  # keep only these outputs (training-only heads dropped)


# One line per comparison.
ROWS = [
    Row("alexnet", "torchvision", "alexnet"),
    Row("vgg", "D", "vgg16"),
    Row("resnet", "50", "resnet50"),
    Row("densenet", "121", "densenet121"),
    Row("googlenet", "torchvision", "googlenet", ("logits",)),
    Row("mobilenet", "v2", "mobilenet_v2"),
    Row("efficientnet", "b0", "efficientnet_b0"),
    Row("shufflenet", "v2_x1_0", "shufflenet_v2_x1_0"),
]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_call(model, x, device) -> float:
    sync(device)
    start = time.perf_counter()
    model(x)
    sync(device)
    return time.perf_counter() - start


def compare(row: Row, device: torch.device, batch: int, repeats: int, warmup: int) -> list[str]:
    ours = compile_file(ROOT / "specs" / f"{row.spec}.yaml", row.variant,
                        outputs=list(row.outputs) if row.outputs else None).module
    theirs = build_reference(f"torchvision:{row.reference}")
    randomize_norms(theirs)
    copy_weights(theirs, ours)
    ours, theirs = ours.to(device).eval(), theirs.to(device).eval()
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(device)
    pairs = []
    with torch.inference_mode():
        a, b = first_tensor(ours(x)).double(), first_tensor(theirs(x)).double()
        rel = ((a - b).abs().max() / b.abs().max()).item()
        for _ in range(warmup):
            ours(x)
            theirs(x)
        for i in range(repeats):
            if i % 2 == 0:
                t_ours, t_theirs = timed_call(ours, x, device), timed_call(theirs, x, device)
            else:
                t_theirs, t_ours = timed_call(theirs, x, device), timed_call(ours, x, device)
            pairs.append((t_ours, t_theirs))
    ms_ours = statistics.median(p[0] for p in pairs) * 1e3
    ms_theirs = statistics.median(p[1] for p in pairs) * 1e3
    q1, _, q3 = statistics.quantiles([p[0] / p[1] for p in pairs], n=4)
    label = f"{row.spec} {row.variant}" if row.variant else row.spec
    return [label, row.reference, f"{ms_ours:.2f}", f"{ms_theirs:.2f}", f"{ms_ours / ms_theirs:.3f}",
            f"{q1:.3f}..{q3:.3f}", f"{rel:.1e}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (cuda:K)")
    ap.add_argument("--batch", type=int, help="batch size (default: 4 on CPU, 32 on CUDA)")
    ap.add_argument("--repeats", type=int, help="timed calls per model (default: 10 on CPU, 50 on CUDA)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rows", nargs="*", help="torchvision names of the rows to run (default: all)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench: --device cuda, but torch sees no CUDA device")
    batch = args.batch or (32 if device.type == "cuda" else 4)
    repeats = args.repeats or (50 if device.type == "cuda" else 10)
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{what}, torch {torch.__version__}; batch {batch}, 3x224x224, median of {repeats} interleaved calls")
    rows = [["spec", "torchvision", "ours ms", "theirs ms", "ratio", "ratio IQR", "max rel diff"]]
    for row in ROWS:
        if args.rows and row.reference not in args.rows:
            continue
        if not (ROOT / "specs" / f"{row.spec}.yaml").exists():
            print(f"  skipped {row.reference}: no specs/{row.spec}.yaml", file=sys.stderr)
            continue
        rows.append(compare(row, device, batch, repeats, args.warmup))
        print(f"  {' '.join(rows[-1])}", file=sys.stderr, flush=True)
    print(table(rows, right=set(range(2, 7))))


if __name__ == "__main__":
    main()
