"""The other servers `bench/serve.py --peers` measures beside netspec, each in
a virtual environment of its own under bench/.peers/ (ignored by git), made
on first use:

- KServe 0.21's Python ModelServer (kserve from PyPI), LeNet's module in
  torch called in its `predict`, as KServe's custom-model examples do;
- NVIDIA Triton 2.51 (the tritonserver binary of the nvidia-pytriton 0.7.0
  wheel, installed by .ci/triton.sh) serving LeNet through its Python
  backend with the dynamic batcher: `netspec export --format triton-python`;
- the same Triton through PyTriton's own API (`Triton().bind(...)`, a
  `@batch` function, max_batch_size 64), in the same environment.

Both run the very module netspec serves (network.py and its weights, as
`netspec export` writes them), on this interpreter's torch: a .pth file in
each environment points at torch's folder, after the environment's own
packages (so their numpy comes first: 1.x for Triton's stub). A peer that
cannot be installed is reported with the reason and left out.

Run by a peer environment's interpreter, `python bench/peers.py --kserve|--pytriton
VERSION_DIR PORT` is that server; it imports nothing of netspec.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "bench" / ".peers"
KSERVE_VERSION = "0.21.*"
STARTUP_TIMEOUT_S = 300  # Triton's Python backend imports torch in a process of its own


def torch_site() -> str:
    """The folder this interpreter imports torch from."""
    import torch

    return str(Path(torch.__file__).resolve().parents[1])


def _venv(name: str, packages: list[str]) -> Path | str:
    """The python of bench/.peers/NAME with `packages`, or why not."""
    env = PEERS / name
    python = env / "bin" / "python"
    marker = env / ".installed"
    if not marker.exists():
        if not python.exists():
            done = subprocess.run([sys.executable, "-m", "venv", str(env)], capture_output=True, text=True)
            if done.returncode:
                return f"cannot create {env}: {done.stderr.strip()[-200:]}"
        print(f"installing {' '.join(packages)} into {env} ...", file=sys.stderr)
        done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages],
                              capture_output=True, text=True)
        if done.returncode:
            return f"pip cannot install {' '.join(packages)}: {done.stderr.strip().splitlines()[-1:]}"
        marker.write_text(" ".join(packages))
    _add_torch(python)
    return python


def _add_torch(python: Path) -> None:
    """This interpreter's torch, importable in the environment of `python`."""
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True).stdout.strip()
    Path(site, "netspec_bench_torch.pth").write_text(torch_site() + "\n")


def kserve_python() -> Path | str:
    return _venv("kserve", [f"kserve=={KSERVE_VERSION}"])


def tritonserver() -> Path | str:
    """The tritonserver wrapper .ci/triton.sh writes into bench/.peers/triton, or why not."""
    env = PEERS / "triton"
    done = subprocess.run(["bash", str(ROOT / ".ci" / "triton.sh")], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TRITON_ENV": str(env.relative_to(ROOT))})
    if (env / "UNAVAILABLE").exists():
        return (env / "UNAVAILABLE").read_text().strip()
    if done.returncode or not (env / "tritonserver").exists():
        return f".ci/triton.sh failed: {done.stderr.strip()[-300:]}"
    _add_torch(env / "bin" / "python")  # for PyTriton, whose model runs in that environment's Python
    return env / "tritonserver"


def export_triton_python(spec: Path, repository: Path, name: str) -> Path:
    """`netspec export --format triton-python`; returns the model's version folder."""
    done = subprocess.run([sys.executable, "-m", "compiler.cli", "export", str(spec), "--format", "triton-python",
                           "--repository", str(repository), "--name", name, "--python-site", torch_site()],
                          cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    if done.returncode:
        raise RuntimeError(f"netspec export failed: {done.stderr.strip()[-300:]}")
    return repository / name / "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def peer_env(env: dict | None = None) -> dict:
    """The environment a peer runs in. OpenMP threads sleep between torch's
    operations, as `netspec serve` sets for itself unless told otherwise:
    spinning, they take the cores the servers' own threads need, and the
    comparison would measure that setting rather than the servers."""
    env = dict(os.environ if env is None else env)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


class Peer:
    """A peer server's process; `url` once it answers."""

    def __init__(self, argv: list[str], ready_text: str, port: int, env: dict | None = None):
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"netspec-bench-peer-{port}.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(argv, cwd=ROOT, env=peer_env(env), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while ready_text not in self.log.read_text(errors="replace") or not _listening(port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{Path(argv[0]).name} did not start: {self.log.read_text()[-500:]}")
            time.sleep(0.2)
        self.url = f"127.0.0.1:{port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_kserve(python: Path, version_dir: Path) -> Peer:
    port = free_port()
    return Peer([str(python), __file__, "--kserve", str(version_dir), str(port)], "Starting gRPC server on", port,
                env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})


