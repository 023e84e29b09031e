"""Triton's model configuration (config.pbtxt), written as protobuf text."""
from __future__ import annotations

from ..ir import Graph

TRITON_DTYPES = {
    "float32": "TYPE_FP32", "float16": "TYPE_FP16", "bfloat16": "TYPE_BF16", "int64": "TYPE_INT64",
    "int32": "TYPE_INT32", "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL",
}
PRECISIONS = ("fp32", "fp16", "bf16")


def batched(graph: Graph) -> bool:
    """Triton batching needs every input and output to lead with the batch dim N."""
    tensors = list(graph.inputs.values()) + [graph.tensor(v) for v in graph.outputs.values()]
    return all(t.shape and t.shape[0] == "N" for t in tensors)


def _dims(shape, drop_batch: bool) -> str:
    dims = shape[1:] if drop_batch else shape
    return "[ " + ", ".join(str(d) if isinstance(d, int) else "-1" for d in dims) + " ]"


def config_text(graph: Graph, name: str, max_batch_size: int = 64, dynamic_batching: bool = True,
                max_queue_delay_us: int = 0, precision: str = "fp32") -> str:
    batch = batched(graph) and max_batch_size > 0
    lines = [f'name: "{name}"', 'backend: "netspec"', f"max_batch_size: {max_batch_size if batch else 0}"]

    def tensor_block(kind: str, items) -> None:
        lines.append(f"{kind} [")
        entries = [f'  {{ name: "{k}" data_type: {TRITON_DTYPES[t.dtype]} dims: {_dims(t.shape, batch)} }}'
                   for k, t in items]
        lines.append(",\n".join(entries))
        lines.append("]")

    tensor_block("input", graph.inputs.items())
    tensor_block("output", [(k, graph.tensor(v)) for k, v in graph.outputs.items()])
    if batch and dynamic_batching:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {max_queue_delay_us} }}")
    lines.append(f'parameters {{ key: "precision" value {{ string_value: "{precision}" }} }}')
    if graph.variant:
        lines.append(f'parameters {{ key: "variant" value {{ string_value: "{graph.variant}" }} }}')
    return "\n".join(lines) + "\n"
