"""`netspec verify` of every ViT and ConvNeXt variant at 224x224 against
torchvision, with the figures docs/vision.md gives: parameters, multiply-adds
and the largest difference relative to the largest output.

    python bench/verify_vision.py [--rows vit-b_16 convnext-base ...]

The test suite verifies ViT-B/32 and ConvNeXt-T (tests/test_zoo_vision.py);
the larger variants take longer, most of it drawing the references' random
weights, and are verified here.  Verify gives the reference's
constant-initialised tensors (layer scale, class token, ViT's zero head)
and norms random values first, so a wrong branch cannot hide.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler.api import compile_file  # noqa: E402
from compiler.tools.verify import verify  # noqa: E402

ROWS = {"vit-b_16": ("vit", "b_16", "torchvision:vit_b_16"), "vit-b_32": ("vit", "b_32", "torchvision:vit_b_32"),
        "convnext-tiny": ("convnext", "tiny", "torchvision:convnext_tiny"),
        "convnext-small": ("convnext", "small", "torchvision:convnext_small"),
        "convnext-base": ("convnext", "base", "torchvision:convnext_base")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="*", choices=list(ROWS), default=list(ROWS))
    args = parser.parse_args()
    print(f"{'row':16} {'parameters':>12} {'multiply-adds':>15} {'matched':>8} {'max abs':>9} {'max rel':>9} {'seconds':>8}")
    failed = 0
    for key in args.rows:
        spec, variant, against = ROWS[key]
        start = time.perf_counter()
        model = compile_file(ROOT / "specs" / f"{spec}.yaml", variant)
        result = verify(model, against)
        params = sum(n.n_params for n in model.graph.nodes.values())
        macs = sum(n.macs for n in model.graph.nodes.values())
        print(f"{key:16} {params:>12,} {macs / 1e6:>14,.1f}M {result.matched_by:>8} {result.max_abs:>9.1e} "
              f"{result.max_rel:>9.1e} {time.perf_counter() - start:>8.1f}" + ("" if result.ok else "  FAILED"))
        failed += not result.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
