"""Tensor bytes <-> torch tensors, per the KServe v2 raw and typed layouts.

Raw contents are the tensor's elements, row-major, little-endian, no padding.
"""

from __future__ import annotations

import math
import sys

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


def decode_contents(name: str, dtype: DataType, shape: tuple[int, ...], values) -> torch.Tensor:
    """The tensor held in a typed InferTensorContents field's values."""
    expected = math.prod(shape)
    if len(values) != expected:
        raise InvalidInput(
            f"input '{name}': contents hold {len(values)} elements, but shape {list(shape)} needs {expected}"
        )
    return torch.tensor(list(values), dtype=dtype.torch).reshape(shape)


def encode_raw(tensor: torch.Tensor) -> bytes:
    """The raw contents of a CPU tensor."""
    flat = tensor.detach().contiguous().reshape(-1)
    # view(uint8) reinterprets the bytes of any dtype, bf16 and bool included.
    return flat.view(torch.uint8).numpy().tobytes()
