"""config.pbtxt for an exported model: the ModelConfig every netspec model
folder gets (tools/pbtxt.py) with the backend or platform of the format."""
from __future__ import annotations

from pathlib import Path

from ..artifact import CONFIG_FILE, atomic_write
from ..pbtxt import ModelConfig, config_text
from ..pbtxt import model_config as _model_config
from .common import ExportError, ExportSettings


def model_config(model, settings: ExportSettings, **fields) -> ModelConfig:
    """The model's inputs and outputs with the settings' batching, and
    `fields`: backend or platform, parameters, output_names."""
    if settings.max_batch_size < 0:
        raise ExportError(f"--max-batch-size is {settings.max_batch_size}; expected 0 or more")
    try:
        return _model_config(settings.name, model.inputs, model.outputs, max_batch_size=settings.max_batch_size,
                             dynamic_batching=settings.dynamic_batching,
                             max_queue_delay_us=settings.max_queue_delay_us, **fields)
    except ValueError as e:  # a dtype without a Triton type
        raise ExportError(f"'{model.name}': {e}") from None


def write_config(model_dir: Path, config: ModelConfig) -> Path:
    path = Path(model_dir) / CONFIG_FILE
    atomic_write(path, config_text(config))
    return path
