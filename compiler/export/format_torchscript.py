"""`--format torchscript`: NAME/K/model.pt for Triton's PyTorch (libtorch)
backend and config.pbtxt with platform "pytorch_libtorch".

The module is compiled by torch.jit.script, not traced: tracing would fix
every dimension of the example (a sequence's length) and drop control flow.
A TorchScript file has no tensor names, so Triton's PyTorch backend matches
the config by its own rules: inputs by the forward function's argument
names (the spec's input names), outputs by `<name>__<index>`, the index
being the position in the returned tuple (`logits__0`).

model.pt is TorchScript's own archive (the format the backend loads);
torch.jit.load rebuilds TorchScript code and tensors from it, no Python
object of ours.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .common import ExportError, ExportSettings, version_folder
from .config import model_config, write_config

MODEL_FILE = "model.pt"


def output_names(model) -> list[str]:
    return [f"{name}__{k}" for k, name in enumerate(model.outputs)]


def export(model, repository: Path, settings: ExportSettings) -> Path:
    module = model.module.eval()
    try:
        with warnings.catch_warnings():
            # torch.jit is deprecated in favour of torch.export, but Triton's
            # PyTorch backend loads TorchScript only.
            warnings.simplefilter("ignore")
            scripted = torch.jit.script(module)
    except Exception as e:  # TorchScript's frontend raises several error types
        reason = _reason(str(e)) or type(e).__name__
        raise ExportError(f"TorchScript cannot compile '{model.name}'"
                          + (f" (variant {model.variant})" if model.variant else "") + f": {reason}",
                          hint="--format onnx or --format triton-python export it") from e
    arguments = [a.name for a in scripted.forward.schema.arguments[1:]]  # [0] is self
    if arguments != list(model.inputs):
        raise ExportError(f"the scripted forward takes {arguments}, not the model's inputs {list(model.inputs)}")
    config = model_config(model, settings, platform="pytorch_libtorch", output_names=output_names(model))
    with version_folder(repository, settings) as folder:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(scripted, str(folder / MODEL_FILE))
    write_config(Path(repository) / settings.name, config)
    return Path(repository) / settings.name / str(settings.version)


def _reason(text: str) -> str:
    """TorchScript's first line, and the line of code it points at:
    "Tensor (inferred) cannot be used as a tuple, at `result = self.cell(x_t, *states)` (cells.py:222)"."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    reason = lines[0].strip().rstrip(":")
    marker = next((k for k, line in enumerate(lines) if "<--- HERE" in line), None)
    where = next((line.strip() for line in lines if line.strip().startswith("File ")), "")
    if marker:
        reason += f", at `{lines[marker - 1].strip()}`"
        if where:  # File "/x/cells.py", line 222
            file, _, line = where.removeprefix("File ").partition(", line ")
            reason += f" ({Path(file.strip(chr(34))).name}:{line})"
    return reason
