"""specs/squeezenet.yaml against torchvision's squeezenet1_0/1_1 and the
paper (Iandola et al., 2016)."""
from __future__ import annotations

from common import SPECS
from timeline_util import analyze_file, total_macs, total_params

SPEC = SPECS / "squeezenet.yaml"
VARIANTS = ["1_0", "1_1"]


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
