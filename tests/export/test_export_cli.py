"""`netspec export` from the command line: the folders it writes, the
config.pbtxt Triton reads from them, and clear errors for bad arguments."""
from __future__ import annotations

import ast
import importlib.util

import pytest
import torch
from google.protobuf import text_format
from safetensors.torch import load_file

from compiler.api import compile_file
from service.generated import model_config_pb2


def read_config(path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def import_file(path):
    spec = importlib.util.spec_from_file_location(f"exported_{path.parent.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_triton_python_folder(cli, specs, tmp_path, root):
    run = cli("export", specs / "lenet.yaml", "--format", "triton-python", "--repository", tmp_path,
              "--seed", "3", "--python-site", tmp_path / "site", "--max-queue-delay-us", "500")
    assert run.code == 0, run.err
    version = tmp_path / "lenet" / "1"
    assert sorted(p.name for p in version.iterdir()) == ["model.py", "network.py", "weights.safetensors"]
    config = read_config(tmp_path / "lenet" / "config.pbtxt")
    assert config.backend == "python" and config.name == "lenet" and config.max_batch_size == 64
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [("image", model_config_pb2.TYPE_FP32, [1, 28, 28])]
    assert [(o.name, o.data_type, list(o.dims)) for o in config.output] == [("logits", model_config_pb2.TYPE_FP32, [10])]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert config.parameters["python_site"].string_value == str((tmp_path / "site").resolve())
    # model.py is the TritonPythonModel as it is in the package; it imports
    # triton_python_backend_utils, so it is read here, not imported
    assert (version / "model.py").read_text() == (root / "compiler" / "export" / "triton_model.py").read_text()
    classes = {n.name for n in ast.parse((version / "model.py").read_text()).body if isinstance(n, ast.ClassDef)}
    assert classes == {"TritonPythonModel"}
    # network.py with its weights computes what the compiled module computes
    network = import_file(version / "network.py").load(str(version / "weights.safetensors"))
    compiled = compile_file(specs / "lenet.yaml", seed=3).module.eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.inference_mode():
        assert torch.equal(network(x), compiled(x))
    assert load_file(version / "weights.safetensors").keys() == compiled.state_dict().keys()


def test_no_batching_keeps_the_batch_dimension(cli, specs, tmp_path):
    run = cli("export", specs / "lenet.yaml", "--format", "triton-python", "--repository", tmp_path,
              "--max-batch-size", "0")
    assert run.code == 0, run.err
    config = read_config(tmp_path / "lenet" / "config.pbtxt")
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [-1, 1, 28, 28]


def test_torchscript_names_follow_triton_pytorch_rules(cli, specs, tmp_path):
    run = cli("export", specs / "lenet.yaml", "--format", "torchscript", "--repository", tmp_path, "--check")
    assert run.code == 0, run.err
    assert "torch.jit.load vs the compiled module: ok" in run.out
    config = read_config(tmp_path / "lenet" / "config.pbtxt")
    assert config.platform == "pytorch_libtorch"
    assert [o.name for o in config.output] == ["logits__0"]
    scripted = torch.jit.load(str(tmp_path / "lenet" / "1" / "model.pt"))
    # Triton's PyTorch backend matches inputs to the forward arguments by name
    assert [a.name for a in scripted.forward.schema.arguments[1:]] == [i.name for i in config.input] == ["image"]


def test_weights_are_the_ones_given(cli, specs, tmp_path):
    assert cli("compile", specs / "lenet.yaml", "--repository", tmp_path / "netspec", "--seed", "7", "--quiet").code == 0
    weights = tmp_path / "netspec" / "lenet" / "1" / "weights.safetensors"
    run = cli("export", specs / "lenet.yaml", "--format", "triton-python", "--repository", tmp_path / "out",
              "--weights", weights)
    assert run.code == 0, run.err
    exported = load_file(tmp_path / "out" / "lenet" / "1" / "weights.safetensors")
    expected = load_file(weights)
    assert all(torch.equal(exported[k], expected[k]) for k in expected)


def test_a_new_export_replaces_the_version_and_a_failed_one_keeps_it(cli, specs, tmp_path):
    args = ("--repository", tmp_path, "--name", "m")
    assert cli("export", specs / "lenet.yaml", "--format", "triton-python", *args).code == 0
    (tmp_path / "m" / "1" / "stale.txt").write_text("from an older export")
    assert cli("export", specs / "lenet.yaml", "--format", "torchscript", *args).code == 0
    assert sorted(p.name for p in (tmp_path / "m" / "1").iterdir()) == ["model.pt"]
    failed = cli("export", specs / "lstm_cell.yaml", "--format", "torchscript", *args)
    assert failed.code == 2 and "TorchScript cannot compile 'lstm_cell'" in failed.err
    assert "Traceback" not in failed.err and "hint: --format onnx or --format triton-python" in failed.err
    assert sorted(p.name for p in (tmp_path / "m" / "1").iterdir()) == ["model.pt"]
    assert read_config(tmp_path / "m" / "config.pbtxt").platform == "pytorch_libtorch"
    assert [p.name for p in (tmp_path / "m").iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("args, message", [
    (["--format", "onnx", "--python-site", "/x"], "--python-site applies to --format triton-python only"),
    (["--format", "triton-python", "--check"], "--check applies to --format onnx and torchscript"),
    (["--format", "onnx", "--version", "0"], "--version 0: Triton's versions are whole numbers from 1"),
    (["--format", "onnx", "--name", "../up"], "--name '../up': a model name is one folder name"),
    (["--format", "onnx", "--max-batch-size", "-1"], "--max-batch-size -1: expected 0 (no batching) or more"),
    (["--format", "tensorflow"], "invalid choice: 'tensorflow'"),
])
def test_bad_arguments_are_one_line_errors(cli, specs, tmp_path, args, message):
    run = cli("export", specs / "lenet.yaml", "--repository", tmp_path, *args)
    assert run.code == 2 and message in run.err and "Traceback" not in run.err
    assert not any(tmp_path.iterdir())


def test_bad_inputs_are_clear_errors(cli, specs, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    run = cli("export", specs / "lenet.yaml", "--format", "onnx", "--repository", not_a_folder)
    assert run.code == 2 and "exists and is not a folder" in run.err
    run = cli("export", tmp_path / "missing.yaml", "--format", "onnx", "--repository", tmp_path / "r")
    assert run.code == 2 and "no such spec file" in run.err
    bad_spec = tmp_path / "bad.yaml"
    bad_spec.write_text("name: bad\ninputs: {x: {shape: [N, 4]}}\nnodes:\n  fc: {op: lineer, out_features: 2}\n"
                        "outputs: {y: fc}\n")
    run = cli("export", bad_spec, "--format", "onnx", "--repository", tmp_path / "r")
    assert run.code == 2 and "bad.yaml:4" in run.err and "Traceback" not in run.err
    assert cli("compile", specs / "resnet.yaml", "--variant", "18", "--repository", tmp_path / "n", "--quiet").code == 0
    run = cli("export", specs / "lenet.yaml", "--format", "onnx", "--repository", tmp_path / "r",
              "--weights", tmp_path / "n" / "resnet" / "1" / "weights.safetensors")
    assert run.code == 2 and "do not fit the model" in run.err and "Traceback" not in run.err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_netspec_serve_skips_an_exported_folder_and_serves_the_rest(cli, specs, tmp_path):
    """docs/deploy.md: keep the repositories apart; a mixed one still serves
    its netspec models, the exported one is UNAVAILABLE with the reason."""
    grpcclient = pytest.importorskip("tritonclient.grpc")
    from export_servers import start_netspec

    assert cli("compile", specs / "lenet.yaml", "--repository", tmp_path, "--quiet").code == 0
    assert cli("export", specs / "lenet.yaml", "--format", "torchscript", "--repository", tmp_path,
               "--name", "exported").code == 0
    server, url = start_netspec(tmp_path)
    try:
        client = grpcclient.InferenceServerClient(url)
        assert client.is_model_ready("lenet") and not client.is_model_ready("exported")
        index = {m.name: (m.state, m.reason) for m in client.get_model_repository_index().models}
        assert index["lenet"][0] == "READY"
        assert index["exported"][0] == "UNAVAILABLE" and "spec.yaml" in index["exported"][1], index
        client.close()
    finally:
        assert server.stop() == 0
