"""specs/efficientnet.yaml against torchvision's efficientnet_b0 .. b7 and
efficientnet_v2_s: compound scaling written as spec arithmetic must give
torchvision's layers exactly."""
from __future__ import annotations

import pytest

from common import SPECS
from timeline_util import analyze_file

SPEC = SPECS / "efficientnet.yaml"
VARIANTS = [f"b{k}" for k in range(8)] + ["v2_s"]
# Input resolution per variant, as torchvision's weights are evaluated.
RESOLUTION = {"b0": 224, "b1": 240, "b2": 260, "b3": 300, "b4": 380, "b5": 456, "b6": 528, "b7": 600,
              "v2_s": 384}


@pytest.mark.parametrize("variant", VARIANTS)
def test_resolution_is_torchvisions_evaluation_size(variant):
    # The parameters equal torchvision's for every variant: tests/test_timeline.py.
    (image,) = analyze_file(SPEC, variant).inputs.values()
    assert list(image.shape[2:]) == [RESOLUTION[variant]] * 2


def test_depth_scaling_rounds_up():
    # B3: depth 1.4 over B0's layers per stage [1, 2, 2, 3, 3, 4, 1], rounded
    # up; the first block of a stage changes width or stride, so each stage
    # has one residual link fewer than it has layers.
    graph = analyze_file(SPEC, "b3")
    residual_adds = sum(n.op == "add" for n in graph.nodes.values())
    layers = [2, 3, 3, 5, 5, 6, 2]
    assert residual_adds == sum(n - 1 for n in layers)
