"""Assembling and running the gRPC server: the inference service, standard
health (grpc.health.v1) and reflection, TLS and token authentication, and
graceful shutdown.

Shutdown order (SIGTERM or SIGINT): health goes NOT_SERVING and ServerReady
false, every new call is answered UNAVAILABLE at once, the calls already
accepted get up to the grace period to finish (service/lifecycle.py), then
the gRPC server stops and only then are the models released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from compiler import api
from service import threads
from service.auth import TokenCheck
from service.generated import POOL
from service.generated import grpc_service_pb2_grpc as pb_grpc
from service.lifecycle import Lifecycle
from service.options import ServeOptions
from service.readiness import SERVICE_NAME, Readiness
from service.repository import Repository, default_loader
from service.runtime import resolve_device
from service.servicer import InferenceServicer
from service.shared_memory import SharedMemory
from service.status import Guard

log = logging.getLogger("netspec.serve")

STOP_GRACE_S = 1.0

# Reflection reads our private descriptor pool (see service/protos_gen.py);
# health and reflection's own files are added to it so they are described too.
for _file in (health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR):
    try:
        POOL.FindFileByName(_file.name)
    except KeyError:
        POOL.AddSerializedFile(_file.serialized_pb)


def server_credentials(options: ServeOptions) -> grpc.ServerCredentials | None:
    """TLS from --tls-cert and --tls-key; with --tls-client-ca, mutual TLS:
    a client without a certificate that CA signed is refused in the handshake."""
    if options.tls_cert is None:
        return None
    client_ca = Path(options.tls_client_ca).read_bytes() if options.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(Path(options.tls_key).read_bytes(), Path(options.tls_cert).read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def create_server(
    repository: Repository,
    options: ServeOptions | None = None,
    *,
    readiness: Readiness | None = None,
    health_servicer: health.aio.HealthServicer | None = None,
    shared_memory: SharedMemory | None = None,
) -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server for `repository`, bound but not started; port 0 picks a free port."""
    options = options or ServeOptions()
    health_servicer = health_servicer or health.aio.HealthServicer()
    if readiness is None:
        readiness = Readiness(repository, Lifecycle(), health_servicer, strict=options.strict_readiness)
    guard = Guard(readiness.lifecycle, TokenCheck(options.auth_tokens) if options.auth_tokens else None)
    server = grpc.aio.server(
        interceptors=[guard],
        options=[
            ("grpc.max_receive_message_length", options.max_message_bytes),
            ("grpc.max_send_message_length", options.max_message_bytes),
            # A second server on a busy port fails instead of sharing it,
            # unless this is one of the processes of a --workers group.
            ("grpc.so_reuseport", 1 if options.shared_port else 0),
        ],
    )
    servicer = InferenceServicer(repository, readiness, options, shared_memory)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server, pool=POOL
    )
    address = f"{options.host}:{options.port}"
    credentials = server_credentials(options)
    bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"cannot listen on {address}")
    return server, bound


async def serve(
    repository_dir: Path,
    options: ServeOptions | None = None,
    *,
    on_listening=None,
    on_metrics=None,
    stop: asyncio.Event | None = None,
    loader=default_loader,
) -> int:
    """Run until SIGTERM or SIGINT (or until `stop` is set, when given);
    returns the exit code. `on_listening(host, port)` is called once the
    models asked for have loaded or failed, and `on_metrics(port)` once the
    metrics endpoint listens (its real port, where the options ask for 0).

    A single server listens from the start and answers NOT_SERVING while its
    models load. A process of a --workers group (options.shared_port) binds
    its port only once they have loaded: the kernel hands each new
    connection to one of the processes listening, and a connection stays
    with the process it reached, so none must reach one still loading."""
    options = options or ServeOptions()
    if options.intra_op_threads is not None:
        import torch

        torch.set_num_threads(options.intra_op_threads)
    health_servicer = health.aio.HealthServicer()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    readiness = None
    repository = Repository(repository_dir, device=resolve_device(options.device), loader=loader,
                            load_timeout_s=options.model_load_timeout_s, load_threads=options.model_load_threads,
                            learn_threads=options.intra_op_threads is None and not threads.user_chose(),
                            on_change=lambda: readiness.refresh())
    readiness = Readiness(repository, Lifecycle(), health_servicer, strict=options.strict_readiness)
    shared_memory = SharedMemory(enabled=options.allow_client_shm)
    server = bound = None

    async def listen():
        nonlocal server, bound
        server, bound = create_server(repository, options, readiness=readiness, health_servicer=health_servicer,
                                      shared_memory=shared_memory)
        await server.start()
        readiness.listening = True
        await readiness.refresh()

    # Before the gRPC server exists: a busy metrics port then leaves nothing to stop.
    metrics = None
    if options.metrics_port:
        from service.metrics import start_metrics_server

        metrics_host, metrics_port = options.metrics_host or options.host, options.metrics_port
        if options.shared_port:  # the group's parent serves --metrics-port, merging its workers' figures
            metrics_host, metrics_port = "127.0.0.1", 0
        metrics = start_metrics_server(repository, metrics_host, metrics_port)
        log.info("metrics on http://%s:%d/metrics", metrics_host, metrics.server_port)
        if on_metrics is not None:
            on_metrics(metrics.server_port)
    if not options.shared_port:
        try:
            await listen()
        except BaseException:  # the port or the TLS files: the caller reports it
            if metrics is not None:
                from service.metrics import stop_metrics_server

                await stop_metrics_server(metrics)
            raise

    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

    if options.auth_tokens and options.tls_cert is None:
        log.warning("tokens are checked but travel in clear text: add --tls-cert and --tls-key")
    log.info("device %s; loading models from %s", repository.device, repository_dir)
    if loader is default_loader:  # the compiler's first build imports a second of torch: not the model's time
        await asyncio.to_thread(api.warm_up)
    # Loads run in their own threads with a time limit; a signal during them
    # stops the server without waiting for them.
    loading = asyncio.create_task(repository.load_all(options.models))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({loading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if loading.done():
        loading.result()  # failures are logged as they happen; this raises only a bug
        readiness.started = True
        if server is None:
            await listen()
        await readiness.refresh()
        if on_listening is not None:
            on_listening(options.host, bound)
        await stopping

    lifecycle = readiness.lifecycle
    log.info("shutting down: %d calls in flight, grace %.1f s", lifecycle.in_flight, options.grace_s)
    await health_servicer.enter_graceful_shutdown()
    if not await lifecycle.drain(options.grace_s):
        log.warning("%d calls still running after the grace period are cancelled", lifecycle.in_flight)
    await lifecycle.settle()
    # Stopping sends clients GOAWAY; calls that reach a handler meanwhile are
    # refused at once, so this takes milliseconds, not the second it allows.
    if server is not None:
        await server.stop(STOP_GRACE_S)
    shared_memory.close()  # every call has ended: the regions are unregistered
    loading.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loading
    await repository.close()
    if metrics is not None:
        from service.metrics import stop_metrics_server

        await stop_metrics_server(metrics)
    log.info("stopped")
    return 0
