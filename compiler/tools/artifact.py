"""The model repository that `netspec compile` writes and `netspec serve`
reads: DIR/NAME/config.pbtxt and DIR/NAME/VERSION/{spec.yaml,
weights.safetensors, model.py}. No pickle anywhere; loading a version
recompiles its spec and reads tensors only, executing nothing from it."""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .. import api
from ..backend.standalone import source
from ..errors import ResourceError
from ..ir import Graph, next_state
from .pbtxt import config_text, netspec_config

SPEC_FILE, WEIGHTS_FILE, SOURCE_FILE, CONFIG_FILE = "spec.yaml", "weights.safetensors", "model.py", "config.pbtxt"


def expanded_spec(graph: Graph) -> dict:
    """The graph as a flat spec (no blocks, every value concrete) that
    compiles to the same module with the same state_dict keys."""
    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    def flat(nodes_of):
        nodes = {}
        for node in nodes_of.values():
            if node.op == "tuple_item":
                continue  # a cell instance's output or state: the instance makes it again
            if node.body is not None:  # a cell's scan: the cell stays a block, written out flat
                cell, body = node.attrs, node.body
                block = f"{cell.block}_{len(blocks)}"
                blocks[block] = {
                    "inputs": list(cell.step_inputs),
                    "state": {st.name: {"shape": plain(st.shape), "init": st.init,
                                        "next": body.outputs[next_state(st.name)]} for st in cell.states},
                    "nodes": flat(body.nodes),
                    "outputs": {k: body.outputs[k] for k in cell.outputs},
                }
                nodes[node.name] = {"block": block, "in": list(node.inputs)}
                continue
            body = {"op": node.op, "in": list(node.inputs)}
            body.update({k: plain(v) for k, v in node.attrs.model_dump(exclude_defaults=True).items()})
            nodes[node.name] = body
        return nodes

    blocks: dict = {}
    nodes = flat(graph.nodes)
    return {
        "netspec": "expanded",
        "name": graph.name,
        "variant": graph.variant,
        "source": graph.source,
        "inputs": {k: {"shape": list(v.shape), "dtype": v.dtype} for k, v in graph.inputs.items()},
        **({"blocks": blocks} if blocks else {}),
        "nodes": nodes,
        "outputs": dict(graph.outputs),
    }


class _SpecDumper(yaml.SafeDumper):
    """Short lists of plain values on one line: `shape: [N, 3, 224, 224]`."""


def _represent_list(dumper, data):
    flow = all(not isinstance(v, (list, dict)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_SpecDumper.add_representer(list, _represent_list)


def write_version(model: "api.Model", repository: Path, name: str, version: int = 1,
                  weights: Path | None = None, **config) -> Path:
    """Write one version of a model into a repository; returns its folder."""
    module = model.module
    if weights is not None:
        load_weights(module, weights, config.get("precision", "fp32"))
    folder = Path(repository) / name / str(version)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / SPEC_FILE, yaml.dump(expanded_spec(model.graph), Dumper=_SpecDumper, sort_keys=False, width=120))
        state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
        tmp = folder / (WEIGHTS_FILE + ".tmp")
        save_file(state, str(tmp), metadata={"model": model.name, "variant": str(model.variant)})
        # safetensors creates its file 0600; a server running as another user
        # must read it as it reads the spec written beside it (the umask's mode).
        os.chmod(tmp, (folder / SPEC_FILE).stat().st_mode & 0o777)
        os.replace(tmp, folder / WEIGHTS_FILE)
        atomic_write(folder / SOURCE_FILE, source(model.graph))
        atomic_write(Path(repository) / name / CONFIG_FILE, config_text(netspec_config(model.graph, name, **config)))
    except OSError as e:
        raise ResourceError(f"cannot write to {folder}: {e.strerror or e}",
                            hint="choose a repository folder you can write to") from None
    return folder


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# A float16 or bfloat16 file is fine for a model stored to run in that precision.
PRECISION_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _header(path: Path) -> dict[str, tuple[list[int], torch.dtype]]:
    """{name: (shape, dtype)} of a safetensors file, read without its tensors."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: (list(f.get_slice(k).get_shape()), _dtype(f.get_slice(k).get_dtype())) for k in f.keys()}
    except FileNotFoundError:
        raise ResourceError(f"no such weights file: {path}") from None
    except (SafetensorError, OSError) as e:  # corrupt, truncated or unreadable
        raise ResourceError(f"cannot read weights {path}: {e}") from None


def _dtype(name: str) -> torch.dtype | str:
    """torch's dtype of a safetensors dtype name ("F32"), or the name when torch has none."""
    table = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
             "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
             "BOOL": torch.bool}
    return table.get(name, name)


def _listed(items: list[str]) -> str:
    return ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")


def load_weights(module, path: Path, precision: str = "fp32", header: dict | None = None) -> None:
    """Load a safetensors file into a module, naming what does not fit: every
    tensor's name, shape and dtype must be the module's (floating tensors
    may also be stored in `precision`).  `header`: the file's, if already read."""
    header = header if header is not None else _header(path)
    own = module.state_dict()
    accepted = PRECISION_DTYPES[precision]
    missing = [k for k in own if k not in header]
    unexpected = [k for k in header if k not in own]
    wrong = [f"{k}: file {shape} vs model {list(own[k].shape)}" for k, (shape, _) in header.items()
             if k in own and shape != list(own[k].shape)]
    wrong_dtype = [f"{k}: file {str(dtype).removeprefix('torch.')} vs model {str(own[k].dtype).removeprefix('torch.')}"
                   for k, (_, dtype) in header.items()
                   if k in own and dtype != own[k].dtype and not (own[k].is_floating_point() and dtype == accepted)]
    if missing or unexpected or wrong or wrong_dtype:
        parts = []
        if missing:
            parts.append(f"missing {_listed(missing)}")
        if unexpected:
            parts.append(f"unexpected {_listed(unexpected)}")
        if wrong:
            parts.append("shape mismatch " + "; ".join(wrong[:5]))
        if wrong_dtype:
            parts.append("dtype mismatch " + "; ".join(wrong_dtype[:5]))
        raise ResourceError(f"weights {path} do not fit the model: " + "; ".join(parts),
                            hint="weights must come from the same spec and variant")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:  # a file that changed or broke since its header was read
        raise ResourceError(f"cannot read weights {path}: {e}") from None
    # Names and shapes are known to match, so each tensor is copied into its
    # parameter or buffer (state_dict shares their storage). load_state_dict
    # filters the whole dict once per submodule: for a model of 9,000 layers
    # that took 50 s, this takes a fraction of one.
    with torch.no_grad():
        for name, tensor in own.items():
            tensor.copy_(tensors[name])


def load_version(version_dir: str | Path, precision: str = "fp32") -> "api.Model":
    """Recompile a stored version from its expanded spec and load its weights.

    The weights' header is compared with the spec before the module is
    built: a spec claiming more parameters than the file holds is refused
    without allocating them, so memory stays bounded by the files' size."""
    version_dir = Path(version_dir)
    graph = api.analyze_file(version_dir / SPEC_FILE)
    weights = version_dir / WEIGHTS_FILE
    header = _header(weights)
    held = sum(math.prod(shape) for shape, _ in header.values())
    needed = sum(node.n_params for node in graph.nodes.values())
    if needed > held:
        raise ResourceError(f"weights {weights} hold {held:,} values, but the spec has {needed:,} parameters",
                            hint="weights must come from the same spec and variant")
    model = api.build(graph, initialise=False)  # every weight is loaded next (load_weights refuses a missing one)
    load_weights(model.module, weights, precision, header)
    model.module.eval()
    return model
