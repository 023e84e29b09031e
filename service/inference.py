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
from service.errors import InvalidInput, ResourceExhausted, shown
from service.options import MAX_MESSAGE_BYTES
from service.repository import Repository


# Requests with more input bytes than this are decoded off the event loop,
# raw or typed: a typed tensor of 13 MB takes about a second to decode.
OFFLOAD_BYTES = 1 << 20


@dataclass
class InputTensor:
    name: str
    datatype: str  # KServe name, as sent
    shape: tuple[int, ...]
    raw: bytes | None = None  # raw contents, or
    contents: object = None  # the values of the typed contents field

    @property
    def size(self) -> int:
        """Bytes of data sent, about (typed values counted at 8 bytes each)."""
        return len(self.raw) if self.raw is not None else 8 * len(self.contents or ())


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
    def __init__(self, repository: Repository, max_response_bytes: int = MAX_MESSAGE_BYTES):
        self.repository = repository
        self.max_response_bytes = max_response_bytes

    async def infer(self, request: InferRequest) -> InferResponse:
        with self.repository.use(request.model, request.version) as served:
            start = time.perf_counter_ns()
            reason = "OTHER"  # why it failed, in Triton's terms (service/stats.py)
            try:
                runtime = served.runtime
                if sum(t.size for t in request.inputs) > OFFLOAD_BYTES:
                    # Copying large payloads would stall every other call on the event loop.
                    loop = asyncio.get_running_loop()
                    tensors, batch = await loop.run_in_executor(None, self._decode, runtime, request)
                else:
                    tensors, batch = self._decode(runtime, request)
                runtime.check_outputs(request.outputs)
                reason = "BACKEND"
                result = await served.scheduler.submit(tensors, batch)
                reason = "OTHER"
                outputs = self._outputs(runtime, request.outputs, result.outputs)
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    reason = "CANCELED"
                served.stats.record_failure(time.perf_counter_ns() - start, reason)
                raise
            served.stats.record_success(batch, time.perf_counter_ns() - start, result.queue_ns, result.timings)
            return InferResponse(request.model, served.version, request.id, outputs)

    def _outputs(self, runtime, names: list[str], tensors: list[torch.Tensor]) -> list[OutputTensor]:
        """The outputs asked for (all when none is named), in the response's limit."""
        outputs = []
        for name in names or [s.name for s in runtime.outputs]:
            k = runtime.output_index[name]
            outputs.append(OutputTensor(name, runtime.outputs[k].dtype.kserve, tensors[k]))
        size = sum(o.tensor.nbytes for o in outputs)
        if size > self.max_response_bytes:
            raise ResourceExhausted(
                f"the response would hold {size:,} bytes of outputs, more than this server sends in one message "
                f"({self.max_response_bytes:,}, --max-message-bytes): request fewer samples or outputs")
        return outputs

    @staticmethod
    def _decode(runtime, request: InferRequest) -> tuple[list[torch.Tensor], int]:
        by_name = {}
        for t in request.inputs:
            if t.name in by_name:
                raise InvalidInput(f"input '{shown(t.name)}' appears twice in the request")
            by_name[t.name] = t
        for t in request.inputs:
            if t.datatype not in datatypes.BY_KSERVE:
                raise InvalidInput(
                    f"input '{shown(t.name)}': datatype '{shown(t.datatype)}' is not supported "
                    f"(supported: {', '.join(datatypes.BY_KSERVE)})"
                )
        batch = runtime.check_inputs({t.name: (t.datatype, t.shape) for t in request.inputs})
        tensors = []
        for spec in runtime.inputs:
            t = by_name[spec.name]
            if t.raw is not None:
                tensors.append(codec.decode_raw(spec.name, spec.dtype, t.shape, t.raw))
            else:
                tensors.append(codec.decode_contents(spec.name, spec.dtype, t.shape, t.contents))
        runtime.check_values(tensors)
        return tensors, batch
