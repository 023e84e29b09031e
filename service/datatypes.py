"""Tensor element types: KServe names, config.pbtxt enums, torch dtypes.

One table, so a datatype is added in one line. `contents` names the typed
field of InferTensorContents that carries the type; FP16 and BF16 have none
and travel as raw bytes only (KServe v2 protocol).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DataType:
    kserve: str  # "FP32": the protocol's name
    config: str  # "TYPE_FP32": the config.pbtxt enum name
    torch: torch.dtype
    contents: str | None  # field of InferTensorContents, or None for raw-only

    @property
    def itemsize(self) -> int:
        return self.torch.itemsize

    @property
    def name(self) -> str:
        """The torch-style name the compiler uses: "float32"."""
        return str(self.torch).removeprefix("torch.")


_TABLE = [
    DataType("BOOL", "TYPE_BOOL", torch.bool, "bool_contents"),
    DataType("UINT8", "TYPE_UINT8", torch.uint8, "uint_contents"),
    DataType("UINT16", "TYPE_UINT16", torch.uint16, "uint_contents"),
    DataType("UINT32", "TYPE_UINT32", torch.uint32, "uint_contents"),
    DataType("UINT64", "TYPE_UINT64", torch.uint64, "uint64_contents"),
    DataType("INT8", "TYPE_INT8", torch.int8, "int_contents"),
    DataType("INT16", "TYPE_INT16", torch.int16, "int_contents"),
    DataType("INT32", "TYPE_INT32", torch.int32, "int_contents"),
    DataType("INT64", "TYPE_INT64", torch.int64, "int64_contents"),
    DataType("FP16", "TYPE_FP16", torch.float16, None),
    DataType("BF16", "TYPE_BF16", torch.bfloat16, None),
    DataType("FP32", "TYPE_FP32", torch.float32, "fp32_contents"),
    DataType("FP64", "TYPE_FP64", torch.float64, "fp64_contents"),
]

BY_KSERVE = {d.kserve: d for d in _TABLE}
BY_NAME = {d.name: d for d in _TABLE}
BY_CONFIG = {d.config: d for d in _TABLE}
BY_TORCH = {d.torch: d for d in _TABLE}


def from_name(name: str) -> DataType:
    """The DataType of a compiler dtype name such as "float32"."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unsupported tensor dtype {name!r}; supported: {', '.join(BY_NAME)}") from None
