"""How far each fast-mode option moves a model's outputs on the CPU: the max
abs difference from the plain module, and the outputs' scale (the figures
of docs/serving.md's Fast mode table; the tests assert the tolerances).

    python bench/fast_equivalence.py              # folding, channels_last, bf16/fp16, padded graphs
    python bench/fast_equivalence.py --compile    # also torch.compile (inductor: a minute the first time)
    python bench/fast_equivalence.py --onnxruntime  # also cpu_execution_accelerator onnxruntime (an export per model)
    python bench/fast_equivalence.py --zoo        # folding in every spec of specs/ (default variants), batch 1
"""

from __future__ import annotations

import argparse
import copy
import string
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler.api import compile_file, compile_text, fold_batch_norm  # noqa: E402
from service.fast import FastOptions, GraphSpec  # noqa: E402
from service.runtime import Runtime  # noqa: E402

CPU = torch.device("cpu")

# Convolutions with batch norms, a residual add and a classifier over square images of $size
# pixels; the fast-mode tests (tests/service/test_fast*.py) build the same network from it.
CONV_NET = string.Template("""name: net
inputs: {image: {shape: [N, 3, $size, $size]}}
nodes:
  conv1: {op: conv2d, out_channels: 8, kernel: 3, padding: 1, bias: false}
  bn1: {op: batchnorm2d}
  act1: {op: relu}
  conv2: {op: conv2d, out_channels: 8, kernel: 3, padding: 1}
  bn2: {op: batchnorm2d}
  sum: {op: add, inputs: [act1, bn2]}
  pool: {op: global_avg_pool}
  fc: {op: linear, out_features: 5}
outputs: {logits: fc}
""")
NET = CONV_NET.substitute(size=8)


def with_statistics(model):
    g = torch.Generator().manual_seed(0)
    for m in model.module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if m.weight is not None:
                m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
    model.module.eval()
    return model


def row(option: str, model: str, want: torch.Tensor, got: torch.Tensor) -> None:
    print(f"{option:34} {model:28} max abs diff {(got.float() - want).abs().max().item():.1e}  "
          f"scale {want.abs().max().item():.2f}", flush=True)


def emulated_capture(fn, inputs):
    """torch.cuda.graph's contract on the CPU: fixed outputs, recomputed on replay."""
    outputs = (fn(*inputs).clone(),)
    return (lambda: outputs[0].copy_(fn(*inputs))), outputs


def zoo() -> None:
    """Folding in every spec of the zoo: how many norms, and the outputs' difference."""
    for spec in sorted((ROOT / "specs").glob("*.yaml")):
        model = with_statistics(compile_file(spec))
        folded = copy.deepcopy(model.module)
        n = fold_batch_norm(folded)
        g = torch.Generator().manual_seed(0)
        args = [torch.randint(0, 2, shape) if "int" in info.dtype else torch.randn(shape, generator=g)
                for info in model.inputs.values()
                for shape in [[1 if d == "N" else (7 if isinstance(d, str) else d) for d in info.shape]]]
        want, got = model.module(*args), folded(*args)
        want, got = (want,) if isinstance(want, torch.Tensor) else want, (got,) if isinstance(got, torch.Tensor) else got
        diff = max((a - b).abs().max().item() for a, b in zip(want, got))
        print(f"folding ({n:2} norms)  {spec.stem:14} max abs diff {diff:.1e}  "
              f"scale {max(a.abs().max().item() for a in want):.2f}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile", action="store_true", help="also torch.compile (inductor)")
    parser.add_argument("--onnxruntime", action="store_true", help="also ONNX Runtime (needs netspec[onnx])")
    parser.add_argument("--zoo", action="store_true", help="folding in every spec of specs/ instead")
    args = parser.parse_args(argv)
    if args.zoo:
        with torch.inference_mode():
            zoo()
        return 0
    x = lambda *shape: torch.randn(shape, generator=torch.Generator().manual_seed(1))  # noqa: E731
    with torch.inference_mode():
        for spec, variant, shape in [("resnet.yaml", "50", (2, 3, 64, 64)), ("mobilenet.yaml", "v2", (2, 3, 64, 64)),
                                     ("densenet.yaml", None, (1, 3, 32, 32))]:
            plain = with_statistics(compile_file(ROOT / "specs" / spec, variant)).module
            folded = copy.deepcopy(plain)
            n = fold_batch_norm(folded)
            inputs = x(*shape)
            row(f"folding ({n} norms)", f"{spec} {variant or ''} {list(shape)}", plain(inputs), folded(inputs))
        model = with_statistics(compile_text(NET))
        plain = Runtime(copy.deepcopy(model), device=CPU, max_batch_size=8)
        want = plain.run([x(8, 3, 8, 8)])[0][0]
        for precision in ("fp32", "bf16", "fp16"):
            fast = Runtime(copy.deepcopy(model), device=CPU, precision=precision, max_batch_size=8,
                           fast=FastOptions(fold_batch_norm=True, channels_last=True))
            row(f"folding + channels_last, {precision}", "residual convnet [8, 3, 8, 8]", want,
                fast.run([x(8, 3, 8, 8)])[0][0])
        graphed = Runtime(copy.deepcopy(model), device=CPU, max_batch_size=8, capture=emulated_capture,
                          fast=FastOptions(fold_batch_norm=True, channels_last=True, cuda_graphs=True,
                                           graph_specs=(GraphSpec(1), GraphSpec(2), GraphSpec(4))))
        for n in (1, 3, 4):
            row(f"padded graph (emulated), batch {n}", "residual convnet", plain.run([x(n, 3, 8, 8)])[0][0],
                graphed.run([x(n, 3, 8, 8)])[0][0])
        if args.compile:
            compiled = Runtime(copy.deepcopy(model), device=CPU, max_batch_size=8,
                               fast=FastOptions(compile={"cpu": {}}))
            row("torch.compile (inductor)", "residual convnet [8, 3, 8, 8]", want, compiled.run([x(8, 3, 8, 8)])[0][0])
        if args.onnxruntime:
            onnx = Runtime(copy.deepcopy(model), device=CPU, max_batch_size=8,
                           fast=FastOptions(fold_batch_norm=True, onnxruntime=True))
            row("folding + onnxruntime", "residual convnet [8, 3, 8, 8]", want, onnx.run([x(8, 3, 8, 8)])[0][0])
            resnet = with_statistics(compile_file(ROOT / "specs" / "resnet.yaml", "50"))
            want = Runtime(copy.deepcopy(resnet), device=CPU, max_batch_size=8).run([x(2, 3, 224, 224)])[0][0]
            for fold in (False, True):
                onnx = Runtime(copy.deepcopy(resnet), device=CPU, max_batch_size=8,
                               fast=FastOptions(fold_batch_norm=fold, onnxruntime=True))
                row("folding + onnxruntime" if fold else "onnxruntime", "resnet.yaml 50 [2, 3, 224, 224]", want,
                    onnx.run([x(2, 3, 224, 224)])[0][0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
