"""`netspec diff`: the semantic difference of two specs after expansion,
checked against counts we did not compute (torchvision's models) and
against tiny specs whose every difference is known."""
from __future__ import annotations

import json
import textwrap

import pytest

from common import SPECS
from compiler.api import analyze_file, analyze_text
from compiler.cli import main
from compiler.tools.diff import diff, diff_dict, diff_text

BASE = textwrap.dedent("""\
    name: tiny
    inputs:
      x: {shape: [N, 3, 32, 32]}
    nodes:
      conv: {op: conv2d, out_channels: 8, kernel: 3, padding: 1}
      act: {op: relu}
      pool: {op: max_pool2d, kernel: 2}
      flat: {op: flatten}
      fc: {op: linear, out_features: 10}
    outputs: {y: fc}
""")


def tiny(text: str = BASE):
    return analyze_text(text, file="tiny.yaml")


def test_resnet_50_to_101_adds_seventeen_bottlenecks_and_the_counts_torchvision_has():
    torchvision = pytest.importorskip("torchvision")
    a, b = analyze_file(SPECS / "resnet.yaml", "50"), analyze_file(SPECS / "resnet.yaml", "101")
    d = diff_dict(diff(a, b))
    assert [g["name"] for g in d["added"]] == [f"layer3.{i}" for i in range(6, 23)]
    assert {g["block"] for g in d["added"]} == {"bottleneck"} and d["removed"] == []
    # Only what reads layer3's last block sees another input; no op, parameter or shape changed.
    assert {c["name"]: set(c) - {"name", "params_delta", "macs_delta"} for c in d["changed"]} == {
        "layer4.0.conv1": {"inputs"}, "layer4.0.downsample.conv": {"inputs"}}
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    reference = count(torchvision.models.resnet101()) - count(torchvision.models.resnet50())
    assert d["params_delta"] == sum(g["params"] for g in d["added"]) == reference


def test_the_same_spec_has_no_difference_and_exit_code_says_so(capsys):
    assert diff(tiny(), tiny()).empty
    spec = str(SPECS / "lenet.yaml")
    assert main(["diff", spec, spec, "--exit-code"]) == 0
    assert "no difference after expansion" in capsys.readouterr().out
    assert main(["diff", spec, str(SPECS / "alexnet.yaml"), "--exit-code"]) == 1
    assert main(["diff", spec, str(SPECS / "alexnet.yaml")]) == 0


def test_a_default_written_out_is_no_difference():
    assert diff(tiny(), tiny(BASE.replace("padding: 1}", "padding: 1, stride: 1}"))).empty


def test_changed_parameter_shape_and_counts_of_each_node():
    d = diff(tiny(), tiny(BASE.replace("out_channels: 8", "out_channels: 16")))
    changes = {c.name: c for c in d.changed}
    assert changes["conv"].params == {"out_channels": (8, 16)}
    assert changes["conv"].shape == ("[N, 8, 32, 32]", "[N, 16, 32, 32]")
    assert changes["conv"].params_delta == 16 * 3 * 9 + 16 - (8 * 3 * 9 + 8)
    assert changes["fc"].params == {} and changes["fc"].params_delta == 10 * 8 * 16 * 16
    assert set(changes) == {"conv", "act", "pool", "flat", "fc"}  # every shape after conv doubled its channels
    assert not d.added and not d.removed and not d.inputs and not d.outputs


def test_changed_op_added_node_rewired_input_and_output_shape():
    other = BASE.replace("act: {op: relu}", "act: {op: gelu}").replace(
        "fc: {op: linear, out_features: 10}",
        "fc: {op: linear, out_features: 10}\n  head: {op: linear, out_features: 5}").replace("y: fc", "y: head")
    d = diff(tiny(), tiny(other))
    changes = {c.name: c for c in d.changed}
    assert changes["act"].op == ("relu", "gelu") and changes["act"].params == {}
    assert [g.name for g in d.added] == ["head"] and d.added[0].block is None and d.added[0].params == 55
    assert d.outputs == {"y": ("[N, 10]", "[N, 5]")}
    text = diff_text(d)
    assert "  ~ act: op relu -> gelu" in text
    assert "  + head (linear): params +55, MACs +50" in text
    assert "output y: [N, 10] -> [N, 5]" in text


def test_renamed_input_is_one_removed_and_one_added():
    d = diff(tiny(), tiny(BASE.replace("  x: {shape", "  image: {shape")))
    assert d.inputs == {"x": ("[N, 3, 32, 32]", None), "image": (None, "[N, 3, 32, 32]")}
    assert [(c.name, c.inputs) for c in d.changed] == [("conv", (["x"], ["image"]))]


def test_json_output_of_the_command(capsys):
    vgg = str(SPECS / "vgg.yaml")
    assert main(["diff", vgg, vgg, "--variant", "A", "--variant-b", "B", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["a"]["variant"], data["b"]["variant"]) == ("A", "B")
    assert data["b"]["params"] - data["a"]["params"] == data["params_delta"] > 0
    assert data["same"] is False and data["added"]


def test_a_bad_spec_on_either_side_is_a_located_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("kernel: 3", "kernel: 99"))
    assert main(["diff", str(SPECS / "lenet.yaml"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:5" in err and "Traceback" not in err
    assert main(["diff", str(tmp_path / "missing.yaml"), str(bad)]) == 2
    assert "netspec" in capsys.readouterr().err
