"""Tensor codec: every datatype round-trips through raw bytes, typed
contents decode, and size mismatches name the input."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from compiler.protocol import datatypes
from service import codec
from service.errors import InvalidInput


@pytest.mark.parametrize("dtype", datatypes.BY_KSERVE.values(), ids=lambda d: d.kserve)
def test_raw_round_trip(dtype):
    values = torch.tensor([[0, 1, 2], [3, 4, 5]])
    tensor = values.bool() if dtype.torch == torch.bool else values.to(dtype.torch)
    raw = codec.encode_raw(tensor)
    assert len(raw) == codec.byte_size(dtype, (2, 3)) == 6 * dtype.itemsize
    assert torch.equal(codec.decode_raw("t", dtype, (2, 3), raw), tensor)


@pytest.mark.parametrize("dtype", datatypes.BY_KSERVE.values(), ids=lambda d: d.kserve)
def test_raw_contents_are_row_major_whatever_the_layout(dtype):
    values = torch.arange(24).reshape(2, 3, 4) % 7
    tensor = values.bool() if dtype.torch == torch.bool else values.to(dtype.torch)
    for view in (tensor.permute(2, 0, 1), tensor[:, 1:, ::2], tensor.t() if tensor.dim() == 2 else tensor.mT):
        assert not view.is_contiguous()
        assert codec.encode_raw(view) == codec.encode_raw(view.contiguous())
        assert torch.equal(codec.decode_raw("t", dtype, tuple(view.shape), codec.encode_raw(view)), view)


@pytest.mark.parametrize("kserve", ["FP32", "FP64", "INT8", "INT32", "INT64", "UINT8", "UINT32", "UINT64", "BOOL"])
def test_typed_contents(kserve):
    dtype = datatypes.BY_KSERVE[kserve]
    values = [1, 0, 1, 1] if kserve == "BOOL" else [1, 2, 3, 4]
    tensor = codec.decode_contents("t", dtype, (2, 2), values)
    assert tensor.dtype == dtype.torch and tensor.reshape(-1).tolist() == [type(tensor.reshape(-1)[0].item())(v) for v in values]


def test_raw_matches_numpy_layout():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensor = codec.decode_raw("x", datatypes.BY_KSERVE["FP32"], (3, 4), x.tobytes())
    assert np.array_equal(tensor.numpy(), x) and codec.encode_raw(tensor) == x.tobytes()


def test_size_mismatches_name_the_input():
    with pytest.raises(InvalidInput, match=r"input 'x': raw contents hold 5 bytes, but shape \[2\] of FP32 needs 8"):
        codec.decode_raw("x", datatypes.BY_KSERVE["FP32"], (2,), b"12345")
    with pytest.raises(InvalidInput, match=r"input 'x': contents hold 3 elements, but shape \[2, 2\] needs 4"):
        codec.decode_contents("x", datatypes.BY_KSERVE["INT64"], (2, 2), [1, 2, 3])


def test_every_compiler_dtype_name_maps_back():
    for dtype in datatypes.BY_KSERVE.values():
        assert datatypes.from_name(dtype.name) is dtype
        assert datatypes.BY_CONFIG[dtype.config] is dtype
        assert str(dtype.torch) == f"torch.{dtype.name}"
    with pytest.raises(ValueError, match="unsupported tensor dtype 'complex64'"):
        datatypes.from_name("complex64")


@pytest.mark.parametrize("kserve,value,words", [
    ("UINT8", 300, "value 300 is out of range for UINT8 (0 to 255)"),
    ("INT8", -129, "value -129 is out of range for INT8 (-128 to 127)"),
    ("UINT16", 70_000, "value 70000 is out of range for UINT16"),
    ("INT16", 2**31 - 1, "out of range for INT16"),
])
def test_typed_values_past_the_datatype_are_refused_not_wrapped(kserve, value, words):
    # The typed fields are wider than these datatypes (uint_contents carries UINT8).
    with pytest.raises(InvalidInput, match=re.escape(words)):
        codec.decode_contents("t", datatypes.BY_KSERVE[kserve], (2,), [1, value])
