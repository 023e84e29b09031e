"""`cpu_execution_accelerator { name: "onnxruntime" }`: a model on the CPU
runs in ONNX Runtime, from the ONNX program `netspec export --format onnx`
writes (compiler/tools/export/format_onnx.py), made when the model loads.

Why: torch releases the GIL inside each operation and takes it back after,
so on a server whose event loop holds the GIL most of the time, every one
of a forward's operations waits for it. ONNX Runtime's run releases the GIL
once for the whole graph. lenet at batch 4, one thread, beside a Python
thread that never sleeps: 69 ms a forward in torch, 5.6 ms in ONNX Runtime
(0.40 and 0.11 ms with nothing beside it; bench/gil_contention.py);
docs/serving.md has the served figures.

The program is exported in fp32 from the module as loaded (its batch norms
folded when the graph level asks), every symbolic dimension dynamic. The
session runs on the threads torch was given (`--intra-op-threads`, or the
cores a `--workers` process has), and they sleep between runs rather than
spin, leaving the cores to gRPC and the event loop.
"""

from __future__ import annotations

import numpy as np
import torch

from service.errors import ConfigError
from service.fast import ONNXRUNTIME

class OnnxForward:
    """Called as the module is, with CPU tensors; returns its outputs as CPU tensors."""

    def __init__(self, model, module: torch.nn.Module, name: str):
        import onnxruntime

        from compiler.tools.export.common import ExportError
        from compiler.tools.export.format_onnx import program

        try:
            proto = program(model, module).model_proto
        except ExportError as e:
            raise ConfigError(f"model '{name}': cpu_execution_accelerator '{ONNXRUNTIME}': {e.message}"
                              + (f" ({e.hint})" if e.hint else "")) from e
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(proto.SerializeToString(), options,
                                                    providers=["CPUExecutionProvider"])
        taken = {i.name for i in self.session.get_inputs()}  # an input the graph never reads is not one
        self.input_names = [n if n in taken else None for n in model.inputs]
        self.output_names = list(model.outputs)

    def __call__(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feeds = {name: np.ascontiguousarray(x.numpy()) for name, x in zip(self.input_names, args) if name}
        return tuple(torch.from_numpy(y) for y in self.session.run(self.output_names, feeds))
