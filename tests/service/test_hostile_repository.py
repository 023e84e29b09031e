"""A repository written by someone careless or hostile: alias bombs, deep
nesting, expensive expressions, a spec claiming billions of parameters,
symlinks out of the repository, weights of the wrong dtype. Each model is
refused quickly with a reason that names a path relative to the repository
and quotes nothing, while lenet beside them serves; `netspec check` refuses
the same specs. The server runs in its own process, with Triton's defaults:
strict readiness and model control mode none."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc
from safetensors.torch import load_file, save_file

from server_process import ROOT, Server, write_spec_model
from service.generated import grpc_service_pb2 as pb
from service.generated import grpc_service_pb2_grpc as pb_grpc

HEAD = "name: m\ninputs: {x: {shape: [N, 4]}}\nnodes: {a: {op: relu}}\noutputs: {y: a}\n"
BOMB = HEAD + "l0: &l0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * 9)}]\n" for k in range(1, 9))
HOSTILE_SPECS = {
    "alias_bomb": BOMB,
    "deep": HEAD + "params:\n  p: " + "[" * 10_000 + "]" * 10_000 + "\n",
    "expensive": HEAD + 'params:\n  p: "${sum([sum(range(100000)) for j in range(100000)])}"\n',
    "huge": "name: m\ninputs: {x: {shape: [N, 100000]}}\nnodes: {a: {op: linear, out_features: 100000}}\n"
            "outputs: {y: a}\n",
}
REASONS = {  # the start of each model's reason in RepositoryIndex
    "alias_bomb": "alias_bomb/1/spec.yaml:5:",
    "deep": "deep/1/spec.yaml:6:",
    "expensive": "expensive/1/spec.yaml:6:6: not a valid spec",
    "huge": "weights huge/1/weights.safetensors hold ",
    "passwd": "passwd/1/spec.yaml: the spec.yaml resolves outside the repository; refused",
    "linked_version": "linked_version/1: the version folder resolves outside the repository; refused",
    "linked_model": "linked_model: the model folder resolves outside the repository; refused",
    "int8": "weights int8/1/weights.safetensors do not fit the model: dtype mismatch ",
}


def named_copy(source: Path, target: Path) -> None:
    shutil.copytree(source, target, symlinks=True)
    config = target / "config.pbtxt"
    config.write_text(config.read_text().replace(f'name: "{source.name}"', f'name: "{target.name}"'))


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("hostile")
    root = base / "models"
    write_spec_model(root, (ROOT / "specs" / "lenet.yaml").read_text())
    lenet = root / "lenet"
    for name, text in HOSTILE_SPECS.items():
        named_copy(lenet, root / name)
        (root / name / "1" / "spec.yaml").write_text(text)
    named_copy(lenet, root / "passwd")
    (root / "passwd" / "1" / "spec.yaml").unlink()
    (root / "passwd" / "1" / "spec.yaml").symlink_to("/etc/passwd")
    named_copy(lenet, base / "outside" / "linked_model")
    (root / "linked_model").symlink_to(base / "outside" / "linked_model")
    (root / "linked_version").mkdir()
    shutil.copy(base / "outside" / "linked_model" / "config.pbtxt", root / "linked_version" / "config.pbtxt")
    (root / "linked_version" / "config.pbtxt").write_text(
        (root / "linked_version" / "config.pbtxt").read_text().replace('"linked_model"', '"linked_version"'))
    (root / "linked_version" / "1").symlink_to(base / "outside" / "linked_model" / "1")
    named_copy(lenet, root / "int8")
    weights = root / "int8" / "1" / "weights.safetensors"
    save_file({k: (v * 100).to(torch.int8) for k, v in load_file(str(weights)).items()}, str(weights))
    return root


@pytest.fixture(scope="module")
def servers(repository):
    strict = Server(repository, expect_ready=False)
    lenient = Server(repository, "--strict-readiness", "false", expect_ready=False)
    for server in (strict, lenient):
        server.wait_ready()
    yield strict, lenient
    for server in (strict, lenient):
        assert server.stop() == 0


def test_every_hostile_model_is_refused_with_a_reason_and_lenet_serves(servers, repository):
    strict, _ = servers
    assert time.monotonic() - strict.started < 60  # every load bounded; a few seconds on a quiet machine
    with grpc.insecure_channel(strict.url) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        rows = {m.name: m for m in stub.RepositoryIndex(pb.RepositoryIndexRequest()).models}
        request = pb.ModelInferRequest(model_name="lenet")
        request.inputs.add(name="image", datatype="FP32", shape=[1, 1, 28, 28])
        request.raw_input_contents.append(np.zeros((1, 1, 28, 28), np.float32).tobytes())
        assert len(stub.ModelInfer(request).raw_output_contents[0]) == 40
        assert stub.ModelReady(pb.ModelReadyRequest(name="lenet")).ready
    assert rows.pop("lenet").state == "READY"
    assert set(rows) == set(REASONS)
    passwd_line = Path("/etc/passwd").read_text().splitlines()[0]
    for name, start in REASONS.items():
        assert rows[name].state == "UNAVAILABLE" and rows[name].reason.startswith(start), rows[name].reason
        assert str(repository) not in rows[name].reason and passwd_line not in rows[name].reason
    assert "file int8 vs model float32" in rows["int8"].reason
    assert passwd_line not in strict.log()  # nothing outside the repository was read at all
    assert "Traceback" not in strict.log(), strict.log()


def test_readiness_is_strict_by_default(servers):
    for server, ready, status in ((servers[0], False, health_pb2.HealthCheckResponse.NOT_SERVING),
                                  (servers[1], True, health_pb2.HealthCheckResponse.SERVING)):
        with grpc.insecure_channel(server.url) as channel:
            assert pb_grpc.GRPCInferenceServiceStub(channel).ServerReady(pb.ServerReadyRequest()).ready == ready
            assert health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest()).status == status


def test_model_control_is_refused_in_mode_none(servers):
    with grpc.insecure_channel(servers[0].url) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for call, request in ((stub.RepositoryModelUnload, pb.RepositoryModelUnloadRequest(model_name="lenet")),
                              (stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name="expensive"))):
            with pytest.raises(grpc.RpcError) as info:
                call(request)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "--model-control-mode none" in info.value.details()
        assert stub.ModelReady(pb.ModelReadyRequest(name="lenet")).ready  # still loaded


@pytest.mark.parametrize("name", sorted(set(HOSTILE_SPECS) - {"huge"}))
def test_check_refuses_the_same_specs_quickly(cli, repository, name):
    started = time.monotonic()
    run = cli("check", repository / name / "1" / "spec.yaml")
    assert run.code == 2 and "Traceback" not in run.err, run.err
    assert time.monotonic() - started < 5
