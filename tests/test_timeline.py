"""The timeline specs against their references, one table for all of them,
and docs/timeline.md held to that table and to what the specs compute.

Each row is a spec and variant with its reference implementation (None:
checked against the paper, in the spec's own test file).  For a row with a
reference, the parameters must equal the reference's; with `macs`, the
multiply-adds must equal what torch's FlopCounterMode counts on the
reference; with `verify`, the reference's weights loaded into the spec's
module must give its outputs (batch norm with random statistics).  What is
particular to one network (a paper's table, mistakes that must be seen)
stays in its own test file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from common import ROOT, SPECS
from timeline_util import (analyze_file, build_reference, check_against, compile_file, edit_spec,
                           reference_macs, reference_params, total_macs, total_params)


@dataclass(frozen=True)
class Row:
    spec: str
    variant: str | None
    reference: str | None  # SOURCE:NAME, or None: the paper is the reference
    verify: bool = True  # compared output by output here (False: too slow for every run)
    macs: bool = True  # multiply-adds compared with torch's flop counter
    edits: tuple[tuple[str, str], ...] = ()  # spec edits that make verify quicker (a smaller image)
    matched_by: str | None = None  # how verify must match the weights, where that is the point

    @property
    def id(self) -> str:
        return f"{self.spec}-{self.variant or 'default'}"


def _efficientnet(variant: str, verify: bool, macs: bool) -> Row:
    return Row("efficientnet", variant, f"torchvision:efficientnet_{variant}", verify, macs)


ROWS = [
    Row("zfnet", None, None),
    Row("squeezenet", "1_0", "torchvision:squeezenet1_0"),
    Row("squeezenet", "1_1", "torchvision:squeezenet1_1"),
    # 128x128 instead of Table 1's 256x256 keeps verify quick; the weights do not depend on the size.
    Row("darknet", "53", "timm:darknet53", edits=(("  size: 256", "  size: 128"),)),
    Row("darknet", "19", None),
    Row("xception", None, "timm:legacy_xception", matched_by="order"),
    Row("mobilenet", "v1", "timm:mobilenetv1_100"),
    Row("mobilenet", "v2", "torchvision:mobilenet_v2"),
    Row("mobilenet", "v3_large", "torchvision:mobilenet_v3_large"),
    Row("mobilenet", "v3_small", "torchvision:mobilenet_v3_small"),
    *(Row("shufflenet", v, f"torchvision:shufflenet_{v}") for v in ("v2_x0_5", "v2_x1_0", "v2_x1_5", "v2_x2_0")),
    # b0 is the table itself, b3 scales depth by 1.4 and width by 1.2, v2_s has fused stages.
    _efficientnet("b0", True, True),
    *(_efficientnet(v, False, False) for v in ("b1", "b2")),
    _efficientnet("b3", True, False),
    *(_efficientnet(v, False, False) for v in ("b4", "b5", "b6", "b7")),
    _efficientnet("v2_s", True, True),
    Row("cspnet", "cspdarknet53", "timm:cspdarknet53"),
    Row("cspnet", "cspresnet50", "timm:cspresnet50"),
    Row("ghostnet", "0_5", "timm:ghostnet_050", verify=False),
    Row("ghostnet", "1_0", "timm:ghostnet_100"),
    Row("ghostnet", "1_3", "timm:ghostnet_130"),
]
REFERENCED = [r for r in ROWS if r.reference]


@pytest.mark.parametrize("row", [r for r in REFERENCED if r.verify], ids=lambda r: r.id)
def test_verify(row):
    model = edit_spec(SPECS / f"{row.spec}.yaml", row.variant, *row.edits) if row.edits \
        else compile_file(SPECS / f"{row.spec}.yaml", row.variant)
    result = check_against(model, row.reference)
    assert result.ok and result.max_rel < 1e-5, result.as_dict()
    if row.matched_by:
        assert result.matched_by == row.matched_by


@pytest.mark.parametrize("row", REFERENCED, ids=lambda r: r.id)
def test_counts_equal_the_reference(row):
    graph = analyze_file(SPECS / f"{row.spec}.yaml", row.variant)
    reference = build_reference(row.reference)
    assert total_params(graph) == reference_params(reference)
    if row.macs:
        (image,) = graph.inputs.values()
        assert total_macs(graph) == reference_macs(reference, image.shape[-1])


# docs/timeline.md: | `spec` | `variant` or - | CxHxW | params | multiply-adds M | reference or paper (test) | diff |
DOC_ROW = re.compile(r"^\| `(\w+)` \| (?:`([\w.]+)`|-) \| (\d+)x(\d+)x(\d+) \| ([\d,]+) \| ([\d,.]+)M \| "
                     r"(paper \(test\)|[\w.]+:\w+) \|")


def doc_rows() -> list[tuple]:
    lines = [line for line in (ROOT / "docs" / "timeline.md").read_text().splitlines() if line.startswith("| `")]
    found = [m.groups() for line in lines if (m := DOC_ROW.match(line))]
    assert lines and len(found) == len(lines), "some of the table's rows no longer parse"
    return found


def test_doc_lists_the_rows_of_this_table():
    listed = [(spec, variant, None if ref == "paper (test)" else ref) for spec, variant, *_, ref in doc_rows()]
    assert listed == [(r.spec, r.variant, r.reference) for r in ROWS]


@pytest.mark.parametrize("doc", doc_rows(), ids=lambda d: f"{d[0]}-{d[1] or 'default'}")
def test_doc_row_matches_the_spec(doc):
    spec, variant, c, h, w, params, macs, _ = doc
    graph = analyze_file(SPECS / f"{spec}.yaml", variant)
    (image,) = graph.inputs.values()
    assert list(image.shape[1:]) == [int(c), int(h), int(w)]
    assert total_params(graph) == int(params.replace(",", ""))
    assert f"{total_macs(graph) / 1e6:,.1f}" == macs
