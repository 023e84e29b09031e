"""Tensor element types: KServe names, config.pbtxt enums, torch dtypes.

One table, so a datatype is added in one line. `contents` names the typed
field of InferTensorContents that carries the type; FP16 and BF16 have none
and travel as raw bytes only (KServe v2 protocol).  `name` is the dtype's
name in a spec and in torch ("float32"); the torch dtype itself is looked up
on first use, so the table loads without torch (config.pbtxt is written by
torch-free code).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class DataType:
    kserve: str  # "FP32": the protocol's name
    config: str  # "TYPE_FP32": the config.pbtxt enum name
    name: str  # "float32": the spec's and torch's name
    contents: str | None  # field of InferTensorContents, or None for raw-only

    @cached_property
    def torch(self):
        """torch.float32"""
        import torch

        return getattr(torch, self.name)

    @property
    def itemsize(self) -> int:
        return self.torch.itemsize


_TABLE = [
    DataType("BOOL", "TYPE_BOOL", "bool", "bool_contents"),
    DataType("UINT8", "TYPE_UINT8", "uint8", "uint_contents"),
    DataType("UINT16", "TYPE_UINT16", "uint16", "uint_contents"),
    DataType("UINT32", "TYPE_UINT32", "uint32", "uint_contents"),
    DataType("UINT64", "TYPE_UINT64", "uint64", "uint64_contents"),
    DataType("INT8", "TYPE_INT8", "int8", "int_contents"),
    DataType("INT16", "TYPE_INT16", "int16", "int_contents"),
    DataType("INT32", "TYPE_INT32", "int32", "int_contents"),
    DataType("INT64", "TYPE_INT64", "int64", "int64_contents"),
    DataType("FP16", "TYPE_FP16", "float16", None),
    DataType("BF16", "TYPE_BF16", "bfloat16", None),
    DataType("FP32", "TYPE_FP32", "float32", "fp32_contents"),
    DataType("FP64", "TYPE_FP64", "float64", "fp64_contents"),
]

BY_KSERVE = {d.kserve: d for d in _TABLE}
BY_NAME = {d.name: d for d in _TABLE}
BY_CONFIG = {d.config: d for d in _TABLE}


def from_name(name: str) -> DataType:
    """The DataType of a spec's dtype name such as "float32"."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unsupported tensor dtype {name!r}; supported: {', '.join(BY_NAME)}") from None
