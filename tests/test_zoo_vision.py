"""ViT, ConvNeXt and U-Net: the specs against their references, and
docs/vision.md held to what the specs compute.

ViT-B/32 and ConvNeXt-T are verified here with torchvision's weights
loaded into the spec's module (constant-initialised tensors, such as the
layer scale of 1e-6 or ViT's zero head, given random values first, so that
they cannot hide a misplaced branch); ConvNeXt at 64x64, since its weights
do not depend on the size.  ViT-B/16 and ConvNeXt-S and -B take longer and
are verified by bench/verify_vision.py; their parameters and multiply-adds
are compared here with torchvision's, counted on the meta device (no
weights drawn, no arithmetic done).  The U-Net is held to a module written
by hand from the paper's Fig. 1.
"""
from __future__ import annotations

import re

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from common import ROOT, SPECS
from compiler.tools.verify import copy_weights
from timeline_util import analyze_file, build_reference, check_against, compile_file, edit_spec, total_macs, total_params

COUNTED = [("vit", "b_16", "vit_b_16"), ("vit", "b_32", "vit_b_32"), ("convnext", "tiny", "convnext_tiny"),
           ("convnext", "small", "convnext_small"), ("convnext", "base", "convnext_base")]


def test_vit_b_32_equals_torchvision():
    model = compile_file(SPECS / "vit.yaml", "b_32")
    result = check_against(model, "torchvision:vit_b_32")
    assert result.ok and result.max_rel < 1e-5, result.as_dict()
    # the class token, the patch convolution, the position embedding, 12 blocks of 12, the final norm and head
    assert result.tensors == 152 == len(model.module.state_dict())


@pytest.fixture(scope="module")
def convnext_tiny():
    return build_reference("torchvision:convnext_tiny")


def test_convnext_tiny_equals_torchvision(convnext_tiny):
    model = edit_spec(SPECS / "convnext.yaml", "tiny", ("shape: [N, 3, 224, 224]", "shape: [N, 3, 64, 64]"))
    result = check_against(model, "torchvision:convnext_tiny", convnext_tiny)
    assert result.ok and result.max_rel < 1e-5, result.as_dict()


def test_a_wrong_branch_is_seen_through_the_layer_scale(convnext_tiny):
    # torchvision initialises the layer scale to 1e-6, so every block's
    # branch adds about a millionth: without the random values verify gives
    # it, a block with the wrong activation would pass.
    model = edit_spec(SPECS / "convnext.yaml", "tiny", ("shape: [N, 3, 224, 224]", "shape: [N, 3, 64, 64]"),
                      ("act: {op: gelu}", "act: {op: relu}"))
    result = check_against(model, "torchvision:convnext_tiny", convnext_tiny)
    assert not result.ok and result.max_rel > 1e-3, result.as_dict()


@pytest.mark.parametrize("spec, variant, name", COUNTED, ids=[c[2] for c in COUNTED])
def test_counts_equal_torchvision(spec, variant, name):
    graph = analyze_file(SPECS / f"{spec}.yaml", variant)
    import torchvision

    with torch.device("meta"):
        reference = torchvision.models.get_model(name).eval()
        image = torch.zeros(1, 3, 224, 224)
    # On the meta device nn.MultiheadAttention takes its unfused path, whose
    # projections and products the flop counter sees.
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        reference(image)
    assert total_params(graph) == sum(p.numel() for p in reference.parameters())
    assert total_macs(graph) == counter.get_total_flops() // 2


class DoubleConv(nn.Sequential):
    def __init__(self, inp: int, out: int):
        super().__init__(nn.Conv2d(inp, out, 3, padding=1), nn.ReLU(), nn.Conv2d(out, out, 3, padding=1), nn.ReLU())


class Up(nn.Module):
    def __init__(self, inp: int, out: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(inp, out, 2, stride=2)
        self.convs = DoubleConv(2 * out, out)

    def forward(self, x, skip):
        return self.convs(torch.cat([skip, self.up(x)], 1))


class UNet(nn.Module):
    """Ronneberger et al. (2015), Fig. 1, with padded 3x3 convolutions."""

    def __init__(self, inp: int = 1, classes: int = 2):
        super().__init__()
        widths = [64, 128, 256, 512, 1024]
        self.down = nn.ModuleList(DoubleConv(a, b) for a, b in zip([inp, *widths], widths))
        self.up = nn.ModuleList(Up(a, b) for a, b in zip(widths[:0:-1], widths[-2::-1]))
        self.classify = nn.Conv2d(64, classes, 1)

    def forward(self, x):
        skips = []
        for i, down in enumerate(self.down):
            x = down(nn.functional.max_pool2d(x, 2) if i else x)
            skips.append(x)
        for up, skip in zip(self.up, skips[-2::-1]):
            x = up(x, skip)
        return self.classify(x)


def test_unet_equals_the_hand_written_module():
    model = edit_spec(SPECS / "unet.yaml", None, ("height: 128 ", "height: 32 "), ("width: 128", "width: 32"))
    reference = UNet().eval()
    assert total_params(model.graph) == sum(p.numel() for p in reference.parameters()) == 31_030_658
    assert copy_weights(reference, model.module.eval()) == "order"
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        want, got = reference(x), model.module(x)
    assert got.shape == (2, 2, 32, 32)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


# docs/vision.md: | `spec` | `variant` or - | lines | CxHxW | params | multiply-adds M | reference | diff |
DOC_ROW = re.compile(r"^\| `(\w+)` \| (?:`(\w+)`|-) \| (\d+) \| (\d+)x(\d+)x(\d+) \| ([\d,]+) \| ([\d,.]+)M \| ")
DOCUMENTED = [("vit", "b_16"), ("vit", "b_32"), ("convnext", "tiny"), ("convnext", "small"), ("convnext", "base"),
              ("unet", "128")]


def doc_rows() -> list[tuple]:
    lines = [line for line in (ROOT / "docs" / "vision.md").read_text().splitlines() if line.startswith("| `")]
    found = [m.groups() for line in lines if (m := DOC_ROW.match(line))]
    assert lines and len(found) == len(lines), "some of the table's rows no longer parse"
    return found


def test_doc_lists_every_spec_and_variant():
    assert [(spec, variant) for spec, variant, *_ in doc_rows()] == DOCUMENTED


@pytest.mark.parametrize("doc", doc_rows(), ids=lambda d: f"{d[0]}-{d[1] or 'default'}")
def test_doc_row_matches_the_spec(doc):
    spec, variant, lines, c, h, w, params, macs = doc
    path = SPECS / f"{spec}.yaml"
    graph = analyze_file(path, variant)
    (image,) = graph.inputs.values()
    assert int(lines) == len(path.read_text().splitlines())
    assert list(image.shape[1:]) == [int(c), int(h), int(w)]
    assert total_params(graph) == int(params.replace(",", ""))
    assert f"{total_macs(graph) / 1e6:,.1f}" == macs

