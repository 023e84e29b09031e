"""The settings of a `netspec serve` process, with their defaults in one place:
the command line, serve() and the docs all read them from here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONTROL_MODES = ("none", "explicit")

# 256 MiB: a batch of 64 fp32 images of 3x512x512 (201 MB) fits, while 32
# calls in flight at the limit stay within a few GB. Triton allows 2 GiB - 1
# (the most gRPC can carry), which lets each call hold that much memory.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
GRPC_MAX_MESSAGE_BYTES = 2**31 - 1


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8001
    device: str = "auto"
    models: list[str] | None = None  # None: every model of the repository
    grace_s: float = 30.0  # at shutdown, how long accepted calls may take to finish
    strict_readiness: bool = True  # ready only when every model asked for is
    model_control_mode: str = "none"  # "explicit": load and unload over the protocol
    # A model's load runs in its own thread and fails past this: the zoo's
    # largest model loads in about 5 s on 2 CPU cores.
    model_load_timeout_s: float = 120.0
    model_load_threads: int = 4  # models loading at once, as Triton's --model-load-thread-count
    max_message_bytes: int = MAX_MESSAGE_BYTES  # requests and responses
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set: clients must present a certificate it signed
    auth_tokens: tuple[str, ...] = ()  # empty: no authentication
    # Triton's --allow-client-shm, off by default as in Triton: a client that
    # may register regions makes the server read and write /dev/shm objects.
    allow_client_shm: bool = False
    metrics_port: int = 8002  # Prometheus /metrics over HTTP, as Triton's; 0: off
    metrics_host: str | None = None  # None: the gRPC host
    workers: int = 1  # server processes sharing the port (service/workers.py)
    # Set in each process of a --workers group: its gRPC server binds the
    # port with SO_REUSEPORT, and only once its models have loaded.
    shared_port: bool = False
    intra_op_threads: int | None = None  # torch's threads per operation; None: torch's default (the cores)
