"""`netspec verify` against torchvision: AlexNet and VGG-11/13/16/19 give
torchvision's outputs on torchvision's weights (relative difference under
1e-5), and verify fails, with a non-zero exit, where the spec differs."""
from __future__ import annotations

import json

import pytest

from compiler.api import compile_file
from compiler.tools.verify import verify

from common import SPECS

CASES = [("alexnet", "torchvision", "alexnet"), ("vgg", "A", "vgg11"), ("vgg", "B", "vgg13"),
         ("vgg", "D", "vgg16"), ("vgg", "E", "vgg19")]


@pytest.mark.parametrize("spec,variant,reference", CASES, ids=[c[2] for c in CASES])
def test_verify_equals_torchvision(spec, variant, reference):
    model = compile_file(SPECS / f"{spec}.yaml", variant)
    result = verify(model, f"torchvision:{reference}")
    assert result.ok
    assert result.max_rel < 1e-5
    assert result.tensors == len(model.module.state_dict())
    # Our modules register layers in torchvision's order but under their own
    # names (fc6, features.0.layer.0.conv), so the weights are matched by order.
    assert result.matched_by == "order"


def test_verify_command_prints_json(cli):
    run = cli("verify", SPECS / "alexnet.yaml", "--variant", "torchvision", "--against", "torchvision:alexnet", "--json")
    assert run.code == 0, run.err
    data = json.loads(run.out)
    assert data["ok"] is True and data["max_rel_diff"] < 1e-5
    assert data["model"] == "alexnet" and data["variant"] == "torchvision"


def test_verify_fails_for_a_different_activation(cli, tmp_path):
    # Same layers and weights, one activation changed: the outputs differ.
    text = (SPECS / "alexnet.yaml").read_text()
    assert "relu5: {op: relu}" in text
    spec = tmp_path / "alexnet.yaml"
    spec.write_text(text.replace("relu5: {op: relu}", "relu5: {op: sigmoid}"))
    run = cli("verify", spec, "--variant", "torchvision", "--against", "torchvision:alexnet")
    assert run.code == 1
    assert "FAILED" in run.out


def test_verify_fails_for_a_different_pooling(cli, tmp_path):
    text = (SPECS / "alexnet.yaml").read_text()
    spec = tmp_path / "alexnet.yaml"
    spec.write_text(text.replace("pool5: {op: max_pool2d", "pool5: {op: avg_pool2d"))
    run = cli("verify", spec, "--variant", "torchvision", "--against", "torchvision:alexnet", "--json")
    assert run.code == 1
    assert json.loads(run.out)["ok"] is False


def test_verify_the_notes_alexnet_against_torchvision_cannot_match(cli):
    # The two-GPU original has grouped convolutions of other widths: no
    # weight matching exists, which is a one-line spec error, exit 2.
    run = cli("verify", SPECS / "alexnet.yaml", "--against", "torchvision:alexnet")
    assert run.code == 2
    assert "Traceback" not in run.err
    assert run.err.startswith("error: ")


def test_verify_unknown_reference(cli):
    run = cli("verify", SPECS / "lenet.yaml", "--against", "torchvision:lenet5")
    assert run.code == 2
    assert "torchvision has no model 'lenet5'" in run.err
