"""specs/xception.yaml against timm's legacy_xception (Chollet, 2017, Fig. 5)."""
from __future__ import annotations

import pytest
import timm

from compiler.api import analyze_text
from common import SPECS
from timeline_util import edit_spec, analyze_file, check_against, total_params

SPEC = SPECS / "xception.yaml"
REFERENCE = "timm:legacy_xception"
PARAMS = 22_855_952


@pytest.fixture(scope="module")
def reference():
    return timm.create_model("legacy_xception", pretrained=False)


def edited(old: str, new: str):
    """The spec with one line edited (and 128x128 images, for speed), as a user would edit it."""
    return edit_spec(SPEC, "legacy_xception", (old, new), ("  size: 299", "  size: 128"))


def test_flows_follow_fig5():
    graph = analyze_file(SPEC)
    shape = lambda name: graph.nodes[name].out.shape  # noqa: E731
    assert shape("conv2.relu") == ("N", 64, 147, 147)
    assert [shape(f"entry.{m}.add") for m in range(3)] == [
        ("N", 128, 74, 74), ("N", 256, 37, 37), ("N", 728, 19, 19)]
    assert [shape(f"middle.{m}.add") for m in range(8)] == [("N", 728, 19, 19)] * 8
    assert shape("exit.add") == ("N", 1024, 10, 10)
    assert shape("relu4") == ("N", 2048, 10, 10)
    convs = [n for n in graph.nodes.values() if n.op == "conv2d"]
    # Sec. 3: "36 convolutional layers": the stem's two and 34 separable ones
    # (3 x 2 entry, 8 x 3 middle, 2 exit, 2 after it), not counting shortcuts.
    assert sum(n.name.endswith(".depthwise") for n in convs) == 34
    assert sum(n.name.endswith(".pointwise") for n in convs) == 34
    assert sum(n.name.endswith(".skip") for n in convs) == 4
    assert len(convs) == 2 + 34 * 2 + 4
    # Every module is residual: 3 entry, 8 middle, 1 exit.
    assert sum(n.op == "add" for n in graph.nodes.values()) == 12


def test_relu_precedes_each_separable_convolution():
    graph = analyze_file(SPEC)
    relu_before = [n.name for n in graph.nodes.values() if n.op == "relu"
                   and n.name.startswith(("entry", "middle", "exit"))]
    # All separable convolutions of the modules but the very first (the stem's ReLU serves it).
    assert len(relu_before) == 3 * 2 + 8 * 3 + 2 - 1
    assert "entry.0.rep.0.relu" not in graph.nodes and "entry.1.rep.0.relu" in graph.nodes


# Each edit keeps every weight's shape, so only the outputs can tell it apart.
MISTAKES = [
    # No activation between the depthwise and the pointwise convolution (Sec. 4.7).
    ("      pointwise: {op: conv2d", "      mid: {op: relu}\n      pointwise: {op: conv2d"),
    # The identity shortcut carries the module's input before its ReLU.
    ("\"${'skipbn' if project else 'x'}\"", "\"${'skipbn' if project else 'rep.0.relu'}\""),
    # The exit flow's last two separable convolutions are activated after, not before.
    ("conv3: {block: separable, out: \"$exit[1]\", relu: false}",
     "conv3: {block: separable, out: \"$exit[1]\"}"),
]


@pytest.mark.parametrize("old,new", MISTAKES)
def test_mistakes_are_seen(old, new, reference):
    result = check_against(edited(old, new), REFERENCE, reference)
    assert not result.ok, result.as_dict()


def test_grow_first_decides_the_exit_module_widths():
    # timm's block12 keeps 728 through its first separable convolution and
    # widens in the second; widening first costs more parameters.
    graph = analyze_file(SPEC)
    assert graph.nodes["exit.rep.0.pointwise"].out.shape[1] == 728
    assert graph.nodes["exit.rep.1.pointwise"].out.shape[1] == 1024
    text = SPEC.read_text().replace("stride: 2, grow_first: false}", "stride: 2}")
    assert "stride: 2, grow_first: false}" in SPEC.read_text()
    assert total_params(analyze_text(text, "legacy_xception", file=str(SPEC))) != PARAMS
