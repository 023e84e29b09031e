"""Inference in domain terms: a request's tensors are checked against the
model, decoded, scheduled, and the outputs handed back with statistics kept.

The servicer turns protobuf into InferRequest and InferResponse into protobuf;
nothing here knows about gRPC.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import torch

from compiler.protocol import datatypes
from service import codec
from service.errors import InvalidInput
from service.repository import Repository


# Requests with more raw input bytes than this are decoded off the event loop.
OFFLOAD_BYTES = 1 << 20


@dataclass
class InputTensor:
    name: str
    datatype: str  # KServe name, as sent
    shape: tuple[int, ...]
    raw: bytes | None = None  # raw contents, or
    contents: object = None  # the values of the typed contents field


@dataclass
class InferRequest:
    model: str
    version: str = ""
    id: str = ""
    inputs: list[InputTensor] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # empty: all


@dataclass
class OutputTensor:
    name: str
    datatype: str
    tensor: torch.Tensor


@dataclass
class InferResponse:
    model: str
    version: str
    id: str
    outputs: list[OutputTensor]


class Inference:
    def __init__(self, repository: Repository):
        self.repository = repository

    async def infer(self, request: InferRequest) -> InferResponse:
        with self.repository.use(request.model, request.version) as served:
            start = time.perf_counter_ns()
            try:
                runtime = served.runtime
                if sum(len(t.raw or b"") for t in request.inputs) > OFFLOAD_BYTES:
                    # Copying large payloads would stall every other call on the event loop.
                    loop = asyncio.get_running_loop()
                    tensors, batch = await loop.run_in_executor(None, self._decode, runtime, request)
                else:
                    tensors, batch = self._decode(runtime, request)
                runtime.check_outputs(request.outputs)
                result = await served.scheduler.submit(tensors, batch)
            except BaseException:
                served.stats.record_failure(time.perf_counter_ns() - start)
                raise
            served.stats.record_success(batch, time.perf_counter_ns() - start, result.queue_ns, result.timings)
            wanted = request.outputs or [s.name for s in runtime.outputs]
            outputs = []
            for name in wanted:
                spec = runtime.outputs[runtime.output_index[name]]
                outputs.append(OutputTensor(name, spec.dtype.kserve, result.outputs[runtime.output_index[name]]))
            return InferResponse(request.model, served.version, request.id, outputs)

    @staticmethod
    def _decode(runtime, request: InferRequest) -> tuple[list[torch.Tensor], int]:
        by_name = {}
        for t in request.inputs:
            if t.name in by_name:
                raise InvalidInput(f"input '{t.name}' appears twice in the request")
            by_name[t.name] = t
        for t in request.inputs:
            if t.datatype not in datatypes.BY_KSERVE:
                raise InvalidInput(
                    f"input '{t.name}': datatype {t.datatype!r} is not supported "
                    f"(supported: {', '.join(datatypes.BY_KSERVE)})"
                )
        batch = runtime.check_inputs({t.name: (t.datatype, t.shape) for t in request.inputs})
        tensors = []
        for spec in runtime.inputs:
            t = by_name[spec.name]
            if t.raw is not None:
                tensors.append(codec.decode_raw(t.name, spec.dtype, t.shape, t.raw))
            else:
                tensors.append(codec.decode_contents(t.name, spec.dtype, t.shape, t.contents))
        return tensors, batch
