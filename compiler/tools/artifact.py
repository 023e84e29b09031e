"""The model repository that `netspec compile` writes and `netspec serve`
reads: DIR/NAME/config.pbtxt and DIR/NAME/VERSION/{spec.yaml,
weights.safetensors, model.py}. No pickle anywhere; loading a version
recompiles its spec and reads tensors only, executing nothing from it."""
from __future__ import annotations

import os
from pathlib import Path

import yaml
from safetensors import SafetensorError
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
        load_weights(module, weights)
    folder = Path(repository) / name / str(version)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / SPEC_FILE, yaml.dump(expanded_spec(model.graph), Dumper=_SpecDumper, sort_keys=False, width=120))
        state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
        tmp = folder / (WEIGHTS_FILE + ".tmp")
        save_file(state, str(tmp), metadata={"model": model.name, "variant": str(model.variant)})
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


def load_weights(module, path: Path) -> None:
    """Load a safetensors file into a module, naming what does not fit."""
    try:
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise ResourceError(f"no such weights file: {path}") from None
    except (SafetensorError, OSError) as e:  # corrupt, truncated or unreadable
        raise ResourceError(f"cannot read weights {path}: {e}") from None
    own = module.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    wrong = [f"{k}: file {list(tensors[k].shape)} vs model {list(own[k].shape)}"
             for k in own if k in tensors and tensors[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
        if wrong:
            parts.append("shape mismatch " + "; ".join(wrong[:5]))
        raise ResourceError(f"weights {path} do not fit the model: " + "; ".join(parts),
                            hint="weights must come from the same spec and variant")
    module.load_state_dict(tensors)


def load_version(version_dir: str | Path) -> "api.Model":
    """Recompile a stored version from its expanded spec and load its weights."""
    version_dir = Path(version_dir)
    model = api.compile_file(version_dir / SPEC_FILE, seed=None)
    load_weights(model.module, version_dir / WEIGHTS_FILE)
    model.module.eval()
    return model
