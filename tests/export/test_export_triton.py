"""The real NVIDIA Triton server serves `netspec export --format triton-python`
folders: lenet, a ResNet and the LSTM cell network. The same weights are
served by `netspec serve`; tritonclient sends both the same requests over
loopback sockets, and the outputs must agree.

Triton runs on the CPU from the nvidia-pytriton wheel (.ci/triton.sh). Its
Python backend's interpreter has numpy 1.x and no torch: the exports name
this interpreter's torch with --python-site, as a Triton host without torch
would name its own.
"""
from __future__ import annotations

import contextlib
import queue
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import safetensors
import torch

from export_servers import netspec, start_netspec, start_triton, tritonserver_or_skip

grpcclient = pytest.importorskip("tritonclient.grpc")

ROOT = Path(__file__).resolve().parents[2]
# name -> (spec, variant, an input size for each symbolic dimension past the batch)
MODELS = {
    "lenet": ("lenet.yaml", None),
    "resnet18": ("resnet.yaml", "18"),
    "lstm_cell": ("lstm_cell.yaml", None),
}
STEPS = 6  # the LSTM's time steps in these requests
QUEUE_DELAY_US = 20_000  # long enough for 16 concurrent requests to meet in one batch
TOLERANCE = 1e-5  # relative to the output's scale; the same torch ops run on both sides


@pytest.fixture(scope="module")
def repositories(tmp_path_factory):
    tritonserver = tritonserver_or_skip()
    base = tmp_path_factory.mktemp("triton")
    ours, theirs = base / "netspec", base / "triton"
    sites = sorted({str(Path(m.__file__).resolve().parents[1]) for m in (torch, safetensors)})
    for name, (spec, variant) in MODELS.items():
        variant_args = ["--variant", variant] if variant else []
        netspec("compile", ROOT / "specs" / spec, *variant_args, "--repository", ours, "--name", name,
                "--max-queue-delay-us", QUEUE_DELAY_US, "--quiet")
        netspec("export", ROOT / "specs" / spec, *variant_args, "--format", "triton-python", "--repository", theirs,
                "--name", name, "--weights", ours / name / "1" / "weights.safetensors",
                "--max-queue-delay-us", QUEUE_DELAY_US, *[a for site in sites for a in ("--python-site", site)])
    return tritonserver, ours, theirs


@dataclass
class Clients:
    netspec: object
    triton: object
    urls: dict[str, str]


@pytest.fixture(scope="module")
def clients(repositories):
    tritonserver, ours, theirs = repositories
    with contextlib.ExitStack() as stack:
        netspec_server, netspec_url = start_netspec(ours)
        stack.callback(netspec_server.stop)
        triton_server, triton_url = start_triton(tritonserver, theirs)
        stack.callback(triton_server.stop)
        netspec_client = stack.enter_context(contextlib.closing(grpcclient.InferenceServerClient(netspec_url)))
        triton_client = stack.enter_context(contextlib.closing(grpcclient.InferenceServerClient(triton_url)))
        for name in MODELS:
            assert triton_client.is_model_ready(name), "".join(triton_server.log[-40:])
        yield Clients(netspec_client, triton_client, {"netspec": netspec_url, "triton": triton_url})


def inputs_for(client, name: str, batch: int, rng) -> dict[str, np.ndarray]:
    config = client.get_model_config(name).config
    arrays = {}
    for tensor in config.input:
        shape = [batch] + [STEPS if d == -1 else d for d in tensor.dims]
        arrays[tensor.name] = rng.standard_normal(shape).astype(np.float32)
    return arrays


def infer(client, name: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    inputs = []
    for key, array in arrays.items():
        tensor = grpcclient.InferInput(key, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    result = client.infer(name, inputs)
    return {o.name: result.as_numpy(o.name) for o in result.get_response().outputs}


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / (np.abs(b).max() or 1.0))


@pytest.mark.parametrize("name", MODELS)
def test_triton_outputs_equal_netspec_serve(clients, name):
    netspec_client, triton_client = clients.netspec, clients.triton
    arrays = inputs_for(netspec_client, name, 3, np.random.default_rng(0))
    ours, theirs = infer(netspec_client, name, arrays), infer(triton_client, name, arrays)
    assert theirs.keys() == ours.keys()
    for output, value in ours.items():
        assert theirs[output].shape == value.shape and theirs[output].dtype == value.dtype
        difference = relative(theirs[output], value)
        print(f"{name}.{output}: max abs diff {np.abs(theirs[output] - value).max():.3e}, max rel diff {difference:.3e}")
        assert difference <= TOLERANCE, f"{name}.{output}: Triton differs from netspec serve by {difference:.3e}"


def test_triton_model_config_names_our_inputs_and_outputs(clients):
    netspec_client, triton_client = clients.netspec, clients.triton
    for name in MODELS:
        ours, theirs = (c.get_model_config(name).config for c in (netspec_client, triton_client))
        assert theirs.backend == "python"
        for kind in ("input", "output"):
            ours_tensors = [(t.name, t.data_type, list(t.dims)) for t in getattr(ours, kind)]
            assert [(t.name, t.data_type, list(t.dims)) for t in getattr(theirs, kind)] == ours_tensors, (name, kind)
        assert theirs.max_batch_size == ours.max_batch_size > 0
        assert theirs.dynamic_batching.max_queue_delay_microseconds == QUEUE_DELAY_US


def test_triton_16_concurrent_requests_batch_and_equal_16_single_ones(clients):
    netspec_client, triton_client = clients.netspec, clients.triton
    rng = np.random.default_rng(1)
    requests = [inputs_for(netspec_client, "lenet", 1, rng) for _ in range(16)]
    singles = [infer(triton_client, "lenet", arrays)["logits"] for arrays in requests]
    before = triton_client.get_inference_statistics("lenet").model_stats[0]
    done: queue.Queue = queue.Queue()
    for k, arrays in enumerate(requests):
        (name, array), = arrays.items()
        tensor = grpcclient.InferInput(name, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array)
        triton_client.async_infer("lenet", [tensor], lambda result, error, k=k: done.put((k, result, error)))
    together = {}
    for _ in requests:
        k, result, error = done.get(timeout=120)
        assert error is None, error
        together[k] = result.as_numpy("logits")
    after = triton_client.get_inference_statistics("lenet").model_stats[0]
    inferences = after.inference_count - before.inference_count
    executions = after.execution_count - before.execution_count
    assert inferences == 16
    assert executions < 16, "Triton's dynamic batcher did not group any of the 16 requests"
    for k, single in enumerate(singles):
        assert relative(together[k], single) <= TOLERANCE, f"request {k} differs when batched"


def test_netspec_infer_talks_to_triton_as_to_netspec_serve(clients, tmp_path):
    """docs/deploy.md's comparison step: `netspec infer --url` at both servers."""
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(2).standard_normal((2, 1, 28, 28)).astype(np.float32))
    outputs = {}
    for server, url in clients.urls.items():
        out = tmp_path / f"{server}.npz"
        netspec("infer", "lenet", "--input", f"image={x}", "--url", url, "-o", out)
        outputs[server] = np.load(out)["logits"]
    assert outputs["triton"].shape == (2, 10)
    assert relative(outputs["triton"], outputs["netspec"]) <= TOLERANCE
