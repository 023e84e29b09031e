"""`netspec compile`'s model repository: config.pbtxt, the expanded spec,
weights.safetensors and the standalone model.py.

model.py is run in a separate Python that refuses to import netspec (and
its dependencies beyond torch) and refuses every pickle load, and its
outputs must equal the compiled module's.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from compiler.api import compile_file
from compiler.tools.artifact import load_version
from compiler.tools.verify import randomize_norms

from common import SPECS


# Every base op once, two branches and three outputs: what model.py must
# reproduce beyond a plain chain.
ALL_OPS = """\
name: all_ops
inputs:
  image: {shape: [N, 3, 16, 16]}
nodes:
  conv: {op: conv2d, out_channels: 8, kernel: 3, padding: same}
  bn: {op: batchnorm2d}
  act: {op: leaky_relu, negative_slope: 0.1}
  lrn: {op: local_response_norm, size: 3, k: 2}
  left: {op: max_pool2d, kernel: 3, stride: 2, padding: 1}
  right: {op: avg_pool2d, kernel: 2, stride: 2, in: lrn}
  branch: {op: conv2d, out_channels: 8, kernel: 1, groups: 2, bias: false, in: right}
  sum: {op: add, in: [left, branch]}
  cat: {op: concat, in: [sum, left]}
  same: {op: identity}
  drop: {op: dropout, p: 0.2}
  relu: {op: relu}
  pool: {op: adaptive_avg_pool2d, output_size: 2}
  flat: {op: flatten}
  fc: {op: linear, out_features: 5}
  tanh: {op: tanh}
  gate: {op: sigmoid, in: fc}
  gap: {op: global_avg_pool, in: cat}
  prob: {op: softmax, in: tanh}
