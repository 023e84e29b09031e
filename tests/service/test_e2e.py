"""End to end: `netspec compile` writes a repository from specs/, `netspec
serve` runs in its own process, and tritonclient talks to it over a loopback
socket. Outputs are compared with the compiled module run in this process.

tritonclient and netspec's generated protobuf code can share this process
because netspec registers its descriptors in a private pool (see
service/protos_gen.py); this file still imports nothing of the server.
"""

from __future__ import annotations

import queue
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from common import NP_TYPES, ROOT, datatype_of

grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

from server_process import Server, netspec, perf_analyzer_env  # noqa: E402

SPECS = sorted((ROOT / "specs").glob("*.yaml"))


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    """Every spec of specs/ compiled (default variants); every one must compile."""
    assert SPECS, "no specs in specs/"
    root = tmp_path_factory.mktemp("e2e") / "models"
    done = netspec("compile", *map(str, SPECS), "--repository", str(root), "--quiet", timeout=600)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in root.iterdir()) == sorted(p.stem for p in SPECS)
    return root


@pytest.fixture(scope="module")
def server(repository):
    server = Server(repository, "--model-control-mode", "explicit")
    yield server
    assert server.stop() == 0


@pytest.fixture
def client(server):
    with server.client() as client:
        yield client


def models(repository: Path) -> list[str]:
    return sorted(p.name for p in repository.iterdir() if (p / "config.pbtxt").exists())


def sample_inputs(meta, batch: int, rng) -> dict[str, np.ndarray]:
    arrays = {}
    for t in meta.inputs:
        shape = [batch if k == 0 and d == -1 else (5 if d == -1 else d) for k, d in enumerate(t.shape)]
        np_type = NP_TYPES[t.datatype]
        if np.issubdtype(np_type, np.integer):
            arrays[t.name] = rng.integers(0, 2, size=shape).astype(np_type)  # valid ids for any vocabulary
        else:
            arrays[t.name] = rng.standard_normal(shape).astype(np_type)
    return arrays


def to_infer_inputs(arrays: dict[str, np.ndarray]):
    inputs = []
    for name, array in arrays.items():
        inp = grpcclient.InferInput(name, list(array.shape), datatype_of(array))
        inp.set_data_from_numpy(array)
        inputs.append(inp)
    return inputs


_REFERENCES: dict = {}


