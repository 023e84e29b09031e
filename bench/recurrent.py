"""The custom-cell scan (specs/lstm_cell.yaml, specs/gru_cell.yaml) against
torch.nn.LSTM and torch.nn.GRU on the CPU, with the same weights, and what
makes the scan faster, side by side.

    python bench/recurrent.py [--batch 16] [--steps 100] [--repeats 20] [--compile]

Each row: milliseconds per forward (median of --repeats), and the ratio to
torch.nn's fused kernel.  Variants of the scan:
  eager        the emitted fx step module, called once per step by Scan
  jit.script   the step module compiled by torch.jit.script
  compile      the step module compiled by torch.compile (with --compile;
               its compile time is not counted)
The cells already fuse their gate matmuls: one linear of 4H (3H) outputs on
x_t and one on h_(t-1), in place of one per gate.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from compiler.api import compile_file  # noqa: E402
from test_recurrent_cells import gru_weights, lstm_weights  # noqa: E402


def timed(fn, x, repeats: int) -> float:
    with torch.no_grad():
        for _ in range(3):
            fn(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the step")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")  # torch.jit.script's deprecation notice
    print(f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"batch {args.batch}, {args.steps} steps, 128 -> 256")
    x = torch.randn(args.batch, args.steps, 128)
    for kind, spec, variant, ref_cls, weights in (("LSTM", "lstm_cell.yaml", None, nn.LSTM, lstm_weights),
                                                  ("GRU", "gru_cell.yaml", "torch", nn.GRU, gru_weights)):
        torch.manual_seed(0)
        ref = ref_cls(128, 256, batch_first=True).eval()
        scan = compile_file(ROOT / "specs" / spec, variant).module.encoder.eval()
        scan.load_state_dict({k: v.detach().clone() for k, v in weights(ref).items()})
        base = timed(ref, x, args.repeats)
        rows = [(f"torch.nn.{kind}", base, 0.0)]
        eager_cell = scan.cell
        with torch.no_grad():
            want = ref(x)[0]
        for label, make in (("scan eager", lambda: eager_cell),
                            ("scan jit.script", lambda: torch.jit.script(eager_cell)),
                            *([("scan compile", lambda: torch.compile(eager_cell, dynamic=False))]
                              if args.compile else [])):
            scan.cell = make()
            with torch.no_grad():
                err = ((scan(x)[0] - want).abs().max() / want.abs().max()).item()
            rows.append((label, timed(scan, x, args.repeats), err))
        scan.cell = eager_cell
        for label, ms, err in rows:
            print(f"  {label:18s} {ms:8.2f} ms  x{ms / base:5.2f}" + (f"  (max rel diff {err:.1e})" if err else ""))


if __name__ == "__main__":
    main()
