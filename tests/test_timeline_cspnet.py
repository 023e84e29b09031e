"""specs/cspnet.yaml: CSPDarknet53 and CSPResNet50 against timm's
cspdarknet53 and cspresnet50 (Wang et al., 2020)."""
from __future__ import annotations

import pytest
import timm
import torch

from common import SPECS
from timeline_util import analyze_file, check_against, edit_spec, total_params

SPEC = SPECS / "cspnet.yaml"
PARAMS = {"cspdarknet53": 27_642_184, "cspresnet50": 21_616_168}


def edited(old: str, new: str, variant: str):
    """The spec with one line edited (and 128x128 images, for speed), as a user would edit it."""
    return edit_spec(SPEC, variant, (old, new), ("  size: 256", "  size: 128"))


@pytest.mark.parametrize("variant", list(PARAMS))
def test_convolutions_are_timms(variant):
    # Parameters and multiply-adds equal timm's: tests/test_timeline.py.
    graph = analyze_file(SPEC, variant)
    assert total_params(graph) == PARAMS[variant]
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in timm.create_model(variant, pretrained=False).modules())
    assert sum(n.op == "conv2d" for n in graph.nodes.values()) == convs


# Each edit keeps every weight's shape, so only the outputs can tell it apart.
MISTAKES = [
    # The blocks take the second half of the split, the first bypasses them.
    ("cross: {op: chunk, chunks: 2, index: 0}", "cross: {op: chunk, chunks: 2, index: 1}", "cspdarknet53"),
    # The bypassing half comes first in the concatenation.
    ("in: [cross, conv_transition_b]", "in: [conv_transition_b, cross]", "cspresnet50"),
    # cspresnet50's widening 1x1 is linear (cross_linear), cspdarknet53's is not.
    ("    linear_exp: true\n", "", "cspresnet50"),
    # timm's leaky ReLU has torch's default slope, not darknet's 0.1.
    ("  slope: 0.01 ", "  slope: 0.1 ", "cspresnet50"),
]


@pytest.mark.parametrize("old,new,variant", MISTAKES)
def test_mistakes_are_seen(old, new, variant):
    result = check_against(edited(old, new, variant), f"timm:{variant}")
    assert not result.ok, result.as_dict()


@pytest.mark.parametrize("variant,sizes,widths", [
    ("cspdarknet53", [128, 64, 32, 16, 8], [64, 128, 256, 512, 1024]),
    ("cspresnet50", [64, 32, 16, 8], [128, 256, 512, 1024]),
])
def test_stages(variant, sizes, widths):
    graph = analyze_file(SPEC, variant)
    stages = range(len(sizes))
    assert [graph.nodes[f"stages.{s}.conv_transition.act"].out.shape for s in stages] == [
        ("N", c, h, h) for c, h in zip(widths, sizes)]
    for s in stages:
        # The widened map splits into equal halves; the blocks see one and
        # hand back as many channels as bypass them.
        widened = graph.nodes[f"stages.{s}.conv_exp.bn"].out.shape[1]
        assert graph.nodes[f"stages.{s}.cross"].out.shape[1] == widened // 2
        assert graph.nodes[f"stages.{s}.part"].out.shape[1] == widened // 2
        assert graph.nodes[f"stages.{s}.conv_transition_b.act"].out.shape[1] == widened // 2
        assert graph.nodes[f"stages.{s}.concat"].out.shape[1] == widened
    # Residual links: one per block, 1+2+8+8+4 = 23 and 3+3+5+2 = 13.
    assert sum(n.op == "add" for n in graph.nodes.values()) == {"cspdarknet53": 23, "cspresnet50": 13}[variant]
