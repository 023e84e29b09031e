"""Running one loaded model: device and precision placement, input checks,
and execution of a batch. Runs in the model's worker thread, or on the event
loop for executions measured tiny (service/batching.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from compiler import api
from compiler.protocol import datatypes
from compiler.protocol.datatypes import DataType
from service.errors import InvalidInput, shown

# No message gRPC can carry (2 GiB - 1) holds more elements; a shape past
# this, a 0 dimension counted as 1, would overflow torch's strides.
MAX_ELEMENTS = 2**31 - 1

_PRECISION_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as the protocol sees it."""

    name: str
    dtype: DataType
    shape: tuple[int, ...]  # -1 for every symbolic dimension, the batch one included
    batched: bool  # dimension 0 is the batch dimension ("N")

    @classmethod
    def from_info(cls, name: str, info) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else -1 for d in info.shape)
        batched = bool(info.shape) and info.shape[0] == "N"
        return cls(name, datatypes.from_name(info.dtype), shape, batched)

    def check_shape(self, shape: tuple[int, ...]) -> None:
        ok = len(shape) == len(self.shape) and all(e in (-1, g) for e, g in zip(self.shape, shape))
        if not ok or any(d < 0 for d in shape):
            raise InvalidInput(f"input '{self.name}': expected shape {list(self.shape)}, got {_shape(shape)}")
        if math.prod(max(d, 1) for d in shape) > MAX_ELEMENTS:
            raise InvalidInput(f"input '{self.name}': shape {list(shape)} has more than {MAX_ELEMENTS:,} elements")


def _shape(shape: tuple[int, ...]) -> str:
    """A client's shape as messages quote it: the first dimensions of a long one."""
    return str(list(shape)) if len(shape) <= 8 else f"[{', '.join(map(str, shape[:8]))}, ...] ({len(shape)} dimensions)"


@dataclass
class Timings:
    """Nanoseconds spent in one execution."""

    compute_input: int = 0
    compute_infer: int = 0
    compute_output: int = 0


def resolve_device(device: str) -> torch.device:
    """`auto` is CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


class Runtime:
    """A compiled model placed on a device in a precision, ready to run batches."""

    def __init__(self, model, *, device: torch.device, precision: str = "fp32", max_batch_size: int = 0):
        self.name = model.name
        self.device = device
        self.precision = precision
        self.max_batch_size = max_batch_size
        self.inputs = [TensorSpec.from_info(n, i) for n, i in model.inputs.items()]
        self.outputs = [TensorSpec.from_info(n, i) for n, i in model.outputs.items()]
        self.input_index = {s.name: k for k, s in enumerate(self.inputs)}
        self.output_index = {s.name: k for k, s in enumerate(self.outputs)}
        # An id past an embedding's vocabulary would fail the whole batch it
        # joins: each request's ids are checked before it is batched.
        self.vocabularies = [(k, n) for name, n in api.vocabularies(model.graph).items()
                             for k in [self.input_index[name]]]
        # Batching needs every input and output to carry the batch dimension.
        self.batchable = max_batch_size > 0 and all(s.batched for s in self.inputs + self.outputs)
        self._compute_dtype = _PRECISION_DTYPES[precision]
        module = model.module.to(device)
        if precision != "fp32":
            module = module.to(dtype=self._compute_dtype)  # converts floating parameters only
        self.module = module.eval()

    def check_inputs(self, inputs: dict[str, tuple[str, tuple[int, ...]]]) -> int:
        """Check request inputs {name: (kserve datatype, shape)} against the model;
        return the request's batch size (1 for an unbatched model).

        Raises InvalidInput naming the input, the expected and received values.
        """
        for name in inputs:
            if name not in self.input_index:
                raise InvalidInput(
                    f"input '{shown(name)}' is not an input of model '{self.name}' "
                    f"(its inputs: {', '.join(s.name for s in self.inputs)})"
                )
        batch = None
        for spec in self.inputs:
            if spec.name not in inputs:
                raise InvalidInput(f"model '{self.name}' needs input '{spec.name}', which the request does not have")
            datatype, shape = inputs[spec.name]
            if datatype != spec.dtype.kserve:
                raise InvalidInput(f"input '{spec.name}': expected datatype {spec.dtype.kserve}, got {shown(datatype)}")
            spec.check_shape(shape)
            if spec.batched:
                if batch is not None and shape[0] != batch:
                    raise InvalidInput(
                        f"input '{spec.name}': batch size {shape[0]} differs from the other inputs' {batch}"
                    )
                batch = shape[0]
        batch = 1 if batch is None else batch
        if batch == 0:
            raise InvalidInput("batch size 0: a request carries at least one sample")
        if self.max_batch_size > 0 and batch > self.max_batch_size:
            raise InvalidInput(f"batch size {batch} exceeds model '{self.name}' max_batch_size {self.max_batch_size}")
        return batch

    def check_values(self, tensors: list[torch.Tensor]) -> None:
        """Token ids within the vocabulary of the embedding that reads them."""
        for k, size in self.vocabularies:
            x = tensors[k]
            if x.numel() == 0:
                continue
            low, high = torch.aminmax(x)
            if low < 0 or high >= size:
                bad = int(low) if low < 0 else int(high)
                raise InvalidInput(f"input '{self.inputs[k].name}': id {bad} is out of range: "
                                   f"the model's vocabulary has ids 0 to {size - 1}")

    def check_outputs(self, names: list[str]) -> None:
        for name in names:
            if name not in self.output_index:
                raise InvalidInput(
                    f"requested output '{shown(name)}' is not an output of model '{self.name}' "
                    f"(its outputs: {', '.join(s.name for s in self.outputs)})"
                )

    @torch.inference_mode()
    def run(self, inputs: list[torch.Tensor]) -> tuple[list[torch.Tensor], Timings]:
        """Run one batch. `inputs` are CPU tensors in model input order; returns
        CPU tensors in model output order, in their declared dtypes."""
        t0 = time.perf_counter_ns()
        args = []
        for x in inputs:
            x = x.to(self.device, non_blocking=True)
            if x.is_floating_point():
                x = x.to(self._compute_dtype)
            args.append(x)
        t1 = time.perf_counter_ns()
        result = self.module(*args)
        if isinstance(result, torch.Tensor):
            result = (result,)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t2 = time.perf_counter_ns()
        outputs = [y.to("cpu").to(spec.dtype.torch) for y, spec in zip(result, self.outputs)]
        t3 = time.perf_counter_ns()
        return outputs, Timings(t1 - t0, t2 - t1, t3 - t2)
