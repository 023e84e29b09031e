"""Inference in domain terms: a request's tensors are checked against the
model, decoded, scheduled, and the outputs handed back with statistics kept.

The servicer turns protobuf into InferRequest and InferResponse into protobuf;
nothing here knows about gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import torch

from compiler.protocol import datatypes
from service import codec
from service.errors import InvalidInput, ResourceExhausted, shown
from service.options import MAX_MESSAGE_BYTES
from service.repository import Repository
from service.shared_memory import Placement, SharedMemory


# Requests with more input bytes than this are decoded off the event loop,
# raw or typed: a typed tensor of 13 MB takes about a second to decode.
OFFLOAD_BYTES = 1 << 20


@dataclass
class InputTensor:
    name: str
    datatype: str  # KServe name, as sent
    shape: tuple[int, ...]
    raw: bytes | None = None  # raw contents, or
    contents: object = None  # the values of the typed contents field, or
    placement: Placement | None = None  # where it lies in system shared memory

    @property
    def size(self) -> int:
        """Bytes of data sent, about (typed values counted at 8 bytes each)."""
        if self.placement is not None:
            return self.placement.byte_size
        return len(self.raw) if self.raw is not None else 8 * len(self.contents or ())


@dataclass
class InferRequest:
    model: str
    version: str = ""
    id: str = ""
    inputs: list[InputTensor] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # empty: all
    # Outputs to be written into system shared memory rather than answered.
    output_placements: dict[str, Placement] = field(default_factory=dict)

    def regions(self) -> set[str]:
        placed = [t.placement for t in self.inputs if t.placement is not None]
        return {p.region for p in placed + list(self.output_placements.values())}


@dataclass
class OutputTensor:
    name: str
    datatype: str
    tensor: torch.Tensor
    in_shared_memory: bool = False  # written into the region the request named; the response carries no data


@dataclass
class InferResponse:
    model: str
    version: str
    id: str
    outputs: list[OutputTensor]


class Inference:
    def __init__(self, repository: Repository, max_response_bytes: int = MAX_MESSAGE_BYTES,
                 shared_memory: SharedMemory | None = None):
        self.repository = repository
        self.max_response_bytes = max_response_bytes
        self.shared_memory = shared_memory or SharedMemory(enabled=False)

    async def infer(self, request: InferRequest) -> InferResponse:
        names = request.regions()
        with self.repository.use(request.model, request.version) as served, \
                (self.shared_memory.hold(names) if names else _NO_REGIONS) as regions:
            start = time.perf_counter_ns()
            reason = "OTHER"  # why it failed, in Triton's terms (service/stats.py)
            try:
                runtime = served.runtime
                _check_placements(request, regions)
                if sum(t.size for t in request.inputs) > OFFLOAD_BYTES:
                    # Copying large payloads would stall every other call on the event loop.
                    loop = asyncio.get_running_loop()
                    tensors, batch = await loop.run_in_executor(None, self._decode, runtime, request, regions)
                else:
                    tensors, batch = self._decode(runtime, request, regions)
                runtime.check_outputs(request.outputs)
                reason = "BACKEND"
                result = await served.scheduler.submit(tensors, batch)
                reason = "OTHER"
                outputs = self._outputs(runtime, request, result.outputs)
                placed = [o for o in outputs if o.in_shared_memory]
                if sum(o.tensor.nbytes for o in placed) > OFFLOAD_BYTES:
                    await asyncio.get_running_loop().run_in_executor(None, _write_outputs, request, regions, placed)
                else:
                    _write_outputs(request, regions, placed)
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    reason = "CANCELED"
                served.stats.record_failure(time.perf_counter_ns() - start, reason)
                raise
            served.stats.record_success(batch, time.perf_counter_ns() - start, result.queue_ns, result.timings)
            return InferResponse(request.model, served.version, request.id, outputs)

    def _outputs(self, runtime, request: InferRequest, tensors: list[torch.Tensor]) -> list[OutputTensor]:
        """The outputs asked for (all when none is named), in the response's limit."""
        outputs = []
        for name in request.outputs or [s.name for s in runtime.outputs]:
            k = runtime.output_index[name]
            outputs.append(OutputTensor(name, runtime.outputs[k].dtype.kserve, tensors[k],
                                        in_shared_memory=name in request.output_placements))
        size = sum(o.tensor.nbytes for o in outputs if not o.in_shared_memory)
        if size > self.max_response_bytes:
            raise ResourceExhausted(
                f"the response would hold {size:,} bytes of outputs, more than this server sends in one message "
                f"({self.max_response_bytes:,}, --max-message-bytes): request fewer samples or outputs")
        return outputs

    @staticmethod
    def _decode(runtime, request: InferRequest, regions: dict) -> tuple[list[torch.Tensor], int]:
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
            if t.placement is not None:
                tensors.append(_read_input(spec, t, regions[t.placement.region]))
            elif t.raw is not None:
                tensors.append(codec.decode_raw(spec.name, spec.dtype, t.shape, t.raw))
            else:
                tensors.append(codec.decode_contents(spec.name, spec.dtype, t.shape, t.contents))
        runtime.check_values(tensors)
        return tensors, batch


# --- system shared memory ---------------------------------------------------------

_NO_REGIONS = contextlib.nullcontext({})  # what a request without shared memory holds


def _check_placements(request: InferRequest, regions: dict) -> None:
    """Every placement inside its region, before anything is read or run."""
    for t in request.inputs:
        if t.placement is not None:
            regions[t.placement.region].check(t.placement, f"input '{shown(t.name)}'")
    for name, placement in request.output_placements.items():
        regions[placement.region].check(placement, f"output '{shown(name)}'")


def _read_input(spec, t: InputTensor, region) -> torch.Tensor:
    """The input read from its region straight into the tensor's memory: one copy."""
    expected = codec.byte_size(spec.dtype, t.shape)
    if t.placement.byte_size != expected:
        raise InvalidInput(
            f"input '{spec.name}': shared_memory_byte_size is {t.placement.byte_size}, but shape {list(t.shape)} "
            f"of {spec.dtype.kserve} needs {expected} bytes")
    tensor = torch.empty(t.shape, dtype=spec.dtype.torch)
    if expected:
        # view(uint8) gives every dtype (bf16, bool) a byte view numpy can lend.
        region.read_into(t.placement.offset, memoryview(tensor.view(-1).view(torch.uint8).numpy()),
                         f"input '{spec.name}'")
    return tensor


def _write_outputs(request: InferRequest, regions: dict, outputs: list[OutputTensor]) -> None:
    for out in outputs:
        placement = request.output_placements[out.name]
        flat = out.tensor.detach().cpu().contiguous().reshape(-1)
        what = f"output '{out.name}'"
        if flat.nbytes > placement.byte_size:
            raise InvalidInput(f"{what} holds {flat.nbytes} bytes, more than the {placement.byte_size} of "
                               "shared memory the request gives it (shared_memory_byte_size)")
        if flat.nbytes:
            regions[placement.region].write(placement.offset, memoryview(flat.view(torch.uint8).numpy()), what)