def start_triton(server: Path, repository: Path) -> Peer:
    port = free_port()
    return Peer([str(server), "--model-repository", str(repository), "--grpc-port", str(port),
                 "--allow-http", "false", "--allow-metrics", "false", "--exit-on-error", "true"],
                "Started GRPCInferenceService", port)


def start_pytriton(python: Path, version_dir: Path) -> Peer:
    """PyTriton: its Triton runs the model through a proxy in this Python process."""
    port = free_port()
    libdir = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
                            capture_output=True, text=True).stdout.strip()
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, (f"{site}/nvidia_pytriton.libs", libdir,
                                                           env.get("LD_LIBRARY_PATH"))))
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    return Peer([str(python), __file__, "--pytriton", str(version_dir), str(port)], "Infer function available",
                port, env=env)


def _network(version_dir: str):
    """The exported module and its input and output names, read as the peers read them."""
    import importlib.util
    import re

    spec = importlib.util.spec_from_file_location("network", Path(version_dir, "network.py"))
    network = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(network)
    module = network.load(str(Path(version_dir, "weights.safetensors")), device="cpu")
    config = Path(version_dir).parent.joinpath("config.pbtxt").read_text()
    names = {kind: re.search(kind + r'\s*{\s*name:\s*"([^"]+)"', config).group(1) for kind in ("input", "output")}
    return module, names["input"], names["output"]


def pytriton_main(version_dir: str, port: int) -> None:
    import numpy as np
    import torch
    from pytriton.decorators import batch
    from pytriton.model_config import ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    module, input_name, output_name = _network(version_dir)
    name = Path(version_dir).parent.name

    @batch
    def infer(**inputs):
        with torch.inference_mode():
            y = module(torch.from_numpy(inputs[input_name])).numpy()
        return {output_name: y}

    config = TritonConfig(grpc_port=port, http_port=free_port(), metrics_port=free_port(), allow_http=False)
    with Triton(config=config) as triton:
        triton.bind(model_name=name, infer_func=infer,
                    inputs=[Tensor(name=input_name, dtype=np.float32, shape=(1, 28, 28))],
                    outputs=[Tensor(name=output_name, dtype=np.float32, shape=(-1,))],
                    config=ModelConfig(max_batch_size=64))
        print("Infer function available", flush=True)
        triton.serve()


# --- the KServe server, run in its own environment ------------------------------


def kserve_main(version_dir: str, port: int) -> None:
    import kserve
    import torch
    from kserve import InferOutput, InferResponse

    module, _, output_name = _network(version_dir)
    name = Path(version_dir).parent.name

    class Network(kserve.Model):
        def __init__(self):
            super().__init__(name)
            self.ready = True

        async def predict(self, payload, headers=None, response_headers=None):
            with torch.inference_mode():
                y = module(*[torch.from_numpy(i.as_numpy()) for i in payload.inputs]).numpy()
            output = InferOutput(name=output_name, shape=list(y.shape), datatype="FP32")
            output.set_data_from_numpy(y, binary_data=True)
            return InferResponse(response_id=payload.id, model_name=name, infer_outputs=[output])

    kserve.ModelServer(http_port=free_port(), grpc_port=port, workers=1,
                       enable_latency_logging=False).start([Network()])


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--kserve":
        kserve_main(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "--pytriton":
        pytriton_main(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
