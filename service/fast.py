"""A model's fast mode: what config.pbtxt asks for, checked, and applied to
the module when it loads.

    optimization {
      graph { level: 1 }                      # fold batch norms into convolutions
      cuda { graphs: true                     # CUDA graphs at batch sizes 1, 8, 64;
             graph_spec { batch_size: 1 }     # a request is padded up to the next
             graph_spec { batch_size: 8 }     # (no graph_spec: 1, 2, 4, ... and
             graph_spec { batch_size: 64 } }  # max_batch_size)
      execution_accelerators {
        gpu_execution_accelerator { name: "torch_compile" parameters { key: "mode" value: "max-autotune-no-cudagraphs" } }
        cpu_execution_accelerator { name: "torch_compile" }   # or { name: "onnxruntime" }
      }
    }
    parameters { key: "memory_format" value { string_value: "channels_last" } }

(and the `precision` parameter, read in service/config.py). The fields are
Triton's: graph level 1 is ONNX Runtime's "basic" level, whose fusions
include a batch norm into its convolution; `cuda` is what Triton's TensorRT
backend reads; an execution accelerator is named with string parameters, as
ONNX Runtime's "tensorrt" and "openvino" are, and the parameters are those
of torch.compile that Triton's PyTorch backend takes in
TORCH_COMPILE_OPTIONAL_PARAMETERS. The cpu accelerator "onnxruntime" (no
parameters; Triton's ONNX Runtime backend is where the name comes from)
runs the model in ONNX Runtime (service/onnx_forward.py), which lays out
its own tensors: channels_last beside it applies on a GPU alone. As in
Triton, a gpu accelerator applies to a model on a GPU, a cpu one to a model
on the CPU; `cuda` and gpu accelerators on a CPU device are skipped with a
warning in the log, so one repository serves on both. Every value is checked on either device: a
wrong one fails the load of that model alone.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from compiler.protocol.generated import model_config_pb2
from service.errors import ConfigError, shown

GRAPH_LEVELS = {-1: "off", 0: "the default: off", 1: "fold batch norms into the convolutions before them"}
MEMORY_FORMATS = ("contiguous", "channels_last")
ACCELERATOR = "torch_compile"
ONNXRUNTIME = "onnxruntime"  # cpu only
ONNXRUNTIME_PACKAGES = ("onnxruntime", "onnx", "onnxscript")  # the session, and torch.onnx's exporter
CPU_ACCELERATORS = (ACCELERATOR, ONNXRUNTIME)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# Modes whose inductor settings capture CUDA graphs of their own, which
# cannot be captured again inside cuda { graphs: true }.
GRAPHING_MODES = ("reduce-overhead", "max-autotune")
COMPILE_PARAMETERS = ("mode", "backend", "fullgraph", "dynamic")


@dataclass(frozen=True)
class GraphSpec:
    batch_size: int
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)  # dims past the batch one


@dataclass(frozen=True)
class FastOptions:
    fold_batch_norm: bool = False
    channels_last: bool = False
    # torch.compile's keyword arguments per device type ("cuda", "cpu"); absent: not compiled.
    compile: dict[str, dict] = field(default_factory=dict)
    cuda_graphs: bool = False
    graph_specs: tuple[GraphSpec, ...] = ()  # empty with cuda_graphs: the default sizes
    onnxruntime: bool = False  # on the CPU, run in ONNX Runtime

    @property
    def any(self) -> bool:
        return (self.fold_batch_norm or self.channels_last or bool(self.compile) or self.cuda_graphs
                or self.onnxruntime)

    @property
    def cpu_accelerators(self) -> list[str]:
        """The cpu accelerators named, as config.pbtxt names them: a model on a GPU skips them."""
        return ["cpu_execution_accelerator " + name for name, named in
                ((ACCELERATOR, "cpu" in self.compile), (ONNXRUNTIME, self.onnxruntime)) if named]


def default_graph_sizes(max_batch_size: int) -> list[int]:
    """1, 2, 4, ... below max_batch_size, and max_batch_size."""
    sizes, s = [], 1
    while s < max_batch_size:
        sizes.append(s)
        s *= 2
    return sizes + [max_batch_size]


def fast_options_of(config: model_config_pb2.ModelConfig) -> FastOptions:
    """The fast mode a configuration asks for; ConfigError names a wrong value."""
    where = f"model '{config.name}': "
    opt = config.optimization
    level = opt.graph.level
    if level not in GRAPH_LEVELS:
        raise ConfigError(f"{where}optimization graph level is {level}; expected "
                          + ", ".join(f"{k} ({v})" for k, v in GRAPH_LEVELS.items()))
    memory_format = (config.parameters["memory_format"].string_value
                     if "memory_format" in config.parameters else "contiguous")
    if memory_format not in MEMORY_FORMATS:
        raise ConfigError(f"{where}parameter memory_format is '{shown(memory_format)}'; "
                          f"expected {' or '.join(MEMORY_FORMATS)}")
    compile_kwargs, onnxruntime = {}, False
    for device, accelerators in (("cuda", opt.execution_accelerators.gpu_execution_accelerator),
                                 ("cpu", opt.execution_accelerators.cpu_execution_accelerator)):
        kind = "gpu" if device == "cuda" else "cpu"
        known = CPU_ACCELERATORS if device == "cpu" else (ACCELERATOR,)
        for i, accelerator in enumerate(accelerators):
            prefix = f"{where}{kind}_execution_accelerator '{shown(accelerator.name)}'"
            if accelerator.name not in known:
                raise ConfigError(f"{prefix} is not known; netspec has " + " and ".join(f"'{n}'" for n in known))
            if i > 0:
                raise ConfigError(f"{where}{kind}_execution_accelerator lists '{shown(accelerators[0].name)}' and "
                                  f"'{shown(accelerator.name)}'; a model runs with one")
            if accelerator.name == ONNXRUNTIME:
                onnxruntime = True
                _check_onnxruntime(dict(accelerator.parameters), f"{prefix}: ")
            else:
                compile_kwargs[device] = _compile_kwargs(dict(accelerator.parameters), f"{prefix}: ")
    cuda = opt.cuda
    if cuda.graph_spec and not cuda.graphs:
        raise ConfigError(f"{where}optimization cuda has graph_spec but not graphs: true")
    if cuda.graphs:
        mode = compile_kwargs.get("cuda", {}).get("mode")
        if mode in GRAPHING_MODES:
            raise ConfigError(f"{where}torch_compile mode '{mode}' captures CUDA graphs of its own; with cuda "
                              "{ graphs: true } use mode 'default' or 'max-autotune-no-cudagraphs'")
        if config.max_batch_size <= 0:
            raise ConfigError(f"{where}cuda graphs need a batching model (max_batch_size above 0): "
                              "a request is padded up to a captured batch size")
    specs = []
    for spec in cuda.graph_spec:
        if not 1 <= spec.batch_size <= config.max_batch_size:
            raise ConfigError(f"{where}cuda graph_spec batch_size is {spec.batch_size}; expected 1 to "
                              f"max_batch_size {config.max_batch_size}")
        if any(s.batch_size == spec.batch_size for s in specs):
            raise ConfigError(f"{where}cuda graph_spec batch_size {spec.batch_size} is given twice")
        specs.append(GraphSpec(spec.batch_size, {name: tuple(shape.dim) for name, shape in spec.input.items()}))
    return FastOptions(fold_batch_norm=level == 1, channels_last=memory_format == "channels_last",
                       compile=compile_kwargs, cuda_graphs=cuda.graphs, graph_specs=tuple(specs),
                       onnxruntime=onnxruntime)


def _check_onnxruntime(parameters: dict[str, str], where: str) -> None:
    if parameters:
        raise ConfigError(f"{where}parameter '{shown(next(iter(parameters)))}' is not known; it takes none "
                          "(its threads are the server's --intra-op-threads)")
    missing = [p for p in ONNXRUNTIME_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise ConfigError(f"{where}needs the {' and '.join(missing)} package{'s' if len(missing) > 1 else ''}: "
                          "pip install 'netspec[onnx]'")


def _compile_kwargs(parameters: dict[str, str], where: str) -> dict:
    kwargs = {}
    for key, value in parameters.items():
        if key not in COMPILE_PARAMETERS:
            raise ConfigError(f"{where}parameter '{shown(key)}' is not known; expected {', '.join(COMPILE_PARAMETERS)}")
        if key == "mode":
            if value not in COMPILE_MODES:
                raise ConfigError(f"{where}mode is '{shown(value)}'; expected one of {', '.join(COMPILE_MODES)}")
            kwargs[key] = value
        elif key == "backend":
            import torch._dynamo  # the backends torch.compile knows; torch.compile loads this anyway

            known = torch._dynamo.list_backends(exclude_tags=())
            if value not in known:
                raise ConfigError(f"{where}backend is '{shown(value)}'; expected one of {', '.join(known)}")
            kwargs[key] = value
        else:  # fullgraph, dynamic
            if value not in ("true", "false"):
                raise ConfigError(f"{where}{key} is '{shown(value)}'; expected true or false")
            kwargs[key] = value == "true"
    return kwargs
