"""`--format triton-python`: a model folder for Triton's Python backend.

    NAME/config.pbtxt            backend "python", netspec's inputs, outputs and batching
    NAME/K/model.py              the TritonPythonModel (triton_model.py, copied as it is)
    NAME/K/network.py            the standalone module netspec generates
    NAME/K/weights.safetensors   its weights

The standalone module and weights are those `netspec compile` writes (the
netspec version is written to a scratch folder and its two files taken).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from compiler.artifact import SOURCE_FILE, WEIGHTS_FILE, write_version

from .common import ExportError, ExportSettings, version_folder
from .config import model_config, write_config


# triton_model.py is copied, not imported: it imports Triton's
# triton_python_backend_utils, which exists inside Triton only. These names
# are its NETWORK_FILE and WEIGHTS_FILE.
MODEL_SOURCE = Path(__file__).with_name("triton_model.py")
NETWORK_FILE, STANDALONE_WEIGHTS = "network.py", "weights.safetensors"


def export(model, repository: Path, settings: ExportSettings) -> Path:
    sites = []
    for folder in settings.python_site:
        path = Path(folder).expanduser()
        if os.pathsep in str(path):
            raise ExportError(f"--python-site {folder}: a folder name may not contain '{os.pathsep}'")
        sites.append(str(path.resolve()) if path.exists() else str(path))  # it may exist on the Triton host only
    parameters = {"python_site": os.pathsep.join(sites)} if sites else {}
    config = model_config(model, settings, backend="python", parameters=parameters)
    with version_folder(repository, settings) as folder, tempfile.TemporaryDirectory() as scratch:
        netspec_version = write_version(model, Path(scratch), settings.name)
        shutil.copyfile(netspec_version / SOURCE_FILE, folder / NETWORK_FILE)
        shutil.copyfile(netspec_version / WEIGHTS_FILE, folder / STANDALONE_WEIGHTS)
        shutil.copyfile(MODEL_SOURCE, folder / "model.py")
    write_config(Path(repository) / settings.name, config)
    return Path(repository) / settings.name / str(settings.version)
