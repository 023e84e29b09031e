"""specs/squeezenet.yaml against torchvision's squeezenet1_0/1_1 and the
paper (Iandola et al., 2016)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torchvision

from compiler.api import compile_file
from timeline_util import analyze_file, check_against, reference_macs, reference_params, total_macs, total_params

SPEC = Path(__file__).resolve().parents[1] / "specs" / "squeezenet.yaml"
VARIANTS = ["1_0", "1_1"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_verify(variant):
    result = check_against(compile_file(SPEC, variant), f"torchvision:squeezenet{variant}")
    assert result.max_rel < 1e-5, result.as_dict()


@pytest.mark.parametrize("variant", VARIANTS)
def test_counts_equal_torchvision(variant):
    graph = analyze_file(SPEC, variant)
    reference = getattr(torchvision.models, f"squeezenet{variant}")(weights=None)
    assert total_params(graph) == reference_params(reference)
    assert total_macs(graph) == reference_macs(reference, 224)


def test_paper_table1():
    graph = analyze_file(SPEC, "1_0")
    # Table 1, "# parameter before pruning", the total row.
    assert total_params(graph) == 1_248_424
    # Table 1's output sizes: fire9 13x13x512, conv10 13x13x1000.
    assert graph.nodes["fire.7.concat"].out.shape == ("N", 512, 13, 13)
    assert graph.nodes["conv10"].out.shape == ("N", 1000, 13, 13)
    # maxpool1 55x55x96 in the table is 54x54 with ceil rounding (from 109x109).
    assert graph.nodes["maxpool1"].out.shape == ("N", 96, 54, 54)


def test_version_1_1_needs_less_computation():
    # The authors' repository (forresti/SqueezeNet, SqueezeNet_v1.1): "2.4x
    # less computation than SqueezeNet v1.0, without sacrificing accuracy".
    ratio = total_macs(analyze_file(SPEC, "1_0")) / total_macs(analyze_file(SPEC, "1_1"))
    assert abs(ratio - 2.4) < 0.1, ratio  # 2.35
