"""serve() in process: health follows loading and shutdown, and shutdown
lets calls in flight finish before the models are released."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.generated import grpc_service_pb2 as pb
from service.generated import grpc_service_pb2_grpc as pb_grpc
from service.lifecycle import ADMIT_WINDOW_S
from service.options import ServeOptions
from service.server import serve
from service_fakes import fake_loader, run, write_model


def test_health_and_graceful_shutdown(tmp_path):
    root = tmp_path / "models"
    write_model(root, "slow", "slow", batching=False)

    async def body():
        stop = asyncio.Event()
        listening: asyncio.Future = asyncio.get_running_loop().create_future()
        options = ServeOptions(port=0, device="cpu", grace_s=10, metrics_port=0)
        server = asyncio.create_task(serve(root, options, stop=stop, loader=fake_loader,
                                           on_listening=lambda host, port: listening.set_result(port)))
        port = await asyncio.wait_for(listening, 60)
        try:
            await calls_across_shutdown(port, stop)
        finally:
            stop.set()  # a failed check must not leave the server running past the event loop
            assert await asyncio.wait_for(server, 30) == 0

    async def calls_across_shutdown(port, stop):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            check = lambda: health.Check(health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService"))
            assert (await check()).status == health_pb2.HealthCheckResponse.SERVING

            request = pb.ModelInferRequest(model_name="slow")
            request.inputs.add(name="x", datatype="FP32", shape=[1, 2])
            request.raw_input_contents.append(np.zeros((1, 2), np.float32).tobytes())
            watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            calls = [asyncio.ensure_future(stub.ModelInfer(request)) for _ in range(3)]  # 3 x 0.3 s, one at a time
            await asyncio.sleep(0.15)
            stop.set()
            # Watchers hear NOT_SERVING; new calls are refused; calls in flight finish.
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert not (await stub.ServerReady(pb.ServerReadyRequest())).ready  # still answered: admission window
            await asyncio.sleep(ADMIT_WINDOW_S + 0.05)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ServerLive(pb.ServerLiveRequest(), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in info.value.details()
            # Health still answers, so probes see NOT_SERVING rather than an error.
            assert (await check()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            responses = await asyncio.gather(*calls)
            assert all(np.frombuffer(r.raw_output_contents[0], np.float32).tolist() == [1.0, 1.0] for r in responses)

    run(body())
