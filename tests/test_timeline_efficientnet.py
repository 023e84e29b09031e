"""specs/efficientnet.yaml against torchvision's efficientnet_b0 .. b7 and
efficientnet_v2_s: compound scaling written as spec arithmetic must give
torchvision's layers exactly."""
from __future__ import annotations

from pathlib import Path

import pytest
import torchvision

from compiler.api import compile_file
from timeline_util import analyze_file, check_against, reference_macs, reference_params, total_macs, total_params

SPEC = Path(__file__).resolve().parents[1] / "specs" / "efficientnet.yaml"
VARIANTS = [f"b{k}" for k in range(8)] + ["v2_s"]
# Input resolution per variant, as torchvision's weights are evaluated.
RESOLUTION = {"b0": 224, "b1": 240, "b2": 260, "b3": 300, "b4": 380, "b5": 456, "b6": 528, "b7": 600,
              "v2_s": 384}


def reference(variant: str):
    return getattr(torchvision.models, f"efficientnet_{variant}")(weights=None)


@pytest.mark.parametrize("variant", VARIANTS)
def test_params_and_resolution_equal_torchvision(variant):
    graph = analyze_file(SPEC, variant)
    assert total_params(graph) == reference_params(reference(variant))
    (image,) = graph.inputs.values()
    assert list(image.shape[2:]) == [RESOLUTION[variant]] * 2


# b0 is the table itself; b3 scales depth by 1.4 and width by 1.2; v2_s has
# fused stages.
@pytest.mark.parametrize("variant", ["b0", "b3", "v2_s"])
def test_verify(variant):
    result = check_against(compile_file(SPEC, variant), f"torchvision:efficientnet_{variant}")
    assert result.max_rel < 1e-5, result.as_dict()


@pytest.mark.parametrize("variant", ["b0", "v2_s"])
def test_macs_equal_flop_counter(variant):
    graph = analyze_file(SPEC, variant)
    assert total_macs(graph) == reference_macs(reference(variant), RESOLUTION[variant])


def test_depth_scaling_rounds_up():
    # B3: depth 1.4 over B0's layers per stage [1, 2, 2, 3, 3, 4, 1], rounded
    # up; the first block of a stage changes width or stride, so each stage
    # has one residual link fewer than it has layers.
    graph = analyze_file(SPEC, "b3")
    residual_adds = sum(n.op == "add" for n in graph.nodes.values())
    layers = [2, 3, 3, 5, 5, 6, 2]
    assert residual_adds == sum(n - 1 for n in layers)
