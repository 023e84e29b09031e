"""`netspec export`: compile a spec and write it in a format another server
loads (compiler/cli.py calls add_commands). Heavy imports wait for the
command to run."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import FORMATS

EXAMPLE = """example:
  netspec export specs/lenet.yaml --format triton-python --repository triton-models/
  netspec export specs/resnet.yaml --variant 18 --format onnx --repository triton-models/ --name resnet18
  netspec export specs/lenet.yaml --format torchscript --repository triton-models/ --weights lenet.safetensors

The folder written is a Triton model (config.pbtxt and a version folder):
tritonserver --model-repository triton-models/ serves it as it is."""


def add_commands(subparsers) -> None:
    from compiler.cli import OUTPUTS_HELP, output_names

    p = subparsers.add_parser(
        "export", help="write a spec as a Triton Python-backend model, ONNX or TorchScript",
        description="Compile a spec and write it into a Triton model repository in a format that Triton "
                    "(or ONNX Runtime) loads without netspec.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", type=Path)
    p.add_argument("--variant")
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="triton-python (Triton's Python backend runs the PyTorch module), "
                        "onnx (model.onnx, platform onnxruntime_onnx) or torchscript (model.pt, platform pytorch_libtorch)")
    p.add_argument("--repository", type=Path, required=True, help="the repository folder to write into")
    p.add_argument("--outputs", type=output_names, help=OUTPUTS_HELP)
    p.add_argument("--name", help="the model's name in the repository (default: the spec's name)")
    p.add_argument("--version", type=int, default=1)
    p.add_argument("--weights", type=Path, help="a .safetensors file with the weights, e.g. from netspec compile")
    p.add_argument("--seed", type=int, default=0, help="seed for PyTorch's default initialisation (without --weights)")
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--no-dynamic-batching", dest="dynamic_batching", action="store_false")
    p.add_argument("--max-queue-delay-us", type=int, default=0,
                   help="how long a request may wait for others to join its batch (default 0: never held)")
    p.add_argument("--python-site", action="append", default=[], metavar="DIR",
                   help="triton-python: a site-packages folder with torch and safetensors, added to the import "
                        "path of the Python backend on the Triton host (repeatable)")
    p.add_argument("--check", action="store_true",
                   help="onnx, torchscript: run the file written (onnxruntime, torch.jit.load) at two sizes and "
                        "compare with the compiled module; exit 1 above a relative difference of 1e-4")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    from compiler.api import analyze_file, build
    from compiler.artifact import load_weights
    from compiler.cli import UsageError

    from . import ExportError, ExportSettings, export

    _check_args(args, UsageError)
    graph = analyze_file(args.spec, args.variant, args.outputs)
    for warning in graph.warnings:
        print(warning.format(), file=sys.stderr)
    model = build(graph, args.seed)
    if args.weights is not None:
        load_weights(model.module, args.weights)
    settings = ExportSettings(
        name=args.name or model.name, version=args.version, max_batch_size=args.max_batch_size,
        dynamic_batching=args.dynamic_batching, max_queue_delay_us=args.max_queue_delay_us,
        python_site=tuple(args.python_site))
    try:
        folder = export(model, args.format, args.repository, settings)
    except ExportError as e:
        print(f"netspec export: error: {e.format()}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"netspec export: error: cannot write to {args.repository}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"wrote {folder}/ and {folder.parent / 'config.pbtxt'} ({args.format})")
    return _check(model, args.format, folder) if args.check else 0


def _check(model, format: str, folder: Path) -> int:
    from .check import TOLERANCE, onnx_difference, torchscript_difference

    difference = onnx_difference(model, folder) if format == "onnx" else torchscript_difference(model, folder)
    runner = "onnxruntime" if format == "onnx" else "torch.jit.load"
    verdict = "ok" if difference <= TOLERANCE else "FAILED"
    print(f"{runner} vs the compiled module: {verdict}, max rel diff {difference:.3e} (tolerance {TOLERANCE:g})")
    return 0 if difference <= TOLERANCE else 1


def _check_args(args, UsageError) -> None:
    if args.repository.exists() and not args.repository.is_dir():
        raise UsageError(f"--repository {args.repository} exists and is not a folder")
    if not args.spec.is_file():
        raise UsageError(f"no such spec file: {args.spec}")
    name = args.name
    if name is not None and (not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith(".")):
        raise UsageError(f"--name {name!r}: a model name is one folder name, not starting with '.'")
    if args.version < 1:
        raise UsageError(f"--version {args.version}: Triton's versions are whole numbers from 1")
    if args.max_batch_size < 0:
        raise UsageError(f"--max-batch-size {args.max_batch_size}: expected 0 (no batching) or more")
    if args.max_queue_delay_us < 0:
        raise UsageError(f"--max-queue-delay-us {args.max_queue_delay_us}: expected 0 or more")
    if args.python_site and args.format != "triton-python":
        raise UsageError("--python-site applies to --format triton-python only")
    if args.check and args.format == "triton-python":
        raise UsageError("--check applies to --format onnx and torchscript (a triton-python model runs in Triton)")
