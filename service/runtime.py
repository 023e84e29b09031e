"""Running one loaded model: device and precision placement, its fast mode
(service/fast.py), input checks, and execution of a batch. Runs in the
model's worker thread, or on the event loop for executions measured tiny
(service/batching.py).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch

from compiler import api
from compiler.protocol import datatypes
from compiler.protocol.datatypes import DataType
from service.cuda_graphs import Capture, PaddedGraphs, cuda_capture
from service.errors import ConfigError, InvalidInput, shown
from service.fast import FastOptions, default_graph_sizes

log = logging.getLogger("netspec.serve")

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
    # (dimension, symbol, largest size, the node that limits it) for symbolic
    # dims the model bounds: a sequence no longer than its position table.
    limits: tuple[tuple[int, str, int, str], ...] = ()
    # (dimension, symbol, k, where the model needs it) for symbolic dims the
    # model divides: an image height that five stride-2 stages make H/32.
    multiples: tuple[tuple[int, str, int, str], ...] = ()

    @classmethod
    def from_info(cls, name: str, info, bounds: dict | None = None, multiples: dict | None = None) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else -1 for d in info.shape)
        batched = bool(info.shape) and info.shape[0] == "N"
        bounds, multiples = bounds or {}, multiples or {}
        limits = tuple((k, d, bounds[d].size, bounds[d].node) for k, d in enumerate(info.shape) if d in bounds)
        steps = tuple((k, d, multiples[d].of, f"the size is {multiples[d].size} at its node '{multiples[d].node}'")
                      for k, d in enumerate(info.shape) if d in multiples)
        return cls(name, datatypes.from_name(info.dtype), shape, batched, limits, steps)

    def check_shape(self, shape: tuple[int, ...]) -> None:
        ok = len(shape) == len(self.shape) and all(e in (-1, g) for e, g in zip(self.shape, shape))
        if not ok or any(d < 0 for d in shape):
            raise InvalidInput(f"input '{self.name}': expected shape {list(self.shape)}, got {_shape(shape)}")
        if math.prod(max(d, 1) for d in shape) > MAX_ELEMENTS:
            raise InvalidInput(f"input '{self.name}': shape {list(shape)} has more than {MAX_ELEMENTS:,} elements")
        for k, symbol, largest, node in self.limits:
            if shape[k] > largest:
                raise InvalidInput(f"input '{self.name}': dimension {k} ({symbol}) is {shape[k]}, but the model "
                                   f"serves {symbol} up to {largest} (set by its node '{node}')")
        for k, symbol, of, where in self.multiples:
            if shape[k] % of or shape[k] == 0:
                raise InvalidInput(f"input '{self.name}': dimension {k} ({symbol}) is {shape[k]}, but the model "
                                   f"needs {symbol} to be a positive multiple of {of} ({where})")


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

    def __init__(self, model, *, device: torch.device, precision: str = "fp32", max_batch_size: int = 0,
                 fast: FastOptions = FastOptions(), capture: Capture | None = None, name: str | None = None):
        """`fast`: the model's fast mode. `capture`: how CUDA graphs are
        captured; None is torch.cuda's, on a CUDA device only (a test gives
        one that runs on the CPU). `name`: the one it is served under
        (default: the spec's)."""
        self.name = name or model.name
        self.device = device
        self._on_cpu = device.type == "cpu"
        self.precision = precision
        self.max_batch_size = max_batch_size
        bounds = api.dim_bounds(model.graph)  # a sequence no longer than the model's position table
        steps = api.dim_multiples(model.graph)  # an image size the model's strides divide
        self.inputs = [TensorSpec.from_info(n, i, bounds, steps) for n, i in model.inputs.items()]
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
        # ONNX Runtime lays out its own tensors: a CPU model run there keeps torch's layout
        self._onnxruntime = fast.onnxruntime and device.type == "cpu"
        self._channels_last = fast.channels_last and not self._onnxruntime
        module = model.module
        if fast.fold_batch_norm:  # in fp32, before any cast
            log.info("model '%s': %d batch norms folded into convolutions", self.name, api.fold_batch_norm(module))
        module = module.to(device)
        if precision != "fp32":
            module = module.to(dtype=self._compute_dtype)  # converts floating parameters only
        if self._channels_last:
            module = module.to(memory_format=torch.channels_last)  # 4-d weights only
        self.module = module.eval()
        self.forward = self.module  # what runs a batch: the module, or its torch.compile
        self.graphs: PaddedGraphs | None = None
        self._compile_and_capture(model, fast, capture)

    def _compile_and_capture(self, model, fast: FastOptions, capture: Capture | None) -> None:
        """torch.compile for this device type (or, on the CPU, an ONNX
        Runtime session exported from the model), then the CUDA graphs
        (which run the compiled module once per size before capturing it);
        what is for CUDA alone is skipped on another device, with a warning."""
        graph_dims = self._graph_dims(fast, self.max_batch_size) if fast.cuda_graphs else {}  # checked on any device
        on_cuda = self.device.type == "cuda"
        skipped = []
        if "cuda" in fast.compile and not on_cuda:
            skipped.append("gpu_execution_accelerator torch_compile")
        compile_kwargs = fast.compile.get(self.device.type)
        if compile_kwargs is not None:
            self.forward = torch.compile(self.module, **compile_kwargs)
        if self._onnxruntime:
            from service.onnx_forward import OnnxForward

            self.forward = OnnxForward(model, self.module, self.name)
            self.module = None  # the session holds the weights it runs: torch's copy goes
            log.info("model '%s' runs in ONNX Runtime (cpu_execution_accelerator onnxruntime)%s", self.name,
                     "; memory_format channels_last is for torch's kernels, not applied" if fast.channels_last else "")
        if graph_dims and (on_cuda or capture is not None):
            self.graphs = PaddedGraphs(self.forward, sorted(graph_dims),
                                       lambda n: self._static_inputs(n, graph_dims[n]), capture or cuda_capture())
        elif graph_dims:
            skipped.append("cuda graphs")
        if compile_kwargs is not None and self.graphs is None:
            self._warm_up()
        if skipped:
            log.warning("model '%s' runs on %s: %s %s for CUDA devices, not applied", self.name, self.device,
                        " and ".join(skipped), "are" if len(skipped) > 1 else "is")
        if on_cuda and fast.cpu_accelerators:  # expected where one configuration serves on both
            log.info("model '%s' runs on %s: %s for the CPU, not applied", self.name, self.device,
                     " and ".join(fast.cpu_accelerators))

    def _graph_dims(self, fast: FastOptions, max_batch_size: int) -> dict[int, list[tuple[int, ...]]]:
        """{batch size: each input's dims past the batch one} of the graphs to capture."""
        if not self.batchable:
            raise ConfigError(f"model '{self.name}': cuda graphs need every input and output to lead with "
                              "the batch dimension N")
        specs = {s.batch_size: s.inputs for s in fast.graph_specs} or \
            {n: {} for n in default_graph_sizes(max_batch_size)}
        dims = {}
        for size, given in specs.items():
            where = f"model '{self.name}': cuda graph_spec batch_size {size}"
            unknown = [k for k in given if k not in self.input_index]
            if unknown:
                raise ConfigError(f"{where}: input '{shown(unknown[0])}' is not an input of the model "
                                  f"(its inputs: {', '.join(s.name for s in self.inputs)})")
            dims[size] = []
            for spec in self.inputs:
                declared = spec.shape[1:]
                shape = given.get(spec.name, declared)
                fits = len(shape) == len(declared) and all(d in (-1, g) and g > 0 for d, g in zip(declared, shape))
                if not fits:
                    raise ConfigError(f"{where}: input '{spec.name}' has dims {list(declared)} past the batch one; "
                                      + (f"graph_spec input gives {list(shape)}" if spec.name in given else
                                         "give the variable ones in graph_spec input"))
                dims[size].append(tuple(shape))
        return dims

    def _static_inputs(self, batch_size: int, dims: list[tuple[int, ...]]) -> list[torch.Tensor]:
        """Zeroed inputs of a batch of `batch_size`, as run() hands them to the module."""
        tensors = []
        for spec, shape in zip(self.inputs, dims):
            dtype = self._compute_dtype if spec.dtype.torch.is_floating_point else spec.dtype.torch
            x = torch.zeros((batch_size, *shape), dtype=dtype, device=self.device)
            tensors.append(self._laid_out(x))
        return tensors

    def _returned(self, y: torch.Tensor, spec: TensorSpec) -> torch.Tensor:
        """An output as the response carries it: on the CPU, in its declared
        dtype. A conversion with nothing to do is not made: on a small model
        a request's no-op .to() calls were a measurable share of its time."""
        if not self._on_cpu:
            y = y.to("cpu")
        return y if y.dtype is spec.dtype.torch else y.to(spec.dtype.torch)

    def _laid_out(self, x: torch.Tensor) -> torch.Tensor:
        if self._channels_last and x.dim() == 4 and x.is_floating_point():
            return x.contiguous(memory_format=torch.channels_last)
        return x

    @torch.inference_mode()
    def _warm_up(self) -> None:
        """Run torch.compile's compilation now, on a batch of 1, rather than
        in the first request (when the inputs' shapes are known)."""
        dims = [s.shape[1:] if s.batched else s.shape for s in self.inputs]
        if any(-1 in d for d in dims):
            log.info("model '%s': inputs of variable shape; torch.compile compiles on the first request", self.name)
            return
        args = [x[0] if not s.batched else x for x, s in zip(self._static_inputs(1, dims), self.inputs)]
        self.forward(*args)

    def release(self) -> None:
        """Drop the module and what was made of it: the weights go with the last reference."""
        self.module = self.forward = self.graphs = None

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

    def execute(self, args: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The module's outputs for inputs already on the device, in the
        compute dtype and memory format: through a CUDA graph where one
        holds the batch, else the (compiled) module."""
        result = self.graphs.run(args) if self.graphs is not None else None
        if result is None:
            result = self.forward(*args)
        return (result,) if isinstance(result, torch.Tensor) else tuple(result)

    @torch.inference_mode()
    def run(self, inputs: list[torch.Tensor]) -> tuple[list[torch.Tensor], Timings]:
        """Run one batch. `inputs` are CPU tensors in model input order; returns
        CPU tensors in model output order, in their declared dtypes."""
        t0 = time.perf_counter_ns()
        args = []
        for x in inputs:
            if not self._on_cpu:
                x = x.to(self.device, non_blocking=True)
            if x.is_floating_point() and x.dtype is not self._compute_dtype:
                x = x.to(self._compute_dtype)
            args.append(self._laid_out(x))
        t1 = time.perf_counter_ns()
        result = self.execute(args)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t2 = time.perf_counter_ns()
        outputs = [self._returned(y, spec) for y, spec in zip(result, self.outputs)]
        t3 = time.perf_counter_ns()
        return outputs, Timings(t1 - t0, t2 - t1, t3 - t2)
