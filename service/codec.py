"""Tensor bytes <-> torch tensors, per the KServe v2 raw and typed layouts.

Raw contents are the tensor's elements, row-major, little-endian, no padding.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch

from compiler.protocol.datatypes import DataType
from service.errors import InvalidInput

if sys.byteorder != "little":  # pragma: no cover - every supported host is little-endian
    raise ImportError("netspec's tensor codec assumes a little-endian host")


def byte_size(dtype: DataType, shape: tuple[int, ...]) -> int:
    return math.prod(shape) * dtype.itemsize


def decode_raw(name: str, dtype: DataType, shape: tuple[int, ...], raw: bytes) -> torch.Tensor:
    """The tensor held in `raw`; InvalidInput naming `name` if the size is wrong."""
    expected = byte_size(dtype, shape)
    if len(raw) != expected:
        raise InvalidInput(
            f"input '{name}': raw contents hold {len(raw)} bytes, but shape {list(shape)} of {dtype.kserve} "
            f"needs {expected} bytes"
        )
    if expected == 0:
        return torch.empty(shape, dtype=dtype.torch)
    # bytearray: torch.frombuffer wants a writable buffer; this is the one copy.
    return torch.frombuffer(bytearray(raw), dtype=dtype.torch).reshape(shape)


# The element type of each typed field of InferTensorContents, as protobuf stores it.
_FIELD_TYPES = {
    "bool_contents": np.bool_, "int_contents": np.int32, "int64_contents": np.int64,
    "uint_contents": np.uint32, "uint64_contents": np.uint64, "fp32_contents": np.float32,
    "fp64_contents": np.float64,
}


# Values converted per step. Converting protobuf's repeated values is one C
# call that holds the GIL throughout: 3.4 million floats in one step stalled
# the event loop for 0.3 s even from a worker thread. Between steps the
# interpreter hands the GIL over, so other calls go on.
CHUNK = 1 << 16


def _to_array(values, field_type) -> np.ndarray:
    n = len(values)
    parts = [np.fromiter(values[i:i + CHUNK], field_type, count=min(CHUNK, n - i)) for i in range(0, n, CHUNK)]
    return np.concatenate(parts) if parts else np.empty(0, field_type)


def decode_contents(name: str, dtype: DataType, shape: tuple[int, ...], values) -> torch.Tensor:
    """The tensor held in a typed InferTensorContents field's values. A field
    is wider than some of the datatypes it carries (uint_contents carries
    UINT8 too): a value the datatype cannot hold is refused, not wrapped."""
    expected = math.prod(shape)
    if len(values) != expected:
        raise InvalidInput(
            f"input '{name}': contents hold {len(values)} elements, but shape {list(shape)} needs {expected}"
        )
    array = _to_array(values, _FIELD_TYPES[dtype.contents])
    target = torch.empty((), dtype=dtype.torch).numpy().dtype
    if np.issubdtype(target, np.integer) and array.size:
        info = np.iinfo(target)
        low, high = array.min(), array.max()
        if low < info.min or high > info.max:
            bad = int(low) if low < info.min else int(high)
            raise InvalidInput(f"input '{name}': value {bad} is out of range for {dtype.kserve} "
                               f"({info.min} to {info.max})")
    return torch.from_numpy(array.astype(target, copy=False)).reshape(shape)


def encode_raw(tensor: torch.Tensor) -> bytes:
    """The raw contents of a CPU tensor."""
    tensor = tensor.detach()
    if tensor.dtype is torch.bfloat16:  # numpy has no bfloat16: its bytes, reinterpreted
        return tensor.contiguous().view(torch.uint8).numpy().tobytes()
    # numpy writes any layout out row-major: no contiguous copy first.
    return tensor.numpy().tobytes()
