"""Exports of a compiled model that other servers load as they are:

    triton-python   Triton's Python backend runs netspec's standalone module
    onnx            model.onnx for Triton's ONNX Runtime backend, or ONNX Runtime
    torchscript     model.pt for Triton's PyTorch (libtorch) backend

Each writes a Triton model folder, REPOSITORY/NAME/config.pbtxt and
REPOSITORY/NAME/VERSION/..., with netspec's inputs, outputs and batching.
`netspec compile` keeps writing netspec's own format.
"""
from __future__ import annotations

from pathlib import Path

from .common import ExportError, ExportSettings

FORMATS = ("triton-python", "onnx", "torchscript")


def export(model, format: str, repository: Path, settings: ExportSettings) -> Path:
    """Write `model` (a compiler.api.Model, weights loaded) in `format`;
    returns the version folder written."""
    if format == "triton-python":
        from .format_triton_python import export as write
    elif format == "onnx":
        from .format_onnx import export as write
    elif format == "torchscript":
        from .format_torchscript import export as write
    else:
        raise ExportError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")
    return write(model, Path(repository), settings)


__all__ = ["FORMATS", "ExportError", "ExportSettings", "export"]
