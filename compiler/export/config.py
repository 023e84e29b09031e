"""config.pbtxt for an exported model: a ModelConfig message (Triton's
model_config.proto, committed in protos/) written with protobuf's
text_format, so Triton parses exactly what we wrote."""
from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format

from service.datatypes import from_name
from service.generated import model_config_pb2

from .common import ExportError, ExportSettings, atomic_write, batched

CONFIG_FILE = "config.pbtxt"


def model_config(model, settings: ExportSettings, *, input_names: list[str] | None = None,
                 output_names: list[str] | None = None, **fields) -> model_config_pb2.ModelConfig:
    """The model's inputs and outputs, batching and `fields` (backend or
    platform, parameters). `input_names`/`output_names` rename the tensors
    where a backend has its own naming rule (TorchScript's)."""
    if settings.max_batch_size < 0:
        raise ExportError(f"--max-batch-size is {settings.max_batch_size}; expected 0 or more")
    batch = batched(model) and settings.max_batch_size > 0
    parameters = fields.pop("parameters", {})
    config = model_config_pb2.ModelConfig(name=settings.name, max_batch_size=settings.max_batch_size if batch else 0,
                                          **fields)
    for kind, tensors, names in (("input", model.inputs, input_names), ("output", model.outputs, output_names)):
        for k, (name, info) in enumerate(tensors.items()):
            dims = info.shape[1:] if batch else info.shape
            try:
                data_type = model_config_pb2.DataType.Value(from_name(info.dtype).config)
            except ValueError as e:
                raise ExportError(f"{kind} '{name}': {e}") from None
            getattr(config, kind).add(name=names[k] if names else name, data_type=data_type,
                                      dims=[d if isinstance(d, int) else -1 for d in dims])
    if batch and settings.dynamic_batching:
        config.dynamic_batching.max_queue_delay_microseconds = settings.max_queue_delay_us
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    return config


def write_config(model_dir: Path, config: model_config_pb2.ModelConfig) -> Path:
    path = Path(model_dir) / CONFIG_FILE
    atomic_write(path, text_format.MessageToString(config))
    return path
