"""Readiness as Triton defines it, for ServerReady, ModelReady and the
standard health service (grpc.health.v1).

With strict readiness (the default, as Triton's --strict-readiness=true)
the server is ready once the models it was asked to load at start have
loaded and while every model asked for since (RepositoryModelLoad) is READY;
without it, as soon as it listens. From the start of shutdown it is never
ready. Health says SERVING exactly when ServerReady says true.
"""

from __future__ import annotations

from grpc_health.v1 import health_pb2

from service.generated import grpc_service_pb2 as pb
from service.lifecycle import Lifecycle
from service.repository import Repository, State

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name


class Readiness:
    def __init__(self, repository: Repository, lifecycle: Lifecycle, health=None, *, strict: bool = True):
        self.repository = repository
        self.lifecycle = lifecycle
        self.health = health  # a grpc_health aio HealthServicer, or None
        self.strict = strict
        self.listening = False  # set once the server accepts calls
        self.started = False  # set once the models asked for at start have loaded or failed

    def server_ready(self) -> bool:
        if not self.listening or self.lifecycle.stopping.is_set():
            return False
        return not self.strict or (self.started and self.repository.all_wanted_ready())

    def model_ready(self, name: str, version: str = "") -> bool:
        entry = self.repository.entries.get(name)
        if self.lifecycle.stopping.is_set() or entry is None or entry.state is not State.READY:
            return False
        return not version or version in entry.versions

    async def refresh(self) -> None:
        """Health follows ServerReady (a no-op once health entered shutdown)."""
        if self.health is None:
            return
        status = health_pb2.HealthCheckResponse.SERVING if self.server_ready() \
            else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)
