"""Assembling and running the gRPC server: the inference service, standard
health (grpc.health.v1) and reflection, and graceful shutdown.

Shutdown order (SIGTERM or SIGINT): health goes NOT_SERVING and ServerReady
false, the server stops accepting calls, calls in flight get up to the grace
period to finish, and only then are the models released.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from service.generated import POOL
from service.generated import grpc_service_pb2 as pb
from service.generated import grpc_service_pb2_grpc as pb_grpc
from service.repository import Repository, default_loader
from service.runtime import resolve_device
from service.servicer import InferenceServicer, ServerState
from service.status import ErrorInterceptor

log = logging.getLogger("netspec.serve")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

# Reflection reads our private descriptor pool (see service/protos_gen.py);
# health and reflection's own files are added to it so they are described too.
for _file in (health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR):
    try:
        POOL.FindFileByName(_file.name)
    except KeyError:
        POOL.AddSerializedFile(_file.serialized_pb)


def create_server(
    repository: Repository,
    host: str = "127.0.0.1",
    port: int = 8001,
    *,
    state: ServerState | None = None,
    health_servicer: health.aio.HealthServicer | None = None,
) -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server for `repository`, bound but not started; port 0 picks a free port."""
    server = grpc.aio.server(
        interceptors=[ErrorInterceptor()],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(repository, state or ServerState()), server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer or health.aio.HealthServicer(), server)
    reflection.enable_server_reflection(
        [SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server, pool=POOL
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    return server, bound


async def serve(
    repository_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8001,
    device: str = "auto",
    models: list[str] | None = None,
    grace_s: float = 30.0,
    on_listening=None,
    stop: asyncio.Event | None = None,
    loader=default_loader,
) -> int:
    """Run until SIGTERM or SIGINT (or until `stop` is set, when given);
    returns the exit code. `on_listening(host, port)` is called once the
    models are loaded."""
    repository = Repository(repository_dir, device=resolve_device(device), loader=loader)
    state = ServerState()
    health_servicer = health.aio.HealthServicer()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    server, bound = create_server(repository, host, port, state=state, health_servicer=health_servicer)

    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

    await server.start()
    log.info("device %s; loading models from %s", repository.device, repository_dir)
    failures = await repository.load_all(models)
    for name, reason in failures.items():
        log.error("%s", reason)
    state.ready = True
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if on_listening is not None:
        on_listening(host, bound)

    await stop.wait()
    log.info("shutting down: %d calls in flight, grace %.1f s", repository.in_flight(), grace_s)
    state.ready = False
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace_s)
    await repository.close()
    log.info("stopped")
    return 0
