"""The `netspec` command line."""
from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from .errors import InternalError, SpecError

EXAMPLES = {
    "check": "netspec check specs/resnet.yaml --variant 50",
    "summary": "netspec summary specs/alexnet.yaml --json\n"
               "  netspec summary specs/googlenet.yaml --outputs logits --by block --weights-only --units paper",
    "compile": "netspec compile specs/lenet.yaml --repository models/   (or: netspec compile specs/ --repository models/)\n"
               "  netspec compile specs/googlenet.yaml --outputs logits --repository models/",
    "verify": "netspec verify specs/vgg.yaml --variant D --against torchvision:vgg16",
    "ops": "netspec ops",
}


class UsageError(Exception):
    """A bad command line: one line, exit 2."""


def output_names(text: str) -> list[str]:
    """--outputs logits,aux1 -> ['logits', 'aux1']"""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one output, e.g. --outputs logits")
    return names


OUTPUTS_HELP = "keep only these outputs (comma-separated) and the layers they need, e.g. 'logits'"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netspec", description="Compile declarative YAML network specs into PyTorch and serve them.",
        epilog="Run 'netspec COMMAND --help' for a command's options and an example.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, epilog=f"example:\n  {EXAMPLES[name]}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    p = command("check", "Validate a spec; print its inputs and outputs with shapes.", cmd_check)
    p.add_argument("spec", type=Path)
    p.add_argument("--variant")
    p.add_argument("--outputs", type=output_names, help=OUTPUTS_HELP)

    p = command("summary", "Per-layer output shapes, parameters and multiply-adds.", cmd_summary)
    p.add_argument("spec", type=Path)
    p.add_argument("--variant")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--outputs", type=output_names, help=OUTPUTS_HELP)
    p.add_argument("--by", choices=("layer", "block"), default="layer",
                   help="one row per layer (default), or per top-level block instance")
    p.add_argument("--weights-only", action="store_true",
                   help="count weights without biases, as papers' tables do")
    p.add_argument("--units", choices=("exact", "paper"), default="exact",
                   help="exact counts (default), or params in K = 1024 and multiply-adds in M = 10^6")

    p = command("compile", "Compile specs into a Triton-style model repository.", cmd_compile)
    p.add_argument("specs", type=Path, nargs="+", help="spec files, or folders of them (every variant)")
    p.add_argument("--variant", help="the variant to compile (one spec only; default: the spec's default)")
    p.add_argument("--repository", type=Path, required=True, help="the repository folder to write into")
    p.add_argument("--outputs", type=output_names, help=OUTPUTS_HELP + " (one spec only)")
    p.add_argument("--name", help="the model's name in the repository (default: the spec's name)")
    p.add_argument("--version", type=int, default=1)
    p.add_argument("--weights", type=Path, help="a .safetensors file with the weights to store")
    p.add_argument("--seed", type=int, default=0, help="seed for PyTorch's default initialisation")
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32")
    p.add_argument("--no-dynamic-batching", dest="dynamic_batching", action="store_false")
    p.add_argument("--max-queue-delay-us", type=int, default=0,
                   help="how long a request may wait for others to join its batch (default 0: never held)")
    p.add_argument("--quiet", action="store_true", help="do not print the summaries")

    p = command("verify", "Compare a spec with a reference implementation on the same weights.", cmd_verify)
    p.add_argument("spec", type=Path)
    p.add_argument("--variant")
    p.add_argument("--against", required=True, help="torchvision:NAME or timm:NAME")
    p.add_argument("--outputs", type=output_names, help=OUTPUTS_HELP + "; the first is compared")
    p.add_argument("--tolerance", type=float, default=1e-5, help="largest relative difference accepted")
    p.add_argument("--json", action="store_true")

    command("ops", "List the ops a spec can use.", cmd_ops)

    for extension in ("service.cli", "compiler.graphviz_cli", "compiler.export.cli"):
        try:
            module = __import__(extension, fromlist=["add_commands"])
        except ImportError:
            continue
        module.add_commands(sub)
    return parser


def _print_warnings(graph) -> None:
    for w in graph.warnings:
        print(w.format(), file=sys.stderr)


def cmd_check(args) -> int:
    from .api import analyze_file
    from .report import io_text
    graph = analyze_file(args.spec, args.variant, args.outputs)
    _print_warnings(graph)
    print(io_text(graph))
    return 0


def cmd_summary(args) -> int:
    from .api import analyze_file
    from .report import summary_dict, summary_text
    graph = analyze_file(args.spec, args.variant, args.outputs)
    _print_warnings(graph)
    by = args.by if args.by == "block" else None
    print(json.dumps(summary_dict(graph, by, args.weights_only), indent=2) if args.json
          else summary_text(graph, by, args.weights_only, args.units))
    return 0


def spec_files(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
        elif path.exists():
            files.append(path)
        else:
            raise UsageError(f"no such spec file or folder: {path}")
    if not files:
        raise UsageError(f"no specs found in {', '.join(map(str, paths))}")
    return files


def cmd_compile(args) -> int:
    from .api import build, analyze_file
    from .artifact import write_version
    from .report import summary_text
    files = spec_files(args.specs)
    if len(files) > 1 and (args.name or args.variant or args.weights or args.outputs):
        raise UsageError("--name, --variant, --weights and --outputs apply to a single spec")
    repo = args.repository
    if repo.exists() and not repo.is_dir():
        raise UsageError(f"--repository {repo} exists and is not a folder")
    config = dict(max_batch_size=args.max_batch_size, dynamic_batching=args.dynamic_batching,
                  max_queue_delay_us=args.max_queue_delay_us, precision=args.precision)
    for file in files:
        graph = analyze_file(file, args.variant, args.outputs)
        _print_warnings(graph)
        name = args.name or graph.name
        folder = write_version(build(graph, args.seed), repo, name, args.version, args.weights, **config)
        if not args.quiet:
            print(summary_text(graph))
        print(f"wrote {folder}/ and {repo / name / 'config.pbtxt'}")
    return 0


def cmd_verify(args) -> int:
    from .api import compile_file
    from .verify import verify
    model = compile_file(args.spec, args.variant, outputs=args.outputs)
    result = verify(model, args.against, args.tolerance)
    if args.json:
        print(json.dumps({"model": model.name, "variant": model.variant, **result.as_dict()}, indent=2))
    else:
        verdict = "ok" if result.ok else "FAILED"
        print(f"{model.name}" + (f" (variant {model.variant})" if model.variant else "")
              + f" vs {result.reference}: {verdict}\n"
              f"  weights matched by {result.matched_by} ({result.tensors} tensors)\n"
              f"  max abs diff {result.max_abs:.3e}, max rel diff {result.max_rel:.3e} "
              f"(tolerance {result.tolerance:g})")
    return 0 if result.ok else 1


def cmd_ops(args) -> int:
    from .ops import OPS
    from .report import table
    rows = [["op", "parameters", "what it does"]]
    for name in sorted(OPS):
        op = OPS[name]
        fields = ", ".join(f"{k}" + ("" if f.is_required() else f"={f.default!r}")
                           for k, f in op.Params.model_fields.items())
        rows.append([name, fields or "-", op.doc])
    print(table(rows, right=set()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SpecError as e:
        print(e.format(), file=sys.stderr)
        return 2
    except UsageError as e:
        print(f"netspec {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except InternalError:
        traceback.print_exc()
        print("netspec: internal error (a bug in netspec, not in your spec); please report it "
              "with the traceback above", file=sys.stderr)
        return 3
    except Exception:
        traceback.print_exc()
        print("netspec: internal error (a bug in netspec, not in your spec); please report it "
              "with the traceback above", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
