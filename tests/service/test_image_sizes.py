"""One compiled U-Net serves every image size its strides divide:
`netspec serve` (its own process) reports H and W as -1, answers
tritonclient's requests at sizes that are not square with the outputs of
the compiled module, and refuses a size the model cannot divide with
INVALID_ARGUMENT before running it, without harm to the next request."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from server_process import ROOT, serving, write_spec_model

grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402


def small_unet_any_size() -> str:
    """specs/unet.yaml's `any` variant as the default, narrower (the sizes do not depend on the widths)."""
    text = (ROOT / "specs" / "unet.yaml").read_text()
    for old, new in (('default_variant: "128"', "default_variant: any"),
                     ("widths: [64, 128, 256, 512]", "widths: [4, 8, 16, 32]")):
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("images") / "models"
    write_spec_model(root, small_unet_any_size(), max_batch_size=4)
    return root


@pytest.fixture(scope="module")
def client(repository):
    with serving(repository) as client:
        yield client


def infer(client, array: np.ndarray):
    inp = grpcclient.InferInput("image", list(array.shape), "FP32")
    inp.set_data_from_numpy(array)
    return client.infer("unet", [inp])


def image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 1, h, w)).astype(np.float32)


def test_height_and_width_are_reported_as_symbolic(client):
    meta = client.get_model_metadata("unet")
    assert [(t.name, list(t.shape)) for t in meta.inputs] == [("image", [-1, 1, -1, -1])]
    assert [(t.name, list(t.shape)) for t in meta.outputs] == [("segmentation", [-1, 2, -1, -1])]
    assert list(client.get_model_config("unet").config.input[0].dims) == [1, -1, -1]


def test_images_of_different_sizes_match_the_module(client, repository):
    from compiler.tools.artifact import load_version

    module = load_version(repository / "unet" / "1").module.eval()
    for k, (h, w) in enumerate(((32, 48), (16, 64), (64, 16))):
        array = image(h, w, seed=k)
        got = infer(client, array).as_numpy("segmentation")
        with torch.inference_mode():
            want = module(torch.from_numpy(array)).numpy()
        assert got.shape == want.shape == (1, 2, h, w)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"{h}x{w}")


@pytest.mark.parametrize("h, w, dimension, symbol, size", [(40, 32, 2, "H", 40), (32, 8, 3, "W", 8)])
def test_a_size_the_model_cannot_divide_is_invalid_and_the_model_still_serves(client, h, w, dimension, symbol, size):
    with pytest.raises(InferenceServerException) as caught:
        infer(client, image(h, w, seed=5))
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert caught.value.message() == (
        f"input 'image': dimension {dimension} ({symbol}) is {size}, but the model needs {symbol} to be a "
        f"positive multiple of 16 (the size is {symbol}/16 at its node 'bottom.pool')")
    assert infer(client, image(16, 16, seed=6)).as_numpy("segmentation").shape == (1, 2, 16, 16)