def reference(repository: Path, name: str, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    from compiler.tools.artifact import load_version

    if name not in _REFERENCES:
        version = max((p for p in (repository / name).iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
        _REFERENCES[name] = load_version(version)
    model = _REFERENCES[name]
    with torch.inference_mode():
        out = model.module.eval()(*[torch.from_numpy(arrays[n]) for n in model.inputs])
    return [o.float().numpy() for o in (out if isinstance(out, tuple) else (out,))]


def test_server_health_and_metadata(client, server, repository):
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(server.url) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("lenet")
    meta = client.get_model_metadata("lenet")
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("image", "FP32", [-1, 1, 28, 28])]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [("logits", "FP32", [-1, 10])]
    config = client.get_model_config("lenet").config
    assert config.name == "lenet" and config.max_batch_size > 0
    assert [i.name for i in config.input] == ["image"] and list(config.input[0].dims) == [1, 28, 28]
    server_meta = client.get_server_metadata()
    assert server_meta.name == "netspec" and "model_repository" in server_meta.extensions
    index = client.get_model_repository_index()
    assert {m.name for m in index.models if m.state == "READY"} == set(models(repository))
    stats = client.get_inference_statistics("lenet").model_stats
    assert [(s.name, s.version) for s in stats] == [("lenet", "1")]


def test_infer_every_compiled_model_matches_the_module(client, repository):
    rng = np.random.default_rng(0)
    for name in models(repository):
        meta = client.get_model_metadata(name)
        arrays = sample_inputs(meta, 2, rng)
        result = client.infer(name, to_infer_inputs(arrays), request_id=f"{name}-1")
        assert result.get_response().id == f"{name}-1"
        expected = reference(repository, name, arrays)
        for out, want in zip(meta.outputs, expected):
            got = result.as_numpy(out.name).astype(np.float32)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"{name}.{out.name}")


def test_16_concurrent_async_infers_equal_single_runs(client, repository):
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((1, 1, 28, 28)).astype(np.float32) for _ in range(16)]
    results, executions = burst(client, batches)
    for k, x in enumerate(batches):
        single = client.infer("lenet", to_infer_inputs({"image": x})).as_numpy("logits")
        np.testing.assert_allclose(results[k], single, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(results[k], reference(repository, "lenet", {"image": x})[0], rtol=1e-4, atol=1e-5)
    assert client.get_inference_statistics("lenet").model_stats[0].inference_stats.success.count >= 32
    # Fewer executions than requests means batching happened. A burst may reach an idle server one
    # request at a time (each then runs alone as it arrives), so a few bursts are allowed to show it.
    tries = [executions]
    while min(tries) >= len(batches) and len(tries) < 4:
        tries.append(burst(client, batches)[1])
    assert min(tries) < len(batches), f"executions per burst of {len(batches)}: {tries}"


def burst(client, batches: list[np.ndarray]) -> tuple[dict[int, np.ndarray], int]:
    """All of `batches` sent at once as async requests: their outputs, and the executions the server ran."""
    done: queue.Queue = queue.Queue()
    before = client.get_inference_statistics("lenet").model_stats[0].execution_count
    for k, x in enumerate(batches):
        client.async_infer("lenet", to_infer_inputs({"image": x}), partial(done.put, k), request_id=str(k))
    results = {}
    for _ in batches:
        k, result, error = done.get(timeout=60)
        assert error is None, error
        results[k] = result.as_numpy("logits")
    return results, client.get_inference_statistics("lenet").model_stats[0].execution_count - before


def partial(put, k):
    return lambda result, error: put((k, result, error))


def test_stream_infer(client, repository):
    responses: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    try:
        rng = np.random.default_rng(2)
        xs = [rng.standard_normal((2, 1, 28, 28)).astype(np.float32) for _ in range(4)]
        for k, x in enumerate(xs):
            client.async_stream_infer("lenet", to_infer_inputs({"image": x}), request_id=f"s{k}")
        got = {}
        for _ in xs:
            result, error = responses.get(timeout=60)
            assert error is None, error
            got[result.get_response().id] = result.as_numpy("logits")
        for k, x in enumerate(xs):
            np.testing.assert_allclose(got[f"s{k}"], reference(repository, "lenet", {"image": x})[0], rtol=1e-4, atol=1e-5)
    finally:
        client.stop_stream()


def _status(call) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value.status(), info.value.message()


def test_errors_then_a_valid_call(client):
    x = np.zeros((1, 1, 28, 28), np.float32)

    def infer(inputs, model="lenet", version=""):
        return lambda: client.infer(model, inputs, model_version=version)

    wrong_name = grpcclient.InferInput("img", [1, 1, 28, 28], "FP32")
    wrong_name.set_data_from_numpy(x)
    wrong_type = grpcclient.InferInput("image", [1, 1, 28, 28], "INT64")
    wrong_type.set_data_from_numpy(x.astype(np.int64))
    wrong_shape = grpcclient.InferInput("image", [1, 1, 28, 27], "FP32")
    wrong_shape.set_data_from_numpy(np.zeros((1, 1, 28, 27), np.float32))
    wrong_bytes = grpcclient.InferInput("image", [1, 1, 28, 28], "FP32")
    wrong_bytes.set_data_from_numpy(x)
    wrong_bytes.set_shape([2, 1, 28, 28])  # one sample's bytes for a batch of two

    cases = [
        (infer(to_infer_inputs({"image": x}), model="nope"), "StatusCode.NOT_FOUND", ["nope"]),
        (infer(to_infer_inputs({"image": x}), version="42"), "StatusCode.NOT_FOUND", ["42"]),
        (infer([wrong_name]), "StatusCode.INVALID_ARGUMENT", ["'img'", "image"]),
        (infer([wrong_type]), "StatusCode.INVALID_ARGUMENT", ["'image'", "FP32", "INT64"]),
        (infer([wrong_shape]), "StatusCode.INVALID_ARGUMENT", ["'image'", "[-1, 1, 28, 28]", "[1, 1, 28, 27]"]),
        (infer([wrong_bytes]), "StatusCode.INVALID_ARGUMENT", ["'image'", "3136 bytes", "6272 bytes"]),
        (lambda: client.get_model_metadata("nope"), "StatusCode.NOT_FOUND", ["nope"]),
        (lambda: client.get_system_shared_memory_status(), "StatusCode.UNAVAILABLE", ["--allow-client-shm true"]),
        (lambda: client.get_cuda_shared_memory_status(), "StatusCode.UNIMPLEMENTED", ["CUDA shared memory"]),
    ]
    for call, status, words in cases:
        got_status, message = _status(call)
        assert got_status == status, message
        for word in words:
            assert word in message, message
    assert client.infer("lenet", to_infer_inputs({"image": x})).as_numpy("logits").shape == (1, 10)


def test_unload_and_load(client):
    x = np.zeros((1, 1, 28, 28), np.float32)
    client.unload_model("lenet")
    assert not client.is_model_ready("lenet")
    status, message = _status(lambda: client.infer("lenet", to_infer_inputs({"image": x})))
    assert status == "StatusCode.UNAVAILABLE" and "unloaded" in message
    states = {m.name: m.state for m in client.get_model_repository_index().models}
    assert states["lenet"] == "UNAVAILABLE"
    client.load_model("lenet")
    assert client.is_model_ready("lenet")
    assert client.infer("lenet", to_infer_inputs({"image": x})).as_numpy("logits").shape == (1, 10)


def test_a_model_that_fails_to_load_is_unavailable_while_others_serve(repository, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(repository / "lenet", root / "lenet")
    shutil.copytree(repository / "lenet", root / "damaged")
    (root / "damaged" / "config.pbtxt").write_text((root / "damaged" / "config.pbtxt").read_text().replace('"lenet"', '"damaged"'))
    (root / "damaged" / "1" / "weights.safetensors").write_bytes(b"not safetensors")
    server = Server(root, "--grace", "5")
    try:
        with server.client() as client:
            assert client.is_model_ready("lenet") and not client.is_model_ready("damaged")
            rows = {m.name: m for m in client.get_model_repository_index().models}
            assert rows["damaged"].state == "UNAVAILABLE" and rows["damaged"].reason
            status, message = _status(
                lambda: client.infer("damaged", to_infer_inputs({"image": np.zeros((1, 1, 28, 28), np.float32)})))
            assert status == "StatusCode.UNAVAILABLE" and "damaged" in message
            assert client.infer("lenet", to_infer_inputs({"image": np.zeros((1, 1, 28, 28), np.float32)}))
    finally:
        assert server.stop() == 0


def test_infer_command(server, tmp_path, repository):
    x = np.random.default_rng(4).standard_normal((2, 1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    done = netspec("infer", "lenet", "--input", f"image={tmp_path / 'x.npy'}", "--url", server.url,
                   "-o", str(tmp_path / "out.npz"), timeout=120)
    assert done.returncode == 0, done.stderr
    out = np.load(tmp_path / "out.npz")["logits"]
    np.testing.assert_allclose(out, reference(repository, "lenet", {"image": x})[0], rtol=1e-4, atol=1e-5)

    shown = netspec("infer", "lenet", "--input", f"image={tmp_path / 'x.npy'}", "--url", server.url, timeout=120)
    assert shown.returncode == 0, shown.stderr  # 20 logits: the first 8, then an ellipsis
    values = shown.stdout.rpartition("] [")[2]
    assert shown.stdout.startswith("logits: float32 [2, 10] [") and values.endswith(", ...]\n"), shown.stdout
    assert len(values.split(",")) == 9, shown.stdout

    bad = netspec("infer", "lenet", "--input", f"image={tmp_path / 'missing.npy'}", "--url", server.url, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "missing.npy" in bad.stderr
    down = netspec("infer", "lenet", "--input", f"image={tmp_path / 'x.npy'}", "--url", "127.0.0.1:1", timeout=120)
    assert down.returncode == 2 and "Traceback" not in down.stderr and "127.0.0.1:1" in down.stderr


def test_command_argument_errors(tmp_path, repository):
    cases = [
        (("serve", "--repository", str(tmp_path / "missing")), "missing"),
        (("serve", "--repository", str(repository), "--model", "ghost"), "ghost"),
        (("serve", "--repository", str(repository), "--port", "70000"), "70000"),
        (("serve", "--repository", str(repository), "--intra-op-threads", "0"), "--intra-op-threads"),
        (("infer", "lenet", "--input", "image"), "NAME=FILE.npy"),
    ]
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    cases.append((("infer", "lenet", "--input", f"image={tmp_path / 'bad.npy'}"), "bad.npy"))
    for args, word in cases:
        done = netspec(*args, timeout=60)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr and word in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr


@pytest.mark.skipif(shutil.which("perf_analyzer") is None, reason="perf_analyzer is not installed (.ci/perf_analyzer.sh)")
def test_perf_analyzer(server):
    """2 s measurement windows at concurrency 4 against lenet, over the socket."""
    done = subprocess.run(
        ["perf_analyzer", "-m", "lenet", "-i", "grpc", "-u", server.url, "--concurrency-range", "4",
         "--measurement-interval", "2000", "--measurement-mode", "time_windows", "-b", "1",
         "--max-trials", "3", "--stability-percentage", "100"],
        capture_output=True, text=True, timeout=120, env=perf_analyzer_env(),
    )
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Throughput:" in done.stdout
