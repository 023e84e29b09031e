"""What every export format shares: its settings, its error, the symbolic
dimensions of its inputs, and writing a version folder so that a failed
export leaves the previous one in place.  Nothing here imports torch: the
command line reads it."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UserError


class ExportError(UserError):
    """A model that a format cannot express, or a folder that cannot be
    written: a message for people and a hint, never a traceback."""

    def __init__(self, message: str, hint: str | None = None):
        self.message, self.hint = message, hint
        super().__init__(self.format())

    def format(self) -> str:
        return f"error: {self.message}" + (f"\n  hint: {self.hint}" if self.hint else "")


@dataclass(frozen=True)
class ExportSettings:
    name: str
    version: int = 1
    max_batch_size: int = 64  # 0: no batching, dims include the batch dimension
    dynamic_batching: bool = True
    max_queue_delay_us: int = 0
    python_site: tuple[str, ...] = field(default=())  # triton-python only


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
