"""Loading a stored version checks its weights against the spec: names,
shapes and dtypes must be the spec's, and a spec claiming more parameters
than the file holds is refused before any of them is allocated."""
from __future__ import annotations

import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from compiler.api import compile_text, vocabularies
from compiler.tools.artifact import load_version, write_version
from compiler.errors import ResourceError

SPEC = """name: tiny
inputs: {x: {shape: [N, 4]}}
nodes:
  fc: {op: linear, out_features: 3}
outputs: {y: fc}
"""


@pytest.fixture
def stored(tmp_path):
    folder = write_version(compile_text(SPEC), tmp_path, "tiny")
    return folder


def rewrite_weights(folder, change):
    path = folder / "weights.safetensors"
    save_file({k: change(v) for k, v in load_file(str(path)).items()}, str(path))


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, torch.float64, torch.float16])
def test_weights_of_another_dtype_are_refused_naming_the_tensor(stored, dtype):
    rewrite_weights(stored, lambda t: t.to(dtype))
    with pytest.raises(ResourceError, match=rf"dtype mismatch fc\.(weight|bias): file {str(dtype)[6:]} vs model float32"):
        load_version(stored)


@pytest.mark.parametrize("precision,dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_reduced_precision_weights_load_for_a_model_stored_in_that_precision(stored, precision, dtype):
    reference = load_version(stored).module.fc.weight.detach().clone()
    rewrite_weights(stored, lambda t: t.to(dtype))
    model = load_version(stored, precision)
    torch.testing.assert_close(model.module.fc.weight, reference.to(dtype).float())
    with pytest.raises(ResourceError, match="dtype mismatch"):
        load_version(stored, "fp16" if precision == "bf16" else "bf16")


def test_a_spec_larger_than_its_weights_is_refused_before_it_is_built(stored):
    # 100,000 x 100,000 weights would take 40 GB if the module were built first.
    (stored / "spec.yaml").write_text(SPEC.replace("[N, 4]", "[N, 100000]").replace("3}", "100000}"))
    started = time.perf_counter()
    with pytest.raises(ResourceError, match=r"hold 15 values, but the spec has 10,000,100,000 parameters"):
        load_version(stored)
    assert time.perf_counter() - started < 10


def test_vocabularies_are_the_embeddings_that_read_an_input():
    model = compile_text("""name: ids
inputs: {tokens: {shape: [N, T], dtype: int64}, other: {shape: [N, T], dtype: int64}}
nodes:
  a: {op: embedding, num_embeddings: 50, embedding_dim: 4, in: tokens}
  b: {op: embedding, num_embeddings: 30, embedding_dim: 4, in: tokens}
  c: {op: add, in: [a, b]}
outputs: {y: c, z: other}
""")
    assert vocabularies(model.graph) == {"tokens": 30}
