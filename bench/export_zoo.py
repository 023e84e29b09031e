"""Every zoo spec and variant exported to ONNX and TorchScript, each run
(onnxruntime, torch.jit.load) against the compiled module on the same
inputs at two sizes; prints the table of docs/deploy.md.

    python bench/export_zoo.py [--specs lenet resnet:18 ...] [--formats onnx torchscript]

Weights are rescaled first on random inputs (check.calibrate:
freshly initialised, some deep networks answer every input alike, and a
comparison would test nothing). A cell is the largest relative difference,
max |exported - compiled| / max |compiled| over the outputs, at batch 1 and
3 (sequences of 3 and 7 steps),
or "no" with a note number when the format cannot express the model; the
notes follow the table. Seconds per export are printed to stderr.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler.api import compile_file  # noqa: E402
from compiler.export import ExportError, ExportSettings, export  # noqa: E402
from compiler.export.check import (TOLERANCE, calibrate, input_dependence, onnx_difference,  # noqa: E402
                                   torchscript_difference)

CHECKS = {"onnx": onnx_difference, "torchscript": torchscript_difference}


def variants(spec: Path) -> list[str | None]:
    names = list((yaml.safe_load(spec.read_text()).get("variants") or {}))
    return [str(v) for v in names] or [None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--specs", nargs="*",
                        help="spec names, every variant, or SPEC:VARIANT (default: every spec in specs/)")
    parser.add_argument("--formats", nargs="*", default=list(CHECKS), choices=list(CHECKS))
    args = parser.parse_args()
    rows = []
    for name in args.specs or sorted(p.stem for p in (ROOT / "specs").glob("*.yaml")):
        spec, _, variant = name.partition(":")
        path = ROOT / "specs" / f"{spec}.yaml"
        rows += [(path, variant)] if variant else [(path, v) for v in variants(path)]
    notes: list[str] = []
    print("| spec | variant | " + " | ".join(args.formats) + " |")
    print("| --- | --- | " + " | ".join("---:" for _ in args.formats) + " |")
    for spec, variant in rows:
        cells = []
        for fmt in args.formats:
            model = compile_file(spec, variant or None)
            calibrate(model)
            dependence = input_dependence(model)
            if dependence < TOLERANCE:  # the outputs vary less than the check allows: it would test nothing
                print(f"{spec.stem} {variant}: outputs vary by {dependence:.1e} only", file=sys.stderr)
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as repo:
                try:
                    folder = export(model, fmt, Path(repo), ExportSettings(name=model.name))
                    cells.append(f"{CHECKS[fmt](model, folder):.1e}")
                except ExportError as e:
                    if e.message not in notes:
                        notes.append(e.message)
                    cells.append(f"no ({notes.index(e.message) + 1})")
            print(f"{spec.stem} {variant} {fmt}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
        print(f"| `{spec.stem}` | {f'`{variant}`' if variant else '-'} | " + " | ".join(cells) + " |", flush=True)
    for k, note in enumerate(notes, 1):
        print(f"\n({k}) {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
