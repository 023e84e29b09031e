"""`--format onnx`: NAME/K/model.onnx for Triton's ONNX Runtime backend (or
ONNX Runtime alone) and config.pbtxt with platform "onnxruntime_onnx".

The graph comes from torch.export (torch.onnx's dynamo exporter), with the
batch dimension N and every other symbolic dimension (a sequence's time T)
left dynamic: torch.nn's LSTM and GRU become ONNX's LSTM and GRU ops, a
cell's scan ONNX's Scan. A model whose code fixes such a dimension is
refused rather than exported for one size only.
"""
from __future__ import annotations

import contextlib
import io
import threading
import warnings
from pathlib import Path

import torch

from ...api import dim_steps
from .common import ExportError, ExportSettings, symbolic_dims, version_folder
from .config import model_config, write_config
from .inputs import example_inputs

MODEL_FILE = "model.onnx"
# Opset 18 is what torch.onnx's own op library targets; ONNX Runtime reads it
# from 1.14 on, which covers every Triton release since 23.02.
OPSET = 18
# Above this, weights go to an external data file beside model.onnx
# (protobuf cannot hold a message over 2 GiB).
INLINE_WEIGHTS_LIMIT = 1 << 30
# torch.export traces through process-wide state (dynamo's), and _quiet
# swaps the process's stdout: exports from several threads (a server loading
# models in parallel) take turns.
_exporting = threading.Lock()


def export(model, repository: Path, settings: ExportSettings) -> Path:
    onnx_program = program(model)
    module = model.module
    config = model_config(model, settings, platform="onnxruntime_onnx")
    with version_folder(repository, settings) as folder:
        size = sum(t.numel() * t.element_size() for t in module.state_dict().values())
        onnx_program.save(str(folder / MODEL_FILE), external_data=size > INLINE_WEIGHTS_LIMIT)
    write_config(Path(repository) / settings.name, config)
    return Path(repository) / settings.name / str(settings.version)


def program(model, module: torch.nn.Module | None = None):
    """The model's ONNX program (torch.onnx.ONNXProgram), its symbolic
    dimensions dynamic, from `module` (default: the model's own, e.g. with
    its batch norms folded). ExportError says why a model cannot be exported."""
    try:
        import onnx  # noqa: F401 - torch.onnx needs both, and says so less clearly
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ExportError(f"--format onnx needs the onnx and onnxscript packages ({e})",
                          hint="pip install 'netspec[onnx]'") from None
    module = (model.module if module is None else module).eval()
    args = example_inputs(model)
    try:
        with _exporting, _quiet():
            onnx_program = torch.onnx.export(module, args, dynamo=True, opset_version=OPSET,
                                             dynamic_shapes=_dynamic_shapes(model, module),
                                             input_names=list(model.inputs), output_names=list(model.outputs),
                                             optimize=True, verbose=False)
    except Exception as e:  # torch.export and torch.onnx raise many types; their message is the reason
        raise ExportError(f"torch.onnx cannot export {_what(model)}: {_first_lines(str(e))}") from e
    _check_dynamic(onnx_program.model_proto, model)
    return onnx_program


def _what(model) -> str:
    return f"'{model.name}'" + (f" (variant {model.variant})" if model.variant else "")


def _dynamic_shapes(model, module) -> dict:
    """{forward argument: {axis: Dim}}, one Dim per symbol (inputs sharing N share it); a
    symbol the model divides (H a multiple of 32) is that multiple of a Dim of its own."""
    steps = dim_steps(model.graph)
    dims: dict[str, torch.export.Dim] = {}

    def dim(symbol: str):
        if symbol not in dims:
            k = steps.get(symbol, 1)
            dims[symbol] = torch.export.Dim(symbol, min=1) if k == 1 else k * torch.export.Dim(f"{symbol}_{k}", min=1)
        return dims[symbol]

    per_input = [{axis: dim(symbol) for axis, symbol in axes.items()} for axes in symbolic_dims(model).values()]
    return dict(zip(_forward_arguments(module), per_input))


def _forward_arguments(module) -> list[str]:
    import inspect

    return [p.name for p in inspect.signature(module.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _check_dynamic(proto, model) -> None:
    """Every symbolic dimension of the spec must be symbolic in the ONNX graph.
    torch.onnx falls back to fixing a dimension when torch.export finds the
    model's code depends on its value (a loop over time steps): such a file
    would refuse every other size, so it is not written."""
    for graph_input, (name, axes) in zip(proto.graph.input, symbolic_dims(model).items()):
        shape = graph_input.type.tensor_type.shape.dim
        fixed = {symbol: shape[a].dim_value for a, symbol in axes.items() if shape[a].HasField("dim_value")}
        if fixed:
            sizes = ", ".join(f"{symbol} to {value}" for symbol, value in fixed.items())
            raise ExportError(
                f"torch.export fixes dimension {sizes} (the example's size) of input '{name}' of {_what(model)}: "
                "the model's code depends on its value, so the ONNX file would take no other size",
                hint="--format triton-python serves the model as it runs in PyTorch")


def _first_lines(text: str, n: int = 2) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[:n])


@contextlib.contextmanager
def _quiet():
    """torch.onnx prints its progress and torch.export warns about things
    that do not concern a user of the exported file."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield
