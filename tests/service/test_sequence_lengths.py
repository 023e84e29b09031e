"""One compiled transformer serves every sequence length up to its bound:
`netspec serve` (its own process) reports the symbolic length T as -1 in
the model's metadata and configuration, answers tritonclient's requests at
different lengths with the outputs of the compiled module, and refuses a
length past the position table with INVALID_ARGUMENT before running it."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from server_process import ROOT, serving, write_spec_model

grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

# (spec, its vocabulary, the longest sequence its position table serves, the output's name)
MODELS = {"gpt": (512, 64, "logits"), "transformer": (1000, 128, "logits")}


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("lengths") / "models"
    for name in MODELS:
        write_spec_model(root, (ROOT / "specs" / f"{name}.yaml").read_text(), max_batch_size=8)
    return root


@pytest.fixture(scope="module")
def client(repository):
    with serving(repository) as client:
        yield client


def tokens(batch: int, length: int, vocabulary: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocabulary, size=(batch, length)).astype(np.int64)


def infer(client, name: str, array: np.ndarray):
    inp = grpcclient.InferInput("tokens", list(array.shape), "INT64")
    inp.set_data_from_numpy(array)
    return client.infer(name, [inp])


def local_module(repository, name: str):
    from compiler.tools.artifact import load_version

    return load_version(repository / name / "1").module.eval()


def test_length_is_reported_as_symbolic(client):
    meta = client.get_model_metadata("gpt")
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("tokens", "INT64", [-1, -1])]
    assert [(t.name, list(t.shape)) for t in meta.outputs] == [("logits", [-1, -1, 512])]
    config = client.get_model_config("gpt").config
    assert config.max_batch_size == 8 and list(config.input[0].dims) == [-1]
    assert list(config.output[0].dims) == [-1, 512]


@pytest.mark.parametrize("name", MODELS)
def test_requests_of_different_lengths_match_the_module(client, repository, name):
    vocabulary, longest, output = MODELS[name]
    module = local_module(repository, name)
    for k, length in enumerate((3, longest)):
        array = tokens(2, length, vocabulary, seed=k)
        got = infer(client, name, array).as_numpy(output)
        with torch.inference_mode():
            want = module(torch.from_numpy(array)).numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"{name} at T={length}")


@pytest.mark.parametrize("name", MODELS)
def test_a_length_past_the_bound_is_invalid_and_the_model_still_serves(client, name):
    vocabulary, longest, output = MODELS[name]
    with pytest.raises(InferenceServerException) as caught:
        infer(client, name, tokens(1, longest + 1, vocabulary, seed=5))
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    node = {"gpt": "pos_emb", "transformer": "position"}[name]
    assert caught.value.message() == (f"input 'tokens': dimension 1 (T) is {longest + 1}, but the model serves T "
                                      f"up to {longest} (set by its node '{node}')")
    assert infer(client, name, tokens(1, 4, vocabulary, seed=6)).as_numpy(output).shape[0] == 1


def test_ids_past_the_tied_table_are_invalid(client):
    # gpt's tokens are read by `lookup` on its table node: the vocabulary is the table's rows.
    array = tokens(1, 4, 512, seed=7)
    array[0, 2] = 512
    with pytest.raises(InferenceServerException) as caught:
        infer(client, "gpt", array)
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "id 512 is out of range: the model's vocabulary has ids 0 to 511" in caught.value.message()
