"""ResNet-50 on a CUDA GPU: netspec's plain and fast modes against
torchvision's resnet50 (eager, torch.compile, a CUDA graph), in fp32 and
bf16 at batch 1 and 256, then served; one run, all side by side.

    python bench/gpu_fast.py                    # the whole run: about 6 minutes on an H200
    python bench/gpu_fast.py --no-compile       # without torch.compile (a minute or two)
    python bench/gpu_fast.py --no-serve
    python bench/gpu_fast.py --serve-only --serve-device cpu --duration 2   # the served part, checked without a GPU

In process, every variant runs on inputs already on the GPU, as the
runtime hands them to the module (the fast mode's batch-256 and batch-1
paths are what `netspec serve` runs for such a batch: copy into the
captured graph's buffers, replay, copy out). Channels-last everywhere but
netspec plain. Rows:

    netspec plain       the compiled module, eager, contiguous
    netspec fast        batch norms folded, channels_last, a CUDA graph at the batch size
    netspec fast+comp   the same with torch.compile (inductor, default mode) inside the graph
    torchvision eager   torchvision.models.resnet50, channels_last
    torchvision comp    the same with torch.compile (default mode)
    torchvision graph   the same captured in a CUDA graph (batch 1)

Then `netspec serve --device cuda` with ResNet-50 bf16 in plain and fast
mode (folded, channels_last, CUDA graphs at 1, 2, 4, 8, 16; no compile, to
keep the load short), batch-1 requests from a closed-loop client at
concurrency 1 and 16, next to bench/serve.py's echo server at the same
payload (the gRPC floor). Prints the card, the tables and the max abs
difference of each fast variant's outputs from netspec plain's.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUDGET_S = 7 * 60  # stop starting compilations past this, so one run stays under 8 minutes
DTYPES = ("bf16", "fp32")
BATCHES = (256, 1)
SERVED_GRAPH_SIZES = (1, 2, 4, 8, 16)


def timed(step, x, iters: int) -> float:
    """Seconds per call of step(x), after warm-up, the GPU synchronised."""
    import torch

    for _ in range(3):
        step(x)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        step(x)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def netspec_runtime(model, precision: str, batch: int, *, fast: bool, compile_: bool):
    from service.fast import FastOptions, GraphSpec
    from service.runtime import Runtime

    options = FastOptions(fold_batch_norm=True, channels_last=True, cuda_graphs=True,
                          graph_specs=(GraphSpec(batch),), compile={"cuda": {}} if compile_ else {}) if fast else FastOptions()
    import torch

    return Runtime(copy.deepcopy(model), device=torch.device("cuda"), precision=precision,
                   max_batch_size=max(BATCHES), fast=options)


def in_process(args, started: float) -> list[list[str]]:
    import torch
    import torchvision

    from compiler.api import compile_file
    from service.cuda_graphs import PaddedGraphs, cuda_capture
    from service.runtime import _PRECISION_DTYPES

    torch.backends.cudnn.benchmark = True
    model = compile_file(ROOT / "specs" / "resnet.yaml", "50")
    g = torch.Generator().manual_seed(0)
    for m in model.module.modules():  # statistics that a wrong fold would not survive
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    rows = []
    for precision in DTYPES:
        dtype = _PRECISION_DTYPES[precision]
        tv = torchvision.models.resnet50().eval().cuda().to(dtype).to(memory_format=torch.channels_last)
        for batch in BATCHES:
            iters = 20 if batch > 1 else 200
            x = torch.randn(batch, 3, 224, 224, device="cuda").to(dtype)
            x_cl = x.contiguous(memory_format=torch.channels_last)
            results: dict[str, float | str] = {}
            diffs: dict[str, float] = {}
            with torch.inference_mode():
                plain = netspec_runtime(model, precision, batch, fast=False, compile_=False)
                reference = plain.execute([x])[0].float()
                results["netspec plain"] = timed(lambda a: plain.execute([a]), x, iters)
                del plain
                variants = [("netspec fast", False)] + ([("netspec fast+comp", True)] if args.compile else [])
                for name, compile_ in variants:
                    if compile_ and time.monotonic() - started > BUDGET_S:
                        results[name] = "skipped (time)"
                        continue
                    rt = netspec_runtime(model, precision, batch, fast=True, compile_=compile_)
                    diffs[name] = (rt.execute([x_cl])[0].float() - reference).abs().max().item()
                    results[name] = timed(lambda a: rt.execute([a]), x_cl, iters)
                    del rt
                results["torchvision eager"] = timed(tv, x_cl, iters)
                if args.compile and batch > 1:
                    if time.monotonic() - started > BUDGET_S:
                        results["torchvision comp"] = "skipped (time)"
                    else:
                        compiled = torch.compile(tv)
                        results["torchvision comp"] = timed(compiled, x_cl, iters)
                        del compiled
                if batch == 1:
                    graphs = PaddedGraphs(tv, [1], lambda n: [torch.zeros_like(x_cl)], cuda_capture())
                    results["torchvision graph"] = timed(lambda a: graphs.run([a]), x_cl, iters)
                    del graphs
            torch.cuda.empty_cache()
            for name, value in results.items():
                shown = value if isinstance(value, str) else (
                    f"{batch / value:,.0f} img/s" if batch > 1 else f"{value * 1e3:.2f} ms")
                diff = f"{diffs[name]:.2e}" if name in diffs else ""
                rows.append([precision, str(batch), name, shown, diff])
                print("  ".join(rows[-1]), flush=True)
    return rows


def serve_bench():
    """bench/serve.py's servers and closed-loop client."""
    spec = importlib.util.spec_from_file_location("serve_bench", ROOT / "bench" / "serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def served_fast_mode(path: Path) -> None:
    """What --fast wrote, less torch.compile (to keep the load short), with
    CUDA graphs at SERVED_GRAPH_SIZES."""
    from compiler.tools.pbtxt import config_text
    from service.config import read_config

    config = read_config(path)
    config.optimization.ClearField("execution_accelerators")
    for n in SERVED_GRAPH_SIZES:
        config.optimization.cuda.graph_spec.add(batch_size=n)
    path.write_text(config_text(config))


def served(args) -> list[list[str]]:
    sb = serve_bench()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        repo = tmp / "models"
        for name, extra in (("plain", []), ("fast", ["--fast"])):
            done = subprocess.run([sys.executable, "-m", "compiler.cli", "compile", str(ROOT / "specs" / "resnet.yaml"),
                                   "--variant", "50", "--name", name, "--precision", "bf16", "--max-batch-size", "16",
                                   "--repository", str(repo), "--quiet", *extra], cwd=ROOT, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(done.stderr)
        served_fast_mode(repo / "fast" / "config.pbtxt")
        echo = sb.start_echo(tmp)
        try:
            netspec = sb.start_netspec(repo, args.serve_device)  # it serves both models
        except BaseException:
            echo.stop()
            raise
        try:
            for label, url, model in (("echo (floor)", echo.url, "plain"), ("netspec plain", netspec.url, "plain"),
                                      ("netspec fast", netspec.url, "fast")):
                request = asyncio.run(sb.request_for(netspec.url, model))  # shaped from the model's metadata
                for c in (1, 16):
                    r = asyncio.run(sb.measure(url, request, c, args.duration, 4 * args.duration))
                    rows.append([label, str(c), f"{r['throughput']:,.0f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}"])
                    print("  ".join(rows[-1]), flush=True)
        finally:
            echo.stop()
            netspec.stop()
    return rows


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="leave out torch.compile")
    parser.add_argument("--no-serve", dest="serve", action="store_false", help="leave out the served part")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per served point (default 4)")
    parser.add_argument("--serve-only", action="store_true", help="only the served part")
    parser.add_argument("--serve-device", default="cuda", help="the served part's --device (default cuda)")
    args = parser.parse_args(argv)
    import torch

    if args.serve_only:
        print(table(["server", "concurrency", "infer/s", "p50 ms", "p99 ms"], served(args)))
        return 0
    if not torch.cuda.is_available():
        print("gpu_fast.py needs a CUDA GPU", file=sys.stderr)
        return 2
    started = time.monotonic()
    print(f"card: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    rows = in_process(args, started)
    served_rows = served(args) if args.serve else []
    print("\nResNet-50, inputs on the GPU (img/s at batch 256, ms per batch at batch 1); "
          "max abs diff: outputs against netspec plain's")
    print(table(["dtype", "batch", "variant", "speed", "max abs diff"], rows))
    if served_rows:
        print("\nServed, ResNet-50 bf16, batch-1 fp32 requests (602 KB), closed loop")
        print(table(["server", "concurrency", "infer/s", "p50 ms", "p99 ms"], served_rows))
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
