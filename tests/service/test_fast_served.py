"""A model in fast mode served by `netspec serve` (its own process) answers
tritonclient as the same model without it does, within the tolerance of
its precision; a model whose fast mode is wrong fails alone."""

from __future__ import annotations


import numpy as np
import pytest

grpcclient = pytest.importorskip("tritonclient.grpc")

from server_process import Server, conv_net_spec, spread_batch_norm_statistics  # noqa: E402

SPEC = conv_net_spec(16)
ONNXRUNTIME = 'optimization { execution_accelerators { cpu_execution_accelerator { name: "onnxruntime" } } }\n'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from compiler.api import compile_text
    from compiler.tools.artifact import CONFIG_FILE, write_version

    root = tmp_path_factory.mktemp("fast") / "models"
    model = spread_batch_norm_statistics(compile_text(SPEC), scales=False)
    write_version(model, root, "plain")
    write_version(model, root, "fast", fast=True)  # as `netspec compile --fast`
    write_version(model, root, "fast_bf16", fast=True, precision="bf16")
    write_version(model, root, "wrong")
    with open(root / "wrong" / CONFIG_FILE, "a") as f:
        f.write("optimization { graph { level: 3 } }\n")
    write_version(model, root, "onnxruntime")
    with open(root / "onnxruntime" / CONFIG_FILE, "a") as f:
        f.write(ONNXRUNTIME)
    server = Server(root)
    yield server
    assert server.stop() == 0


def infer(client, model: str, images: np.ndarray) -> np.ndarray:
    inputs = [grpcclient.InferInput("image", list(images.shape), "FP32")]
    inputs[0].set_data_from_numpy(images)
    return client.infer(model, inputs).as_numpy("logits")


def test_fast_mode_answers_as_the_plain_model(server):
    images = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    with server.client() as client:
        plain = infer(client, "plain", images)
        fast = infer(client, "fast", images)
        fast_bf16 = infer(client, "fast_bf16", images)
        onnxruntime = infer(client, "onnxruntime", images)
        assert client.get_model_metadata("fast_bf16").outputs[0].datatype == "FP32"
        config = client.get_model_config("fast", as_json=True)["config"]  # as Triton's clients read it
        assert config["optimization"]["graph"]["level"] == 1 and config["optimization"]["cuda"]["graphs"]
    assert fast.dtype == fast_bf16.dtype == np.float32
    scale = np.abs(plain).max()
    assert np.abs(fast - plain).max() <= 1e-5 * max(scale, 1)  # folded and channels_last, fp32
    assert np.abs(fast_bf16 - plain).max() <= 2e-2 * scale  # bf16 keeps 8 bits of mantissa (as test_fast.py)
    assert np.abs(onnxruntime - plain).max() <= 1e-5 * max(scale, 1)  # fp32, other kernels
    log = server.log()
    assert "model 'onnxruntime' runs in ONNX Runtime" in log
    assert "model 'fast' runs on cpu: gpu_execution_accelerator torch_compile and cuda graphs are for CUDA" in log


def test_a_wrong_fast_mode_fails_that_model_alone(server):
    with server.client() as client:
        index = {m["name"]: m for m in client.get_model_repository_index(as_json=True)["models"]}
        assert index["wrong"]["state"] == "UNAVAILABLE"
        assert "model 'wrong': optimization graph level is 3" in index["wrong"]["reason"]
        assert all(index[name]["state"] == "READY" for name in ("plain", "fast", "fast_bf16", "onnxruntime"))
