"""A model's configuration: config.pbtxt parsed into ModelConfig, and the
settings the service reads from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format

from compiler.protocol.generated import model_config_pb2
from service.errors import ConfigError, shown
from service.fast import ONNXRUNTIME, FastOptions, fast_options_of

PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class ModelSettings:
    name: str
    max_batch_size: int  # 0: the model has no batch dimension
    dynamic_batching: bool
    max_queue_delay_s: float
    precision: str  # fp32 | fp16 | bf16
    fast: FastOptions = FastOptions()


def parse_config(text: str, source: str = "config.pbtxt") -> model_config_pb2.ModelConfig:
    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        # The parser's message quotes the file; the error's own text says where only.
        where = f"{source}:{e.GetLine()}:{e.GetColumn()}" if e.GetLine() else source
        raise ConfigError(f"{where}: not a valid model configuration; the server log has the details",
                          detail=f"{source}: {e}") from e
    return config


def read_config(path: Path) -> model_config_pb2.ModelConfig:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e
    return parse_config(text, str(path))


def settings_of(config: model_config_pb2.ModelConfig) -> ModelSettings:
    precision = config.parameters["precision"].string_value if "precision" in config.parameters else "fp32"
    if precision not in PRECISIONS:
        raise ConfigError(
            f"model '{config.name}': parameter precision is '{shown(precision)}'; expected one of {', '.join(PRECISIONS)}"
        )
    if config.max_batch_size < 0:
        raise ConfigError(f"model '{config.name}': max_batch_size is {config.max_batch_size}; expected 0 or more")
    fast = fast_options_of(config)
    if fast.onnxruntime and precision != "fp32":
        raise ConfigError(f"model '{config.name}': cpu_execution_accelerator '{ONNXRUNTIME}' runs the model in fp32; "
                          f"parameter precision is '{precision}'")
    batching = config.HasField("dynamic_batching") and config.max_batch_size > 0
    delay_us = config.dynamic_batching.max_queue_delay_microseconds
    return ModelSettings(
        name=config.name,
        max_batch_size=config.max_batch_size,
        dynamic_batching=batching,
        max_queue_delay_s=delay_us / 1e6 if batching else 0.0,
        precision=precision,
        fast=fast,
    )


def served_versions(config: model_config_pb2.ModelConfig, available: list[int]) -> list[int]:
    """The versions to load among `available`, per the config's version_policy
    (Triton's default: the latest one)."""
    available = sorted(available)
    policy = config.version_policy
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return available
    if which == "specific":
        return [v for v in available if v in set(policy.specific.versions)]
    n = policy.latest.num_versions if which == "latest" and policy.latest.num_versions else 1
    return available[-n:]
