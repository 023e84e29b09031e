"""The gRPC service in process, over a real loopback socket, with stand-in
models: every RPC, the tensor layouts, and each error with its status code."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import grpc
import numpy as np
import pytest
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.generated import grpc_service_pb2 as pb
from service.generated import grpc_service_pb2_grpc as pb_grpc
from service.repository import Repository
from service.server import create_server

from common import NP_TYPES
from service_fakes import TEST_OPTIONS, make_model, ready, run, write_model


@contextlib.asynccontextmanager
async def serving(repo_dir, models=None):
    repository = Repository(repo_dir, device=torch.device("cpu"), loader=_loader())
    await repository.load_all(models)
    server, port = create_server(repository, TEST_OPTIONS, readiness=ready(repository))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield pb_grpc.GRPCInferenceServiceStub(channel), repository, channel
    finally:
        await server.stop(None)
        await repository.close()


def _loader():
    from service_fakes import fake_loader

    return fake_loader


def infer_request(model, arrays: dict, datatypes: dict | None = None, *, version="", id="", outputs=()):
    request = pb.ModelInferRequest(model_name=model, model_version=version, id=id)
    for name, array in arrays.items():
        datatype = (datatypes or {}).get(name) or {"float32": "FP32", "int64": "INT64", "uint8": "UINT8"}[str(array.dtype)]
        request.inputs.add(name=name, datatype=datatype, shape=array.shape)
        request.raw_input_contents.append(np.ascontiguousarray(array).tobytes())
    for name in outputs:
        request.outputs.add(name=name)
    return request


def output_arrays(response) -> dict[str, np.ndarray]:
    return {
        o.name: np.frombuffer(raw, NP_TYPES[o.datatype]).reshape(tuple(o.shape))
        for o, raw in zip(response.outputs, response.raw_output_contents)
    }


def reference(kind: str, *arrays):
    module = make_model(kind).module
    with torch.inference_mode():
        out = module(*[torch.from_numpy(a) for a in arrays])
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def test_health_metadata_and_config(repo_dir):
    async def body():
        async with serving(repo_dir) as (stub, _, channel):
            assert (await stub.ServerLive(pb.ServerLiveRequest())).live
            assert (await stub.ServerReady(pb.ServerReadyRequest())).ready
            assert (await stub.ModelReady(pb.ModelReadyRequest(name="twoheads"))).ready
            assert not (await stub.ModelReady(pb.ModelReadyRequest(name="broken"))).ready
            assert not (await stub.ModelReady(pb.ModelReadyRequest(name="nope"))).ready

            meta = await stub.ServerMetadata(pb.ServerMetadataRequest())
            assert meta.name == "netspec" and "model_repository" in meta.extensions

            m = await stub.ModelMetadata(pb.ModelMetadataRequest(name="twoheads"))
            assert list(m.versions) == ["1", "2"]
            assert [(t.name, t.datatype, list(t.shape)) for t in m.inputs] == [("x", "FP32", [-1, 4])]
            assert [(t.name, t.datatype, list(t.shape)) for t in m.outputs] == [
                ("y", "FP32", [-1, 3]), ("total", "FP32", [-1, 1])]
            m = await stub.ModelMetadata(pb.ModelMetadataRequest(name="int64"))
            assert [(t.name, t.datatype, list(t.shape)) for t in m.inputs] == [("ids", "INT64", [-1, -1])]

            config = (await stub.ModelConfig(pb.ModelConfigRequest(name="twoheads"))).config
            assert config.name == "twoheads" and config.max_batch_size == 8
            assert config.dynamic_batching.max_queue_delay_microseconds == 20000
            assert config.parameters["precision"].string_value == "fp32"

            health = health_pb2_grpc.HealthStub(channel)
            # create_server alone does not mark serving; serve() does after loading.
            status = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert status.status in (health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.UNKNOWN)

    run(body())


def test_infer_raw_typed_and_requested_outputs(repo_dir):
    x = np.arange(8, dtype=np.float32).reshape(2, 4)

    async def body():
        async with serving(repo_dir) as (stub, _, _c):
            response = await stub.ModelInfer(infer_request("twoheads", {"x": x}, id="req-7"))
            assert response.id == "req-7" and response.model_name == "twoheads" and response.model_version == "2"
            got = output_arrays(response)
            y, total = reference("twoheads", x)
            np.testing.assert_allclose(got["y"], y, rtol=1e-6)
            np.testing.assert_allclose(got["total"], total)

            only = await stub.ModelInfer(infer_request("twoheads", {"x": x}, outputs=["total"], version="1"))
            assert [o.name for o in only.outputs] == ["total"] and only.model_version == "1"

            typed = pb.ModelInferRequest(model_name="twoheads")
            t = typed.inputs.add(name="x", datatype="FP32", shape=[2, 4])
            t.contents.fp32_contents.extend(x.reshape(-1).tolist())
            np.testing.assert_allclose(output_arrays(await stub.ModelInfer(typed))["y"], y, rtol=1e-6)

            ids = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
            assert (output_arrays(await stub.ModelInfer(infer_request("int64", {"ids": ids})))["doubled"] == ids * 2).all()
            typed = pb.ModelInferRequest(model_name="int64")
            t = typed.inputs.add(name="ids", datatype="INT64", shape=[1, 3])
            t.contents.int64_contents.extend([7, 8, 9])
            assert output_arrays(await stub.ModelInfer(typed))["doubled"].tolist() == [[14, 16, 18]]

            px = np.array([[1, 2], [3, 4]], dtype=np.uint8)
            assert (output_arrays(await stub.ModelInfer(infer_request("uint8", {"pixels": px})))["tripled"] == px * 3).all()

            v = np.array([1, 2, 3], dtype=np.float32)
            np.testing.assert_allclose(output_arrays(await stub.ModelInfer(infer_request("fixed", {"v": v})))["w"], v * 1.5)

    run(body())


@pytest.mark.parametrize("precision,datatype,np_type,tol", [
    ("fp16", "FP32", np.float32, 2e-2), ("bf16", "FP32", np.float32, 5e-2),
])
def test_reduced_precision(tmp_path, precision, datatype, np_type, tol):
    root = tmp_path / "models"
    write_model(root, "twoheads", "twoheads", precision=precision)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)

    async def body():
        async with serving(root) as (stub, repository, _c):
            assert repository.get("twoheads").runtime.module.linear.weight.dtype != torch.float32
            got = output_arrays(await stub.ModelInfer(infer_request("twoheads", {"x": x})))
            y, _ = reference("twoheads", x)
            assert got["y"].dtype == np.float32
            np.testing.assert_allclose(got["y"], y, atol=tol, rtol=tol)

    run(body())


def test_fp16_and_bf16_raw_datatypes(tmp_path):
    """Models whose inputs are FP16 or BF16 take raw bytes of that type."""
    from service_fakes import fake_model, Info, Scale

    root = tmp_path / "models"
    for dtype in ("float16", "bfloat16"):
        write_model(root, dtype, dtype)

    def loader(version_dir, precision):
        dtype = (version_dir / "kind").read_text()
        return fake_model(dtype, Scale(2), {"h": Info(("N", 2), dtype)}, {"o": Info(("N", 2), dtype)})

    async def body():
        repository = Repository(root, device=torch.device("cpu"), loader=loader)
        await repository.load_all()
        server, port = create_server(repository, TEST_OPTIONS, readiness=ready(repository))
        await server.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            x = torch.tensor([[1.5, -2.0]])
            for dtype, datatype in (("float16", "FP16"), ("bfloat16", "BF16")):
                t = x.to(getattr(torch, dtype))
                request = pb.ModelInferRequest(model_name=dtype)
                request.inputs.add(name="h", datatype=datatype, shape=[1, 2])
                request.raw_input_contents.append(t.view(torch.uint8).numpy().tobytes())
                response = await stub.ModelInfer(request)
                assert response.outputs[0].datatype == datatype
                out = torch.frombuffer(bytearray(response.raw_output_contents[0]), dtype=t.dtype).reshape(1, 2)
                assert torch.equal(out, t * 2)
        await server.stop(None)
        await repository.close()

    run(body())


ERROR_CASES = [
    # (what, request builder, status code, words the message must contain)
    ("unknown model", lambda: infer_request("nope", {"x": np.zeros((1, 4), np.float32)}),
     grpc.StatusCode.NOT_FOUND, ["nope"]),
    ("unknown version", lambda: infer_request("twoheads", {"x": np.zeros((1, 4), np.float32)}, version="9"),
     grpc.StatusCode.NOT_FOUND, ["version '9'", "1, 2"]),
    ("model failed to load", lambda: infer_request("broken", {"x": np.zeros((1, 4), np.float32)}),
     grpc.StatusCode.UNAVAILABLE, ["broken", "linear.weight"]),
    ("wrong input name", lambda: infer_request("twoheads", {"image": np.zeros((1, 4), np.float32)}),
     grpc.StatusCode.INVALID_ARGUMENT, ["'image'", "x"]),
    ("wrong datatype", lambda: infer_request("twoheads", {"x": np.zeros((1, 4), np.int64)}),
     grpc.StatusCode.INVALID_ARGUMENT, ["'x'", "FP32", "INT64"]),
    ("unknown datatype", lambda: infer_request("twoheads", {"x": np.zeros((1, 4), np.float32)}, {"x": "FP8"}),
     grpc.StatusCode.INVALID_ARGUMENT, ["'x'", "FP8"]),
    ("wrong shape", lambda: infer_request("twoheads", {"x": np.zeros((1, 5), np.float32)}),
     grpc.StatusCode.INVALID_ARGUMENT, ["'x'", "[-1, 4]", "[1, 5]"]),
    ("wrong rank", lambda: infer_request("twoheads", {"x": np.zeros((4,), np.float32)}),
     grpc.StatusCode.INVALID_ARGUMENT, ["'x'", "[-1, 4]", "[4]"]),
    ("batch over max_batch_size", lambda: infer_request("twoheads", {"x": np.zeros((9, 4), np.float32)}),
     grpc.StatusCode.INVALID_ARGUMENT, ["9", "max_batch_size 8"]),
    ("unknown requested output", lambda: infer_request("twoheads", {"x": np.zeros((1, 4), np.float32)}, outputs=["z"]),
     grpc.StatusCode.INVALID_ARGUMENT, ["'z'", "y, total"]),
    ("missing input", lambda: pb.ModelInferRequest(model_name="twoheads"),
     grpc.StatusCode.INVALID_ARGUMENT, ["'x'"]),
]


def _raw_length_case():
    request = infer_request("twoheads", {"x": np.zeros((1, 4), np.float32)})
    request.raw_input_contents[0] = b"\0" * 10
    return request


def _raw_count_case():
    request = infer_request("twoheads", {"x": np.zeros((1, 4), np.float32)})
    request.raw_input_contents.append(b"")
    return request


ERROR_CASES += [
    ("raw byte length", _raw_length_case, grpc.StatusCode.INVALID_ARGUMENT, ["'x'", "10 bytes", "16 bytes"]),
    ("raw entry count", _raw_count_case, grpc.StatusCode.INVALID_ARGUMENT, ["1 inputs", "2 raw_input_contents"]),
]


def _shm_case(**params):
    """A request whose input x names shared memory with these parameters (ints as int64_param)."""
    request = infer_request("twoheads", {"x": np.zeros((1, 4), np.float32)})
    del request.raw_input_contents[:]
    for key, value in params.items():
        param = request.inputs[0].parameters[f"shared_memory_{key}"]
        if isinstance(value, str):
            param.string_param = value
        elif isinstance(value, float):
            param.double_param = value
        else:
            param.int64_param = value
    return request


# The parameters are read as Triton reads them; a well-formed request still
# finds shared memory off (these servers run without --allow-client-shm).
ERROR_CASES += [
    ("shm offset without region", lambda: _shm_case(offset=0, byte_size=16), grpc.StatusCode.INVALID_ARGUMENT,
     ["input 'x'", "'shared_memory_offset' is set without 'shared_memory_region'"]),
    ("shm region not a string", lambda: _shm_case(region=3, byte_size=16), grpc.StatusCode.INVALID_ARGUMENT,
     ["'shared_memory_region' must be a string_param"]),
    ("shm without byte size", lambda: _shm_case(region="r"), grpc.StatusCode.INVALID_ARGUMENT,
     ["'shared_memory_byte_size' must be given"]),
    ("shm size not an integer", lambda: _shm_case(region="r", byte_size=16.0), grpc.StatusCode.INVALID_ARGUMENT,
     ["'shared_memory_byte_size' must be an int64_param"]),
    ("shm negative offset", lambda: _shm_case(region="r", byte_size=16, offset=-8), grpc.StatusCode.INVALID_ARGUMENT,
     ["'shared_memory_offset' is -8"]),
    ("shm while off", lambda: _shm_case(region="r", byte_size=16), grpc.StatusCode.UNAVAILABLE,
     ["--allow-client-shm true"]),
]


def test_errors_have_their_status_and_the_server_keeps_serving(repo_dir):
    async def body():
        async with serving(repo_dir) as (stub, repository, _c):
            for what, build, code, words in ERROR_CASES:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.ModelInfer(build())
                assert info.value.code() == code, (what, info.value.details())
                for word in words:
                    assert word in info.value.details(), (what, info.value.details())
            # Other RPCs: metadata of an unknown model, unimplemented features.
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ModelMetadata(pb.ModelMetadataRequest(name="nope"))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            for call, request in ((stub.CudaSharedMemoryStatus, pb.CudaSharedMemoryStatusRequest()),
                                  (stub.CudaSharedMemoryRegister, pb.CudaSharedMemoryRegisterRequest()),
                                  (stub.TraceSetting, pb.TraceSettingRequest()),
                                  (stub.LogSettings, pb.LogSettingsRequest())):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await call(request)
                assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
                assert "not supported by netspec" in info.value.details()
            # A valid call still works, and the failures were counted.
            response = await stub.ModelInfer(infer_request("twoheads", {"x": np.ones((1, 4), np.float32)}))
            assert len(response.outputs) == 2
            stats = await stub.ModelStatistics(pb.ModelStatisticsRequest(name="twoheads", version="2"))
            (s,) = stats.model_stats
            assert s.inference_stats.success.count == 1 and s.inference_stats.fail.count >= 6

    run(body())


def test_a_request_the_model_raises_on_is_invalid_and_logged_once(tmp_path, caplog):
    from service_fakes import fake_model, Info

    class Crash(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("index 7 is out of bounds for dimension 0 with size 4")

    root = tmp_path / "models"
    write_model(root, "crash", "crash", batching=False)

    async def body():
        repository = Repository(root, device=torch.device("cpu"),
                                loader=lambda d, p: fake_model("crash", Crash(), {"x": Info(("N", 2))},
                                                               {"y": Info(("N", 2))}))
        await repository.load_all()
        server, port = create_server(repository, TEST_OPTIONS, readiness=ready(repository))
        await server.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for _ in range(3):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.ModelInfer(infer_request("crash", {"x": np.zeros((1, 2), np.float32)}))
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert info.value.details() == ("model 'crash' cannot run on this request: "
                                                "index 7 is out of bounds for dimension 0 with size 4")
            assert (await stub.ServerLive(pb.ServerLiveRequest())).live
        await server.stop(None)
        await repository.close()

    with caplog.at_level("ERROR", logger="netspec.serve"):
        run(body())
    logged = [r for r in caplog.records if "failed on a request" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None  # one traceback for three failures


def test_bugs_are_internal_with_a_generic_message_and_a_logged_traceback(repo_dir, monkeypatch, caplog):
    import service.servicer

    def broken(result):
        raise KeyError("secret internals")

    monkeypatch.setattr(service.servicer, "infer_response_to_pb", broken)

    async def body():
        async with serving(repo_dir, ["twoheads"]) as (stub, _, _c):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ModelInfer(infer_request("twoheads", {"x": np.zeros((1, 4), np.float32)}))
            assert info.value.code() == grpc.StatusCode.INTERNAL
            assert "secret" not in info.value.details() and "KeyError" not in info.value.details()
            assert (await stub.ServerLive(pb.ServerLiveRequest())).live

    with caplog.at_level("ERROR", logger="netspec.serve"):
        run(body())
    assert any(r.exc_info and "secret internals" in str(r.exc_info[1]) for r in caplog.records)


def test_a_loader_bug_is_an_internal_failure_without_its_type_or_message(tmp_path, caplog):
    root = tmp_path / "models"
    write_model(root, "buggy", "buggy")

    async def body():
        async with serving(root) as (stub, _, _c):
            index = await stub.RepositoryIndex(pb.RepositoryIndexRequest())
            (row,) = index.models
            assert row.state == "UNAVAILABLE" and row.reason.startswith("internal error while loading")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ModelInfer(infer_request("buggy", {"x": np.zeros((1, 4), np.float32)}))
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "ValueError" not in info.value.details() and "secret" not in info.value.details()

    with caplog.at_level("ERROR", logger="netspec.serve"):
        run(body())
    assert any(r.exc_info and "secret internals" in str(r.exc_info[1]) for r in caplog.records)


def test_concurrent_requests_batch_and_match_single_runs(repo_dir):
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((1 + k % 3, 4)).astype(np.float32) for k in range(16)]

    async def body():
        async with serving(repo_dir, ["twoheads"]) as (stub, repository, _c):
            # The model's worker is kept busy until every call has reached the
            # scheduler, so they queue up and must be batched when it frees.
            served = repository.get("twoheads")
            gate = threading.Event()
            served.executor.submit(gate.wait, 10)
            calls = asyncio.gather(*[stub.ModelInfer(infer_request("twoheads", {"x": x})) for x in xs])
            for _ in range(500):
                if served.in_flight == len(xs):
                    break
                await asyncio.sleep(0.01)
            gate.set()
            responses = await calls
            for x, response in zip(xs, responses):
                y, total = reference("twoheads", x)
                got = output_arrays(response)
                np.testing.assert_allclose(got["y"], y, rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(got["total"], total, rtol=1e-5, atol=1e-6)
            stats = (await stub.ModelStatistics(pb.ModelStatisticsRequest(name="twoheads", version="2"))).model_stats[0]
            assert stats.inference_count == sum(len(x) for x in xs)
            assert stats.inference_stats.success.count == 16
            assert stats.execution_count < 16, "concurrent requests should have been batched"
            assert max(b.batch_size for b in stats.batch_stats) > 3

    run(body())


def test_stream_infer(repo_dir):
    xs = [np.full((1, 4), k, np.float32) for k in range(5)]

    async def body():
        async with serving(repo_dir, ["twoheads"]) as (stub, _, _c):
            async def requests():
                for k, x in enumerate(xs):
                    yield infer_request("twoheads", {"x": x}, id=f"r{k}")
                yield infer_request("twoheads", {"x": np.zeros((1, 5), np.float32)}, id="bad")

            seen = {}
            async for response in stub.ModelStreamInfer(requests()):
                seen[response.infer_response.id] = response
            assert set(seen) == {"r0", "r1", "r2", "r3", "r4", "bad"}
            assert "[1, 5]" in seen["bad"].error_message
            for k, x in enumerate(xs):
                assert seen[f"r{k}"].error_message == ""
                total = output_arrays(seen[f"r{k}"].infer_response)["total"]
                np.testing.assert_allclose(total, reference("twoheads", x)[1])

    run(body())


def test_repository_index_load_unload(repo_dir):
    async def body():
        async with serving(repo_dir, ["twoheads", "broken"]) as (stub, _, _c):
            index = await stub.RepositoryIndex(pb.RepositoryIndexRequest())
            rows = {(m.name, m.version): (m.state, m.reason) for m in index.models}
            assert rows[("twoheads", "1")] == ("READY", "") and rows[("twoheads", "2")] == ("READY", "")
            assert rows[("broken", "")][0] == "UNAVAILABLE" and "linear.weight" in rows[("broken", "")][1]
            assert rows[("int64", "")] == ("UNAVAILABLE", "not loaded")
            ready = await stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True))
            assert {m.name for m in ready.models} == {"twoheads"}

            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ModelInfer(infer_request("int64", {"ids": np.zeros((1, 2), np.int64)}))
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="int64"))
            await stub.ModelInfer(infer_request("int64", {"ids": np.zeros((1, 2), np.int64)}))

            await stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="twoheads"))
            assert not (await stub.ModelReady(pb.ModelReadyRequest(name="twoheads"))).ready
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ModelInfer(infer_request("twoheads", {"x": np.zeros((1, 4), np.float32)}))
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "unloaded" in info.value.details()

            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="broken"))
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "linear.weight" in info.value.details()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="ghost"))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND

    run(body())


def test_unload_waits_for_calls_in_flight(repo_dir):
    async def body():
        async with serving(repo_dir, ["slow"]) as (stub, repository, _c):
            calls = [asyncio.ensure_future(stub.ModelInfer(infer_request("slow", {"x": np.zeros((1, 2), np.float32)})))
                     for _ in range(3)]
            await asyncio.sleep(0.1)
            await stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="slow"))
            for call in calls:  # all finished before the unload returned
                assert call.done()
                assert output_arrays(call.result())["y"].tolist() == [[1.0, 1.0]]

    run(body())


def test_reflection_lists_the_services(repo_dir):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async def body():
        async with serving(repo_dir, []) as (_, _r, channel):
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            async def one():
                yield reflection_pb2.ServerReflectionRequest(list_services="")
                yield reflection_pb2.ServerReflectionRequest(file_containing_symbol="inference.GRPCInferenceService")
            answers = [a async for a in stub.ServerReflectionInfo(one())]
            names = {s.name for s in answers[0].list_services_response.service}
            assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= names
            assert answers[1].file_descriptor_response.file_descriptor_proto

    run(body())


def test_a_response_past_the_message_limit_is_resource_exhausted(tmp_path):
    from dataclasses import replace

    from service_fakes import Info, fake_model

    class Widen(torch.nn.Module):
        def forward(self, x):  # [N, 2] -> [N, 200]: the response outgrows the request
            return x.repeat(1, 100)

    root = tmp_path / "models"
    write_model(root, "widen", "widen", max_batch_size=64)

    def loader(version_dir, precision):
        return fake_model("widen", Widen(), {"x": Info(("N", 2))}, {"y": Info(("N", 200))})

    async def body():
        repository = Repository(root, device=torch.device("cpu"), loader=loader)
        await repository.load_all()
        server, port = create_server(repository, replace(TEST_OPTIONS, max_message_bytes=4096),
                                     readiness=ready(repository))
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                await stub.ModelInfer(infer_request("widen", {"x": np.zeros((4, 2), np.float32)}))  # 3,200 bytes out
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.ModelInfer(infer_request("widen", {"x": np.zeros((8, 2), np.float32)}))
                assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert info.value.details().startswith("the response would hold 6,400 bytes of outputs, more than "
                                                       "this server sends in one message (4,096, --max-message-bytes)")
        finally:
            await server.stop(None)
            await repository.close()

    run(body())


def test_large_typed_contents_are_decoded_off_the_event_loop(repo_dir, monkeypatch):
    from service.inference import Inference

    threads = []
    decode = Inference._decode

    def recording(runtime, request, *rest):
        threads.append(threading.current_thread() is threading.main_thread())
        return decode(runtime, request, *rest)

    monkeypatch.setattr(Inference, "_decode", staticmethod(recording))
    rows = 40_000  # 160,000 typed values: about 1.3 MB on the wire

    async def body():
        async with serving(repo_dir, ["int64"]) as (stub, _, _c):
            for n in (3, rows):
                typed = pb.ModelInferRequest(model_name="int64")
                t = typed.inputs.add(name="ids", datatype="INT64", shape=[4, n])
                t.contents.int64_contents.extend(range(4 * n))
                out = output_arrays(await stub.ModelInfer(typed))["doubled"]
                assert out[-1, -1] == 2 * (4 * n - 1)

    run(body())
    assert threads == [True, False]  # the small one on the loop, the large one in a worker thread
