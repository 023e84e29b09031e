"""Triton's model configuration (config.pbtxt): one ModelConfig message
(Triton's model_config.proto) for every model folder netspec writes, its
own (`netspec compile`) and Triton's (`netspec export`), written with
protobuf's text_format so that Triton parses exactly what was written."""
from __future__ import annotations

from google.protobuf import text_format

from ..ir import Graph, TensorInfo
from ..protocol.datatypes import from_name
from ..protocol.generated import model_config_pb2

ModelConfig = model_config_pb2.ModelConfig
PRECISIONS = ("fp32", "fp16", "bf16")


def batched(inputs: dict[str, TensorInfo], outputs: dict[str, TensorInfo]) -> bool:
    """Triton batching needs every input and output to lead with the batch dim N."""
    return all(t.shape and t.shape[0] == "N" for t in [*inputs.values(), *outputs.values()])


def model_config(name: str, inputs: dict[str, TensorInfo], outputs: dict[str, TensorInfo], *,
                 max_batch_size: int = 64, dynamic_batching: bool = True, max_queue_delay_us: int = 0,
                 parameters: dict[str, str] | None = None, output_names: list[str] | None = None,
                 **fields) -> ModelConfig:
    """The tensors, batching, string `parameters` and `fields` (backend or
    platform).  With max_batch_size 0, or a tensor without the batch
    dimension N first, the model does not batch and dims keep N (as -1).
    `output_names` renames the outputs where a backend has its own naming
    rule (TorchScript's).  A dtype without a Triton type is a ValueError."""
    batch = batched(inputs, outputs) and max_batch_size > 0
    config = ModelConfig(name=name, max_batch_size=max_batch_size if batch else 0, **fields)
    for kind, tensors, names in (("input", inputs, None), ("output", outputs, output_names)):
        for k, (tensor, info) in enumerate(tensors.items()):
            data_type = model_config_pb2.DataType.Value(from_name(info.dtype).config)
            dims = info.shape[1:] if batch else info.shape
            getattr(config, kind).add(name=names[k] if names else tensor, data_type=data_type,
                                      dims=[d if isinstance(d, int) else -1 for d in dims])
    if batch and dynamic_batching:
        config.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_us
    for key, value in (parameters or {}).items():
        config.parameters[key].string_value = value
    return config


def netspec_config(graph: Graph, name: str, max_batch_size: int = 64, dynamic_batching: bool = True,
                   max_queue_delay_us: int = 0, precision: str = "fp32", fast: bool = False) -> ModelConfig:
    """The configuration `netspec serve` reads: backend "netspec", the
    precision to run at and the spec's variant; with `fast`, the fast mode
    (fast_mode)."""
    parameters = {"precision": precision, **({"variant": graph.variant} if graph.variant else {})}
    outputs = {k: graph.tensor(v) for k, v in graph.outputs.items()}
    config = model_config(name, graph.inputs, outputs, max_batch_size=max_batch_size,
                          dynamic_batching=dynamic_batching, max_queue_delay_us=max_queue_delay_us,
                          parameters=parameters, backend="netspec")
    if fast:
        fast_mode(config, graph)
    return config


def fast_mode(config: ModelConfig, graph: Graph) -> None:
    """Every option of the fast mode: batch norms folded into convolutions
    (graph level 1), channels_last when an input is an image batch, and on
    a GPU torch.compile and CUDA graphs (at 1, 2, 4, ... and max_batch_size)
    when the model batches and its inputs' other dimensions are fixed (a
    graph is captured for one shape; variable ones are given by hand in
    graph_spec). The server skips the GPU ones on a CPU."""
    config.optimization.graph.level = 1
    if any(len(t.shape) == 4 for t in graph.inputs.values()):
        config.parameters["memory_format"].string_value = "channels_last"
    config.optimization.execution_accelerators.gpu_execution_accelerator.add(name="torch_compile")
    fixed = all(isinstance(d, int) for t in graph.inputs.values() for d in t.shape[1:])
    if config.max_batch_size > 0 and fixed:
        config.optimization.cuda.graphs = True


def config_text(config: ModelConfig) -> str:
    return text_format.MessageToString(config)
