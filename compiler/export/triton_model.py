"""A network compiled by netspec, served by Triton's Python backend.

`netspec export --format triton-python` copies this file, as it is, to
NAME/K/model.py, beside network.py (the standalone PyTorch module netspec
generates: it needs only torch, and safetensors to read the weights) and
weights.safetensors. Nothing is unpickled: the weights are tensors only.

The model reads what it needs from config.pbtxt: the inputs and outputs with
their types, and the parameter "python_site", folders (separated by ':')
added to the import path before torch is imported, for hosts whose Python
backend interpreter has no torch of its own. Requests that Triton's dynamic
batcher hands over together run as one batch. Tensors cross between Triton
and torch through DLPack, without copies; the device is the model
instance's (KIND_GPU: that GPU, else the CPU).
"""
import importlib.util
import json
import os
import site

import triton_python_backend_utils as pb_utils

NETWORK_FILE = "network.py"
WEIGHTS_FILE = "weights.safetensors"
_TORCH_DTYPES = {
    "TYPE_BOOL": "bool", "TYPE_UINT8": "uint8", "TYPE_INT8": "int8", "TYPE_INT16": "int16", "TYPE_INT32": "int32",
    "TYPE_INT64": "int64", "TYPE_FP16": "float16", "TYPE_BF16": "bfloat16", "TYPE_FP32": "float32",
    "TYPE_FP64": "float64",
}


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        for folder in filter(None, parameters.get("python_site", "").split(os.pathsep)):
            site.addsitedir(folder)  # appended: the backend's own packages (its numpy) come first
        import torch
        from torch.utils import dlpack

        self.torch, self.dlpack = torch, dlpack
        if args["model_instance_kind"] == "GPU":
            self.device = torch.device("cuda", int(args["model_instance_device_id"]))
        else:
            self.device = torch.device("cpu")
        here = os.path.join(args["model_repository"], args["model_version"])
        network = _import_file(f"netspec_network_{config['name']}", os.path.join(here, NETWORK_FILE))
        self.module = network.load(os.path.join(here, WEIGHTS_FILE), device=str(self.device))
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [(o["name"], getattr(torch, _TORCH_DTYPES[o["data_type"]])) for o in config["output"]]
        self.batched = config.get("max_batch_size", 0) > 0

    def execute(self, requests):
        try:
            per_request = [[self._tensor(request, name) for name in self.inputs] for request in requests]
        except Exception as e:  # noqa: BLE001 - a bad request fails alone, as an error response
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(f"reading inputs: {e}"))] * len(requests)
        groups = _batches(per_request) if self.batched else [[k] for k in range(len(requests))]
        responses = [None] * len(requests)
        for group in groups:
            try:
                for k, outputs in zip(group, self._run([per_request[k] for k in group])):
                    responses[k] = pb_utils.InferenceResponse(output_tensors=outputs)
            except Exception as e:  # noqa: BLE001 - reported to the clients of this batch only
                for k in group:
                    responses[k] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e)))
        return responses

    def _tensor(self, request, name):
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        return self.dlpack.from_dlpack(tensor.to_dlpack())

    def _run(self, requests):
        """Run requests as one batch; yields each request's output tensors."""
        torch = self.torch
        sizes = [inputs[0].shape[0] if self.batched else 1 for inputs in requests]
        with torch.inference_mode():
            if len(requests) == 1:
                args = [x.to(self.device) for x in requests[0]]
            else:
                args = [torch.cat(column).to(self.device) for column in zip(*requests)]
            result = self.module(*args)
        if isinstance(result, torch.Tensor):
            result = (result,)
        parts = [y.split(sizes) if len(requests) > 1 else (y,) for y in result]
        for k in range(len(requests)):
            yield [pb_utils.Tensor.from_dlpack(name, parts[j][k].to(dtype).contiguous())
                   for j, (name, dtype) in enumerate(self.outputs)]

    def finalize(self):
        self.module = None


def _batches(per_request):
    """Indices of the requests that can be concatenated: same shapes past the
    batch dimension (Triton's batcher only groups such requests; a ragged
    model config could hand over others)."""
    groups = {}
    for k, inputs in enumerate(per_request):
        groups.setdefault(tuple(tuple(x.shape[1:]) for x in inputs), []).append(k)
    return list(groups.values())


def _import_file(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
