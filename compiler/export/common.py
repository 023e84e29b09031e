"""What every export format shares: its settings, its error, example inputs
for tracing, and writing a version folder so that a failed export leaves the
previous one in place."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

# Example sizes for tracing: not 0 or 1, which torch.export would take as
# special values and specialise a dimension to.
EXAMPLE_BATCH = 2
EXAMPLE_STEPS = 5


class ExportError(Exception):
    """A model that a format cannot express, or a folder that cannot be
    written: a message for people and a hint, never a traceback."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint

    def format(self) -> str:
        return self.message + (f"\n  hint: {self.hint}" if self.hint else "")


@dataclass(frozen=True)
class ExportSettings:
    name: str
    version: int = 1
    max_batch_size: int = 64  # 0: no batching, dims include the batch dimension
    dynamic_batching: bool = True
    max_queue_delay_us: int = 0
    python_site: tuple[str, ...] = field(default=())  # triton-python only


def batched(model) -> bool:
    """Triton batching needs every input and output to lead with the batch dim N."""
    tensors = list(model.inputs.values()) + list(model.outputs.values())
    return all(t.shape and t.shape[0] == "N" for t in tensors)


def example_inputs(model, sizes: dict[str, int] | None = None, integers: int = 1) -> tuple[torch.Tensor, ...]:
    """One tensor per model input, in input order: symbolic dimensions take
    `sizes[symbol]` (default: EXAMPLE_BATCH for N, EXAMPLE_STEPS for others).
    Integer inputs are drawn from [0, integers): the default, zeros, is a
    valid index for any embedding."""
    sizes = sizes or {}
    generator = torch.Generator().manual_seed(0)
    tensors = []
    for info in model.inputs.values():
        shape = [d if isinstance(d, int) else sizes.get(d, EXAMPLE_BATCH if d == "N" else EXAMPLE_STEPS)
                 for d in info.shape]
        dtype = getattr(torch, info.dtype)
        if dtype.is_floating_point:
            tensors.append(torch.randn(shape, generator=generator).to(dtype))
        else:
            tensors.append(torch.randint(0, integers, shape, generator=generator).to(dtype))
    return tuple(tensors)


def symbolic_dims(model) -> dict[str, dict[int, str]]:
    """{input: {axis: symbol}} for the symbolic dimensions of each input."""
    return {name: {axis: d for axis, d in enumerate(info.shape) if isinstance(d, str)}
            for name, info in model.inputs.items()}


@contextmanager
def version_folder(repository: Path, settings: ExportSettings):
    """Yields an empty folder to write the version into; on success it
    replaces DIR/NAME/VERSION whole (no file of an older export is left
    beside the new ones), on failure it is removed and the old one stays."""
    model_dir = Path(repository) / settings.name
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{settings.version}.", dir=model_dir))
    except OSError as e:
        raise ExportError(f"cannot write to {model_dir}: {e.strerror or e}",
                          hint="choose a repository folder you can write to") from None
    try:
        yield staging
        final = model_dir / str(settings.version)
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{settings.version}.old.", dir=model_dir))
            os.replace(final, old / "v")
            shutil.rmtree(old)
        os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def atomic_write(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)
