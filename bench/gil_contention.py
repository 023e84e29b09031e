"""A forward in torch against the same model in ONNX Runtime, alone and
beside a Python thread that never sleeps (as a server's event loop and
gRPC's threads hold the GIL): torch takes the GIL back after each of its
operations, ONNX Runtime once a run. The figures of docs/serving.md's Fast
mode section.

    python bench/gil_contention.py                       # lenet, batch 4, one thread
    python bench/gil_contention.py --spec resnet.yaml --variant 50 --batch 8 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler.api import compile_file  # noqa: E402
from service.fast import FastOptions  # noqa: E402
from service.runtime import Runtime  # noqa: E402


def median_ms(run, inputs, seconds: float) -> float:
    run(inputs)  # warm-up
    times, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 3:
        start = time.perf_counter()
        run(inputs)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


class Spinner:
    """A thread running Python bytecode until stopped."""

    def __enter__(self):
        self.stop = False
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()
        return self

    def _spin(self):
        n = 0
        while not self.stop:
            n += 1

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="lenet.yaml")
    parser.add_argument("--variant")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch's and ONNX Runtime's threads per operation")
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = compile_file(ROOT / "specs" / args.spec, args.variant)
    shape = [args.batch if d == "N" else d for d in next(iter(model.inputs.values())).shape]
    inputs = [torch.randn(shape)]
    device = torch.device("cpu")
    runs = {"torch": Runtime(model, device=device, max_batch_size=args.batch),
            "onnxruntime": Runtime(model, device=device, max_batch_size=args.batch,
                                   fast=FastOptions(onnxruntime=True))}
    print(f"{args.spec} {args.variant or ''} batch {args.batch}, {args.threads} thread(s); median ms a forward")
    print(f"{'':12} {'alone':>9} {'beside a spinning thread':>25}")
    for name, runtime in runs.items():
        alone = median_ms(runtime.run, inputs, args.seconds)
        with Spinner():
            contended = median_ms(runtime.run, inputs, args.seconds)
        print(f"{name:12} {alone:>9.3f} {contended:>25.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
