"""The `netspec` command line.

The compiler's commands are defined here; other packages add theirs through
the `netspec.commands` entry point group (the service adds `serve` and
`infer`), so the compiler never imports them.  A command imports what it
needs when it runs.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import traceback
import types
from pathlib import Path

from .errors import InternalError, ResourceError, UserError

EXAMPLES = {
    "check": "netspec check specs/resnet.yaml --variant 50",
    "summary": "netspec summary specs/alexnet.yaml --json\n"
               "  netspec summary specs/googlenet.yaml --outputs logits --by block --weights-only --units paper\n"
               "  netspec summary specs/gpt.yaml --dims T=128",
    "compile": "netspec compile specs/lenet.yaml --repository models/   (or: netspec compile specs/ --repository models/)\n"
               "  netspec compile specs/googlenet.yaml --outputs logits --repository models/",
    "verify": "netspec verify specs/vgg.yaml --variant D --against torchvision:vgg16",
    "graph": "netspec graph specs/googlenet.yaml --variant paper --depth 1 -o googlenet.svg\n"
             "  netspec graph specs/resnet.yaml --variant 18 -o resnet18.png",
    "ops": "netspec ops",
    "schema": "netspec schema -o specs/netspec.schema.json\n"
              "  (a spec's first line '# yaml-language-server: $schema=netspec.schema.json' points VS Code's YAML\n"
              "  extension at it)",
    "lsp": "netspec lsp   (started by the editor: see docs/editor.md)",
    "diff": "netspec diff specs/resnet.yaml specs/resnet.yaml --variant 50 --variant-b 101\n"
            "  netspec diff old.yaml new.yaml --json",
    "export": "netspec export specs/lenet.yaml --format triton-python --repository triton-models/\n"
              "  netspec export specs/resnet.yaml --variant 18 --format onnx --repository triton-models/ --name resnet18\n"
              "  netspec export specs/lenet.yaml --format torchscript --repository triton-models/ --weights lenet.safetensors\n"
              "\nThe folder written is a Triton model (config.pbtxt and a version folder):\n"
              "tritonserver --model-repository triton-models/ serves it as it is.",
}
PLUGINS = "netspec.commands"  # entry points: callables taking the subparsers, adding commands
BUG = "a bug in netspec, not in your spec; please report it"


class UsageError(UserError):
    """A bad command line: one line, exit 2."""

    def format(self) -> str:
        return str(self)


def output_names(text: str) -> list[str]:
    """--outputs logits,aux1 -> ['logits', 'aux1']"""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one output, e.g. --outputs logits")
    return names


OUTPUTS_HELP = "keep only these outputs (comma-separated) and the layers they need, e.g. 'logits'"


def dim_sizes(text: str) -> dict[str, int]:
    """--dims T=128 -> {'T': 128}"""
    sizes = {}
    for item in filter(None, (i.strip() for i in text.split(","))):
        symbol, _, size = item.partition("=")
        if not symbol.strip().isidentifier() or not size.strip().isdigit() or int(size) < 1:
            raise argparse.ArgumentTypeError(f"'{item}' is not SYMBOL=SIZE, e.g. --dims T=128")
        sizes[symbol.strip()] = int(size)
    if not sizes:
        raise argparse.ArgumentTypeError("give at least one SYMBOL=SIZE, e.g. --dims T=128")
    return sizes


def _parser(plugins: bool = True, only: str | None = None) -> tuple[argparse.ArgumentParser, list[str]]:
    """The parser, and the problems met loading other packages' commands
    (not loaded when `plugins` is false).  With `only`, the name of one of
    the compiler's commands, the other commands are named (for the list of
    choices and `--help`) without their arguments: adding every command's
    arguments costs more than parsing the command line does."""
    parser = argparse.ArgumentParser(
        prog="netspec", description="Compile declarative YAML network specs into PyTorch and serve them.",
        epilog="Run 'netspec COMMAND --help' for a command's options and an example.")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str, func, arguments, description: str | None = None) -> None:
        p = sub.add_parser(name, help=help, description=description or help, epilog=f"example:\n  {EXAMPLES[name]}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        if arguments is not None and only in (None, name):
            arguments(p)

    command("check", "Validate a spec; print its inputs and outputs with shapes.", cmd_check, _check_arguments)
    command("summary", "Per-layer output shapes, parameters and multiply-adds.", cmd_summary, _summary_arguments)
    command("compile", "Compile specs into a Triton-style model repository.", cmd_compile, _compile_arguments)
    command("verify", "Compare a spec with a reference implementation on the same weights.", cmd_verify,
            _verify_arguments)
    command("graph", "Draw a spec's graph with Graphviz (.dot, .svg or .png).", cmd_graph, _graph_arguments,
            "Draw a spec's graph with Graphviz: block instances as clusters, edges labelled "
            "with shapes. .svg and .png need the 'dot' program (Debian package graphviz).")
    command("export", "Write a spec as a Triton Python-backend model, ONNX or TorchScript.", cmd_export,
            _export_arguments,
            "Compile a spec and write it into a Triton model repository in a format that Triton "
            "(or ONNX Runtime) loads without netspec.")
    command("diff", "The semantic difference of two specs after expansion.", cmd_diff, _diff_arguments,
            "Compare two specs (or two variants of one) after expansion: nodes added and removed (whole "
            "block instances as one line), nodes whose op, parameters, inputs or output shape changed, "
            "and the parameter and multiply-add deltas per node and in total. Not a text diff.")
    command("ops", "List the ops a spec can use.", cmd_ops, None)
    command("schema", "Print the JSON Schema of the spec language (for editors).", cmd_schema, _schema_arguments,
            "Print the JSON Schema (draft 2020-12) of the spec language, generated from the spec's models "
            "and every op's parameters.")
    command("lsp", "Run the language server on stdin and stdout (for editors).", cmd_lsp, _lsp_arguments,
            "Run netspec's language server over stdio: diagnostics as you type, hover with output shapes, "
            "parameters and multiply-adds, go to definition, completion and shape hints. The variant shown is "
            "the client's 'netspec.variant' setting. Set-up for VS Code and Neovim: docs/editor.md.")

    problems = []
    if not plugins:
        return parser, problems
    from importlib.metadata import entry_points  # its import alone is a tenth of a `check`
    for plugin in entry_points(group=PLUGINS):
        try:
            add_commands = plugin.load()
        except ImportError as e:  # said on every run, so a broken install never hides a command
            problems.append(f"netspec: the commands of '{plugin.name}' ({plugin.value}) cannot be loaded: "
                            f"{type(e).__name__}: {e}")
            continue
        add_commands(sub)
    return parser, problems


def _check_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", type=Path)
    p.add_argument("--variant")
    p.add_argument("--outputs", type=output_names, help=OUTPUTS_HELP)


def _summary_arguments(p: argparse.ArgumentParser) -> None:
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
    p.add_argument("--dims", type=dim_sizes,
                   help="count at these sizes of symbolic input dims, e.g. 'T=128' (default: a symbolic "
                        "length counts one position)")


def _compile_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", type=Path, nargs="+", help="spec files, or folders of them (each spec's default variant)")
    p.add_argument("--variant", help="the variant to compile (one spec only; default: the spec's default)")
    p.add_argument("--repository", type=Path, required=True, help="the repository folder to write into")
    p.add_argument("--outputs", type=output_names, help=OUTPUTS_HELP + " (one spec only)")
    p.add_argument("--name", help="the model's name in the repository (default: the spec's name)")
    p.add_argument("--version", type=int, default=1)
    p.add_argument("--weights", type=Path, help="a .safetensors file with the weights to store")
    p.add_argument("--seed", type=int, default=0, help="seed for PyTorch's default initialisation")
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32")
    p.add_argument("--fast", action="store_true",
                   help="write the fast mode into config.pbtxt: batch norms folded, channels_last, and on a GPU "
                        "torch.compile and CUDA graphs (docs/serving.md, Fast mode)")
    p.add_argument("--no-dynamic-batching", dest="dynamic_batching", action="store_false")
    p.add_argument("--max-queue-delay-us", type=int, default=0,
                   help="how long a request may wait for others to join its batch (default 0: never held)")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--verbose", action="store_true", help="print each model's per-layer summary too")
    shown.add_argument("--quiet", action="store_true", help="print nothing but warnings and errors")


def _verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", type=Path)
    p.add_argument("--variant")
    p.add_argument("--against", required=True, help="torchvision:NAME, timm:NAME, torch.nn:LSTM|GRU|RNN or "
                   "torch.nn:TransformerEncoder|TransformerEncoderLayer|MultiheadAttention")
    p.add_argument("--outputs", type=output_names, help=OUTPUTS_HELP + "; the first is compared")
    p.add_argument("--tolerance", type=float, default=1e-5, help="largest relative difference accepted")
    p.add_argument("--json", action="store_true")


def _graph_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", type=Path)
    p.add_argument("--variant")
    p.add_argument("--outputs", type=output_names, help=OUTPUTS_HELP)
    p.add_argument("--depth", type=int,
                   help="levels of block instances drawn open; deeper ones are one box each "
                        "(0: every top-level instance is one box; default: all open)")
    p.add_argument("-o", "--output", type=Path, required=True, help="the file to write: .dot, .svg or .png")


def _export_arguments(p: argparse.ArgumentParser) -> None:
    from .tools.export import FORMATS as export_formats  # torch-free, as every module the parser reads
    p.add_argument("spec", type=Path)
    p.add_argument("--variant")
    p.add_argument("--format", required=True, choices=export_formats,
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
                        "compare with the compiled module; exit 1 above a relative difference of 1e-4 (or of twice "
                        "the module's own float32 error, measured against float64, where that is larger)")


def _diff_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec_a", type=Path, metavar="A.yaml")
    p.add_argument("spec_b", type=Path, metavar="B.yaml")
    p.add_argument("--variant", help="the variant of A (and of B, unless --variant-b)")
    p.add_argument("--variant-b", help="the variant of B (default: --variant)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--exit-code", action="store_true", help="exit 1 when the specs differ, as git diff --exit-code")


def _schema_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", type=Path, help="write it to this file instead")
    p.add_argument("--check", action="store_true",
                   help="with -o: exit 1 if the file differs from what would be written")


def _lsp_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stdio", action="store_true",
                   help="accepted for clients that add it (stdin and stdout are the only transport)")


def _print_warnings(graph) -> None:
    for w in graph.warnings:
        print(w.format(), file=sys.stderr)


def cmd_check(args) -> int:
    from .api import analyze_file
    from .tools.report import io_text
    graph = analyze_file(args.spec, args.variant, args.outputs)
    _print_warnings(graph)
    print(io_text(graph))
    return 0


def cmd_summary(args) -> int:
    from .api import analyze_file
    from .tools.report import summary_dict, summary_text
    graph = analyze_file(args.spec, args.variant, args.outputs, args.dims)
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


def settle_imports(args) -> None:
    """Where the command is the process's own (not main() called by a
    program that goes on), puts every object the imports made (torch's
    modules, classes and functions: most of the process) out of the garbage
    collector's reach for the rest of the command, as they live as long as
    it does. Otherwise every full collection scans them all: compiling
    ResNet-152 met one of about 100 ms in a build of 285, and starting the
    server on the zoo seven, 856 ms of a 6.6 s start. What is made
    afterwards (a model the server loads, then unloads) is collected as
    before."""
    if not args.owns_process:
        return
    import torch  # noqa: F401 - imported here so that its objects are among them

    gc.freeze()


def cmd_compile(args) -> int:
    from .api import analyze_file, build
    from .tools.artifact import write_version
    from .tools.report import summary_text
    settle_imports(args)
    files = spec_files(args.specs)
    if len(files) > 1 and (args.name or args.variant or args.weights or args.outputs):
        raise UsageError("--name, --variant, --weights and --outputs apply to a single spec")
    repo = args.repository
    if repo.exists() and not repo.is_dir():
        raise UsageError(f"--repository {repo} exists and is not a folder")
    config = dict(max_batch_size=args.max_batch_size, dynamic_batching=args.dynamic_batching,
                  max_queue_delay_us=args.max_queue_delay_us, precision=args.precision, fast=args.fast)
    for file in files:
        graph = analyze_file(file, args.variant, args.outputs)
        _print_warnings(graph)
        name = args.name or graph.name
        model = build(graph, args.seed, initialise=args.weights is None)  # --weights replaces every one
        folder = write_version(model, repo, name, args.version, args.weights, **config)
        if args.verbose:
            print(summary_text(graph))
        if not args.quiet:  # one line a model: a folder of specs stays readable before a server starts
            print(f"wrote {folder}/ and {repo / name / 'config.pbtxt'} ({_size(graph)})")
    return 0


def _size(graph) -> str:
    from .tools.report import human, summary_dict
    totals = summary_dict(graph)
    return f"{human(totals['total_params'])} parameters, {human(totals['total_macs'])} multiply-adds per sample"


def cmd_verify(args) -> int:
    from .api import compile_file
    from .tools.verify import verify
    settle_imports(args)
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


def cmd_graph(args) -> int:
    from .api import analyze_file
    from .tools.picture import FORMATS, INSTALL_HINT, render, to_dot
    out: Path = args.output
    if out.suffix not in FORMATS:
        raise UsageError(f"-o {out}: the file must end in {', '.join(FORMATS)}")
    if args.depth is not None and args.depth < 0:
        raise UsageError(f"--depth must be 0 or more, got {args.depth}")
    if not args.spec.exists():
        raise UsageError(f"no such spec file: {args.spec}")
    if not out.parent.is_dir():
        raise UsageError(f"-o {out}: the folder {out.parent} does not exist")
    graph = analyze_file(args.spec, args.variant, args.outputs)
    try:
        written = render(to_dot(graph, args.depth), out)
    except FileNotFoundError as e:
        print(f"netspec graph: wrote {e.args[0]}, but cannot render {out.suffix[1:]}: no 'dot' program; "
              f"{INSTALL_HINT}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        raise UsageError(str(e)) from None
    print(f"wrote {written}")
    return 0


def cmd_export(args) -> int:
    from .api import analyze_file, build
    from .tools.artifact import load_weights
    from .tools.export import ExportSettings, export
    _check_export_args(args)
    settle_imports(args)
    graph = analyze_file(args.spec, args.variant, args.outputs)
    _print_warnings(graph)
    model = build(graph, args.seed, initialise=args.weights is None)  # --weights replaces every one
    if args.weights is not None:
        load_weights(model.module, args.weights)
    settings = ExportSettings(
        name=args.name or model.name, version=args.version, max_batch_size=args.max_batch_size,
        dynamic_batching=args.dynamic_batching, max_queue_delay_us=args.max_queue_delay_us,
        python_site=tuple(args.python_site))
    try:
        folder = export(model, args.format, args.repository, settings)
    except OSError as e:
        raise ResourceError(f"cannot write to {args.repository}: {e.strerror or e}",
                            hint="choose a repository folder you can write to") from None
    print(f"wrote {folder}/ and {folder.parent / 'config.pbtxt'} ({args.format})")
    if not args.check:
        return 0
    from .tools.export.check import accepts, onnx_difference, torchscript_difference
    difference = (onnx_difference if args.format == "onnx" else torchscript_difference)(model, folder)
    ok, allowed = accepts(model, difference)
    runner = "onnxruntime" if args.format == "onnx" else "torch.jit.load"
    verdict = "ok" if ok else "FAILED"
    print(f"{runner} vs the compiled module: {verdict}, max rel diff {difference:.3e} (tolerance {allowed:.1e}: "
          f"1e-4, or twice the module's own float32 error where larger)")
    return 0 if ok else 1


def _check_export_args(args) -> None:
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


def cmd_diff(args) -> int:
    from .api import analyze_file
    from .tools.diff import diff, diff_dict, diff_text
    a = analyze_file(args.spec_a, args.variant)
    b = analyze_file(args.spec_b, args.variant_b if args.variant_b is not None else args.variant)
    d = diff(a, b)
    print(json.dumps(diff_dict(d), indent=2) if args.json else diff_text(d))
    return 1 if args.exit_code and not d.empty else 0


def cmd_ops(args) -> int:
    from .ops import public_ops
    from .tools.report import table
    rows = [["op", "parameters", "what it does"]]
    for name, op in public_ops().items():
        fields = ", ".join(f"{k}" + ("" if f.is_required() else f"={f.default!r}")
                           for k, f in op.Params.model_fields.items())
        rows.append([name, fields or "-", op.doc])
    print(table(rows, right=set()))
    return 0


def cmd_schema(args) -> int:
    from .editor.json_schema import spec_schema
    text = json.dumps(spec_schema(), indent=2) + "\n"
    if args.output is None:
        if args.check:
            raise UsageError("--check needs -o FILE, the schema file to compare")
        sys.stdout.write(text)
        return 0
    if args.check:
        current = args.output.read_text() if args.output.is_file() else None
        if current != text:
            print(f"{args.output} is stale: run 'netspec schema -o {args.output}'", file=sys.stderr)
            return 1
        return 0
    try:
        args.output.write_text(text)
    except OSError as e:
        raise ResourceError(f"cannot write {args.output}: {e.strerror or e}") from None
    print(f"wrote {args.output}")
    return 0


def cmd_lsp(args) -> int:
    try:
        from .editor.server import serve  # pygls: only this command loads it
    except ImportError as e:
        if (e.name or "").split(".")[0] not in ("pygls", "lsprotocol"):
            raise
        raise ResourceError(f"the language server needs pygls: {e}",
                            hint="pip install 'netspec[editor]' (or pip install 'pygls>=2')") from None
    serve()
    return 0


def _own_command(argv: list[str]) -> str | None:
    """The compiler's own command the command line names, if it names one:
    then other packages' commands are not looked up, since scanning the
    installed packages' entry points and importing their command modules
    costs more than a whole `netspec check`."""
    words = [w for w in argv if not w.startswith("-")]
    return words[0] if words and words[0] in EXAMPLES else None


PYDANTIC_PLUGIN_LOADER = "pydantic.plugin._loader"


def _without_pydantic_plugins() -> None:
    """Tell pydantic that the compiler's commands use no pydantic plugin.

    The first validator pydantic builds looks its plugins up among every
    installed package's entry points: importing importlib.metadata and
    reading each package's metadata costs a tenth of a `netspec check`.  The
    loader put in its place answers "no plugins", as PYDANTIC_DISABLE_PLUGINS
    makes pydantic's own do, without the look-up.  Someone who sets that
    variable (to disable some plugins only) keeps pydantic's loader."""
    if PYDANTIC_PLUGIN_LOADER in sys.modules or "PYDANTIC_DISABLE_PLUGINS" in os.environ:
        return
    loader = types.ModuleType(PYDANTIC_PLUGIN_LOADER, "No pydantic plugins: netspec's commands use none.")
    loader.PYDANTIC_ENTRY_POINT_GROUP = "pydantic"
    loader.get_plugins = lambda: ()
    sys.modules[PYDANTIC_PLUGIN_LOADER] = loader


def main(argv: list[str] | None = None) -> int:
    own_process = argv is None  # the `netspec` command itself, not a call from a program that goes on
    argv = sys.argv[1:] if argv is None else argv
    own = _own_command(argv)
    if own is not None:
        _without_pydantic_plugins()
    parser, problems = _parser(plugins=own is None, only=own)
    for problem in problems:
        print(problem, file=sys.stderr)
    args = parser.parse_args(argv)
    args.owns_process = own_process
    try:
        return args.func(args)
    except UsageError as e:
        print(f"netspec {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ResourceError as e:  # not in the spec: said like a bad command line, naming the command
        print(f"netspec {args.command}: {e.format()}", file=sys.stderr)
        return 2
    except UserError as e:
        print(e.format(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug: said as one, with the traceback when asked for
        if args.debug:
            traceback.print_exc()
        text = e.format() if isinstance(e, InternalError) else f"internal error: {type(e).__name__}: {e}"
        print(f"netspec: {text}\n  ({BUG}{'' if args.debug else '; run with --debug for the traceback'})",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
