"""specs/mobilenet.yaml against torchvision's mobilenet_v2 and
mobilenet_v3_large/small and timm's mobilenetv1_100."""
from __future__ import annotations

import pytest
import torchvision

from compiler.api import compile_text
from common import SPECS
from timeline_util import edit_spec, analyze_file, check_against, reference_params

SPEC = SPECS / "mobilenet.yaml"
REFERENCES = {"v1": "timm:mobilenetv1_100", "v2": "torchvision:mobilenet_v2",
              "v3_large": "torchvision:mobilenet_v3_large", "v3_small": "torchvision:mobilenet_v3_small"}


def with_width(variant: str, width: float):
    """The spec with its width multiplier set, as a user would edit it."""
    return edit_spec(SPEC, variant, ("  width: 1.0 ", f"  width: {width} "))


@pytest.mark.parametrize("variant,width", [("v2", 0.5), ("v2", 1.4), ("v3_large", 0.75), ("v3_small", 0.5)])
def test_width_multiplier(variant, width):
    model = with_width(variant, width)
    reference = getattr(torchvision.models, f"mobilenet_{variant}")(weights=None, width_mult=width)
    assert sum(p.numel() for p in model.module.parameters()) == reference_params(reference)
    result = check_against(model, REFERENCES[variant], reference)
    assert result.max_rel < 1e-5, result.as_dict()


def test_residual_links_where_stride_and_width_allow():
    # v2, Table 2: a stage of n blocks has n - 1 residual links, plus none in
    # the first stage (n = 1); 1+2+3+1+2+2+0 = 10 adds (the first block of
    # each stage changes stride or width).
    graph = analyze_file(SPEC, "v2")
    assert sum(n.op == "add" for n in graph.nodes.values()) == 10
    # v3 small: squeeze-and-excitation in 9 of its 11 blocks (Table 2 of the v3 paper).
    graph = analyze_file(SPEC, "v3_small")
    assert sum(n.op == "mul" for n in graph.nodes.values()) == 9


def test_v3_eps_matters():
    # torchvision's v3 uses batch-norm eps 1e-3; with the default 1e-5 the
    # outputs differ, so the comparison would see a wrong eps.
    eps = "${0.001 if version[:2] == 'v3' else 1e-5}"
    assert eps in SPEC.read_text()
    text = SPEC.read_text().replace(eps, "1e-5")
    model = compile_text(text, "v3_small", file=str(SPEC))
    result = check_against(model, REFERENCES["v3_small"])
    assert not result.ok
