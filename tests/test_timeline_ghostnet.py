"""specs/ghostnet.yaml against timm's ghostnet_050, ghostnet_100 and ghostnet_130."""
from __future__ import annotations

from timm.models.ghostnet import _create_ghostnet

from common import SPECS
from timeline_util import edit_spec, analyze_file, check_against, reference_params

SPEC = SPECS / "ghostnet.yaml"
REFERENCES = {"0_5": "ghostnet_050", "1_0": "ghostnet_100", "1_3": "ghostnet_130"}


def edited(old: str, new: str, variant: str = "1_0"):
    assert SPEC.read_text().count(old) == 1, old  # one place: the edit means what the test says
    return edit_spec(SPEC, variant, (old, new))


def test_width_edit():
    # A width no variant names, set in the spec as a user would.
    model = edited("  width: 1.0\n", "  width: 0.75\n")
    reference = _create_ghostnet("ghostnet_100", width=0.75)
    assert sum(p.numel() for p in model.module.parameters()) == reference_params(reference)
    result = check_against(model, "timm:ghostnet_100", reference)
    assert result.ok and result.max_rel < 1e-5, result.as_dict()


def test_table_1_structure():
    graph = analyze_file(SPEC, "1_0")
    ops = [n.op for n in graph.nodes.values()]
    # 16 ghost bottlenecks, each with a residual add; squeeze-and-excite in 7 (Table 1).
    assert ops.count("add") == 16
    assert ops.count("mul") == 7
    # Two ghost modules per bottleneck, each a concatenation of primary and cheap features.
    assert ops.count("concat") == 32
    # A convolutional shortcut where the block strides (4) or widens at stride 1
    # (80 -> 112); identity elsewhere.
    shortcuts = sorted({int(name.split(".")[1]) for name in graph.nodes if ".shortcut_pw." in name})
    assert shortcuts == [1, 3, 5, 9, 11]


def test_hard_sigmoid_gate_matters():
    # timm gates squeeze-and-excite with a hard sigmoid; a logistic gate would differ.
    model = edited("gate: {op: hardsigmoid}", "gate: {op: sigmoid}")
    result = check_against(model, "timm:ghostnet_100")
    assert not result.ok
