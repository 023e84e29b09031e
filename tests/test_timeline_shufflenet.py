"""specs/shufflenet.yaml against torchvision's shufflenet_v2_x0_5 .. x2_0
and Table 5 of Ma et al., 2018."""
from __future__ import annotations

import pytest

from compiler.api import compile_text
from common import SPECS
from timeline_util import analyze_file, check_against, total_macs

SPEC = SPECS / "shufflenet.yaml"
VARIANTS = ["v2_x0_5", "v2_x1_0", "v2_x1_5", "v2_x2_0"]
# Table 5, "FLOPs" (multiply-adds), in millions.
PAPER_MFLOPS = {"v2_x0_5": 41, "v2_x1_0": 146, "v2_x1_5": 299, "v2_x2_0": 591}


@pytest.mark.parametrize("variant", VARIANTS)
def test_complexity_near_table5(variant):
    # Our count is convolutions and the classifier only; the paper's is 1-1.5%
    # higher (it does not say what else it counts).
    macs = total_macs(analyze_file(SPEC, variant)) / 1e6
    assert 0.98 < macs / PAPER_MFLOPS[variant] <= 1.0, macs


def test_the_shuffle_is_what_mixes_the_halves():
    text = SPEC.read_text()
    assert "shuffle: {op: channel_shuffle, groups: 2}" in text
    model = compile_text(text.replace("shuffle: {op: channel_shuffle, groups: 2}", "shuffle: {op: identity}"),
                         "v2_x0_5", file=str(SPEC))
    assert not check_against(model, "torchvision:shufflenet_v2_x0_5").ok


def test_split_halves_and_shapes():
    graph = analyze_file(SPEC, "v2_x1_0")
    assert graph.nodes["stage2.units.1.left"].out.shape == ("N", 58, 28, 28)
    assert graph.nodes["stage2.units.1.right"].out.shape == ("N", 58, 28, 28)
    assert "stage2.units.0.left" not in graph.nodes  # the downsampling unit does not split
    assert graph.nodes["stage4.units.3.shuffle"].out.shape == ("N", 464, 7, 7)