outputs: {probs: prob, gate: gate, pooled: gap}
"""

# Run in a fresh interpreter inside the version folder: netspec and the
# compiler's own dependencies cannot be imported, and any pickle load fails.
STANDALONE = textwrap.dedent("""
    import importlib.util, pickle, sys
    BLOCKED = {"compiler", "service", "yaml", "pydantic", "networkx", "torchvision"}

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError("model.py may not import " + name)

    sys.meta_path.insert(0, Refuse())
    import torch

    def no_pickle(*args, **kwargs):
        raise AssertionError("model.py loaded a pickle")

    torch.load = pickle.load = pickle.loads = no_pickle
    from safetensors.torch import load_file, save_file

    spec = importlib.util.spec_from_file_location("standalone_model", "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.load("weights.safetensors")
    assert not model.training
    inputs = load_file(sys.argv[1])
    with torch.no_grad():
        out = model(*[inputs[k] for k in sorted(inputs)])
    outs = out if isinstance(out, tuple) else (out,)
    save_file({f"out{i}": t.contiguous() for i, t in enumerate(outs)}, sys.argv[2])
""")


def compile_into(cli, repo: Path, spec: Path, *args) -> Path:
    run = cli("compile", spec, "--repository", repo, "--quiet", *args)
    assert run.code == 0, run.err
    return run


def run_standalone(folder: Path, inputs: list[torch.Tensor], tmp_path: Path) -> list[torch.Tensor]:
    save_file({f"in{i}": x.contiguous() for i, x in enumerate(inputs)}, str(tmp_path / "inputs.safetensors"))
    proc = subprocess.run([sys.executable, "-c", STANDALONE, str(tmp_path / "inputs.safetensors"),
                           str(tmp_path / "outputs.safetensors")], cwd=folder, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    outs = load_file(str(tmp_path / "outputs.safetensors"))
    return [outs[f"out{i}"] for i in range(len(outs))]


def outputs_of(module, inputs) -> list[torch.Tensor]:
    with torch.no_grad():
        out = module.eval()(*inputs)
    return list(out) if isinstance(out, tuple) else [out]


@pytest.fixture(scope="module")
def all_ops_spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "all_ops.yaml"
    path.write_text(ALL_OPS)
    return path


@pytest.mark.parametrize("name,variant", [("lenet", None), ("nin", "fashion-mnist")])
def test_standalone_model_equals_compiled_module(cli, tmp_path, name, variant):
    spec = SPECS / f"{name}.yaml"
    repo = tmp_path / "repo"
    compile_into(cli, repo, spec, "--seed", "7", *(["--variant", variant] if variant else []))
    folder = repo / name / "1"
    compiled = compile_file(spec, variant, seed=7).module  # what compile built, from the same seed
    stored = load_file(str(folder / "weights.safetensors"))
    assert stored.keys() == compiled.state_dict().keys()
    for key, tensor in compiled.state_dict().items():
        assert torch.equal(stored[key], tensor), key
    shape = [2 if d == "N" else d for d in compile_file(spec, variant).inputs["image"].shape]
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    (theirs,) = run_standalone(folder, [x], tmp_path)
    (ours,) = outputs_of(compiled, [x])
    torch.testing.assert_close(theirs, ours, rtol=1e-6, atol=1e-6)


def test_weights_round_trip_through_every_op(cli, tmp_path, all_ops_spec):
    # Weights from elsewhere (with batch-norm statistics that are not the
    # identity) go in with --weights and come out of model.py unchanged.
    source = compile_file(all_ops_spec, seed=123).module
    randomize_norms(source)
    weights = tmp_path / "trained.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(weights))
    repo = tmp_path / "repo"
    compile_into(cli, repo, all_ops_spec, "--weights", weights)
    folder = repo / "all_ops" / "1"
    stored = load_file(str(folder / "weights.safetensors"))
    expected = load_file(str(weights))
    assert stored.keys() == expected.keys()
    assert all(torch.equal(stored[k], expected[k]) for k in expected)

    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    ours = outputs_of(source, [x])
    assert [t.shape for t in ours] == [(3, 5), (3, 5), (3, 16)]
    for theirs, mine in zip(run_standalone(folder, [x], tmp_path), ours, strict=True):
        torch.testing.assert_close(theirs, mine, rtol=1e-6, atol=1e-6)
    # The stored version reloads from its expanded spec to the same module.
    for theirs, mine in zip(outputs_of(load_version(folder).module, [x]), ours, strict=True):
        torch.testing.assert_close(theirs, mine, rtol=0, atol=0)


def test_no_pickle_anywhere(cli, tmp_path, all_ops_spec):
    repo = tmp_path / "repo"
    compile_into(cli, repo, all_ops_spec)
    compile_into(cli, repo, SPECS / "lenet.yaml")
    files = [p for p in repo.rglob("*") if p.is_file()]
    assert sorted(p.relative_to(repo).as_posix() for p in files) == [
        "all_ops/1/model.py", "all_ops/1/spec.yaml", "all_ops/1/weights.safetensors", "all_ops/config.pbtxt",
        "lenet/1/model.py", "lenet/1/spec.yaml", "lenet/1/weights.safetensors", "lenet/config.pbtxt"]
    for path in files:
        head = path.read_bytes()[:4]
        assert not head.startswith(b"\x80"), f"{path} looks like a pickle"
        assert head != b"PK\x03\x04", f"{path} looks like a torch.save zip"
        if path.suffix in (".py", ".yaml", ".pbtxt"):
            text = path.read_text()
            assert not re.search(r"\btorch\.load\b|\bimport pickle\b|\bpickle\.", text), path
    for path in repo.rglob("*.safetensors"):
        with safe_open(str(path), "pt") as f:  # parses a header and raw tensors only
            assert list(f.keys())


def test_every_file_written_has_the_umask_mode(cli, tmp_path):
    # safetensors alone would make the weights 0600: unreadable to a server
    # running as another user, while the spec beside them is readable.
    repo = tmp_path / "repo"
    old = os.umask(0o022)
    try:
        compile_into(cli, repo, SPECS / "lenet.yaml")
    finally:
        os.umask(old)
    modes = {p.relative_to(repo).as_posix(): oct(p.stat().st_mode & 0o777) for p in repo.rglob("*") if p.is_file()}
    assert set(modes.values()) == {"0o644"}, modes


def test_config_pbtxt(cli, tmp_path, all_ops_spec):
    text_format = pytest.importorskip("google.protobuf.text_format")
    model_config = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    repo = tmp_path / "repo"
    compile_into(cli, repo, SPECS / "nin.yaml", "--variant", "imagenet", "--name", "nin_in", "--version", "3",
                 "--max-batch-size", "8")
    compile_into(cli, repo, all_ops_spec, "--no-dynamic-batching")
    assert (repo / "nin_in" / "3" / "model.py").exists()

    # Triton's own schema reads the file.
    config = text_format.Parse((repo / "nin_in" / "config.pbtxt").read_text(), model_config.ModelConfig())
    assert config.name == "nin_in" and config.max_batch_size == 8
    assert [(t.name, model_config.DataType.Name(t.data_type), list(t.dims)) for t in config.input] == \
        [("image", "TYPE_FP32", [3, 224, 224])]
    assert [(t.name, list(t.dims)) for t in config.output] == [("logits", [1000])]
    assert config.HasField("dynamic_batching")
    assert config.parameters["variant"].string_value == "imagenet"

    config = text_format.Parse((repo / "all_ops" / "config.pbtxt").read_text(), model_config.ModelConfig())
    assert [(t.name, list(t.dims)) for t in config.output] == [("probs", [5]), ("gate", [5]), ("pooled", [16])]
    assert not config.HasField("dynamic_batching")


def test_every_dtype_a_spec_can_name_has_a_triton_type():
    from compiler.frontend.schema import DTYPES
    from compiler.protocol.datatypes import BY_NAME

    assert set(DTYPES) <= set(BY_NAME)


def test_expanded_spec_checks_and_keeps_state_dict_keys(cli, tmp_path):
    repo = tmp_path / "repo"
    compile_into(cli, repo, SPECS / "vgg.yaml", "--variant", "A")
    expanded = repo / "vgg" / "1" / "spec.yaml"
    run = cli("check", expanded)
    assert run.code == 0, run.err
    keys = load_file(str(repo / "vgg" / "1" / "weights.safetensors")).keys()
    assert "features.2.layer.1.conv.weight" in keys  # stage 3, its second convolution
    assert set(compile_file(expanded, seed=None).module.state_dict()) == set(keys)


def test_weights_that_do_not_fit_are_a_spec_error(cli, tmp_path):
    other = compile_file(SPECS / "lenet.yaml").module
    bad = tmp_path / "lenet.safetensors"
    state = {k: v.contiguous() for k, v in other.state_dict().items()}
    state["fc3.weight"] = torch.zeros(11, 84)
    save_file(state, str(bad))
    repo = tmp_path / "repo"
    run = cli("compile", SPECS / "lenet.yaml", "--repository", repo, "--weights", bad)
    assert run.code == 2
    assert "fc3.weight: file [11, 84] vs model [10, 84]" in run.err
    assert "Traceback" not in run.err
    assert not (repo / "lenet").exists()


def error_lines(err: str) -> list[str]:
    """What a one-line error prints: its line, and at most a hint under it."""
    lines = err.splitlines()
    assert "Traceback" not in err
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("  hint: ")), err
    return lines


def test_unwritable_repository_is_a_one_line_error(cli, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    run = cli("compile", SPECS / "lenet.yaml", "--repository", blocker / "repo")
    assert run.code == 2
    assert "cannot write" in error_lines(run.err)[0]

    run = cli("compile", SPECS / "lenet.yaml", "--repository", blocker)
    assert run.code == 2
    assert "is not a folder" in error_lines(run.err)[0]
