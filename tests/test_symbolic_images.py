"""Image sizes as symbolic dims: one compiled network for every height H
and width W that its strides divide.

The window rule that turns H into H/2 is held to torch's own pooling and
convolution at several sizes, accepted and refused windows alike; ResNet-18
over [N, 3, H, W] equals torchvision's at three sizes; the U-Net's `any`
variant equals the hand-written module at sizes that are not square; an
ONNX export keeps H and W dynamic.
"""
from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
import torchvision

from common import SPECS
from compiler.api import analyze_file, compile_file, compile_text, dim_multiples
from compiler.errors import RuleError, SpecError
from compiler.ir import dims
from compiler.ops.rules import window_length
from compiler.tools.compare import copy_weights, randomize_norms
from compiler.tools.verify import verify
from test_zoo_vision import UNet


# -- the spelling of scaled sizes ----------------------------------------------

@pytest.mark.parametrize("text, parsed", [
    ("H", ("H", Fraction(1))), ("H/2", ("H", Fraction(1, 2))), ("2*H", ("H", Fraction(2))),
    ("3*W/4", ("W", Fraction(3, 4))), ("T_max", ("T_max", Fraction(1))),
])
def test_a_scaled_symbol_is_read_and_spelled_back_the_same(text, parsed):
    assert dims.parse(text) == parsed
    assert dims.spell(*parsed) == text


@pytest.mark.parametrize("text", ["T+1", "H*W", "2*H/", "/2", "H/0x2"])
def test_other_symbolic_sizes_are_opaque(text):
    assert dims.parse(text) is None
    assert dims.scale(text, Fraction(1, 2)) is None


def test_paths_that_reach_the_same_size_spell_it_the_same():
    down_twice = dims.scale(dims.scale("H", Fraction(1, 2)), Fraction(1, 2))
    assert down_twice == "H/4"
    assert dims.scale(down_twice, Fraction(2)) == dims.scale("H", Fraction(1, 2)) == "H/2"
    assert dims.scale("H/2", Fraction(2)) == "H"
    assert dims.needed_multiple("3*H/8") == ("H", 8)
    assert dims.needed_multiple("2*H") is None


# -- the window rule against torch ---------------------------------------------

WINDOWS = [(k, s, p, d) for k, s, d in itertools.product((1, 2, 3, 4, 5), (1, 2, 3), (1, 2))
           for p in range(0, k // 2 + 1)]


def _torch_pool_length(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int | None:
    if d * (k - 1) + 1 > size + 2 * p:
        return None  # torch refuses a window larger than the padded input
    x = torch.zeros(1, 1, size)
    return F.max_pool1d(x, k, s, p, d, ceil_mode=ceil_mode).shape[-1]


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_a_window_is_accepted_exactly_where_torch_divides_every_multiple_of_its_stride(ceil_mode):
    accepted = refused = 0
    for k, s, p, d in WINDOWS:
        try:
            out = window_length("H", k, s, p, d, ceil_mode, what="height")
        except RuleError:
            out = None
        lengths = {m * s: _torch_pool_length(m * s, k, s, p, d, ceil_mode) for m in (4, 5, 9, 16)}
        if out is None:
            refused += 1
            assert any(got is not None and got != size // s for size, got in lengths.items()), (k, s, p, d)
        else:
            accepted += 1
            assert out == dims.scale("H", Fraction(1, s))
            assert all(got == size // s for size, got in lengths.items()), (k, s, p, d, lengths)
    assert accepted > 20 and refused > 20  # both kinds of window were tried


@pytest.mark.parametrize("k, s, p, d", [(3, 2, 1, 1), (7, 2, 3, 1), (1, 2, 0, 1), (3, 1, 1, 1), (3, 1, 2, 2),
                                         (4, 2, 1, 1), (5, 3, 2, 1)])
def test_an_accepted_convolution_divides_as_torch_does(k, s, p, d):
    weight = torch.zeros(1, 1, k)
    for m in (3, 8):
        size = m * s
        assert F.conv1d(torch.zeros(1, 1, size), weight, stride=s, padding=p, dilation=d).shape[-1] == size // s
    assert window_length("T", k, s, p, d) == dims.scale("T", Fraction(1, s))


def _image_spec(nodes: str, shape: str = "[N, 3, H, W]") -> str:
    return f"name: image\ninputs: {{x: {{shape: {shape}}}}}\nnodes:\n{nodes}outputs: y\n"


def test_decoder_ops_scale_a_symbolic_size_and_run_as_torch_does():
    spec = _image_spec(
        "  down: {op: conv2d, out_channels: 8, kernel: 3, stride: 2, padding: 1}\n"
        "  pool: {op: max_pool2d, kernel: 2}\n"
        "  up: {op: conv_transpose2d, out_channels: 8, kernel: 2, stride: 2}\n"
        "  twice: {op: upsample, scale: 2, mode: bilinear, align_corners: false}\n"
        "  shuffled: {op: pixel_shuffle, factor: 2}\n"
        "  y: {op: upsample, scale: 0.5}\n")
    model = compile_text(spec)
    shapes = {name: node.out.shape for name, node in model.graph.nodes.items()}
    assert shapes == {"down": ("N", 8, "H/2", "W/2"), "pool": ("N", 8, "H/4", "W/4"),
                      "up": ("N", 8, "H/2", "W/2"), "twice": ("N", 8, "H", "W"),
                      "shuffled": ("N", 2, "2*H", "2*W"), "y": ("N", 2, "H", "W")}
    assert {s: (m.of, m.size) for s, m in dim_multiples(model.graph).items()} == {"H": (4, "H/4"), "W": (4, "W/4")}
    module = model.module.eval()
    for h, w in ((8, 12), (20, 4)):
        with torch.no_grad():
            assert module(torch.randn(2, 3, h, w)).shape == (2, 2, h, w)


@pytest.mark.parametrize("node, message", [
    ("{op: conv2d, out_channels: 4, kernel: 3, stride: 2}",
     "a window of 3 (stride 2, padding 0) over the symbolic height 'H' gives no multiple of it (H/2 - 1)"),
    ("{op: conv2d, out_channels: 4, kernel: 3}",
     "a window of 3 (stride 1, padding 0) changes the symbolic height 'H'"),
    ("{op: conv_transpose2d, out_channels: 4, kernel: 3, stride: 2}",
     "a transposed convolution over the symbolic height 'H' gives 2*H + 1, no multiple of it"),
    ("{op: upsample, scale: 1.5}",
     "scale 1.5 of the symbolic size 'H' is not whole: the output size would depend on rounding"),
])
def test_a_window_that_cannot_keep_a_symbolic_size_is_an_error_at_its_line(node, message):
    with pytest.raises(SpecError) as caught:
        compile_text(_image_spec(f"  y: {node}\n"), file="image.yaml")
    text = str(caught.value)
    assert text.startswith("image.yaml:4:3: error: node 'y'")
    assert message in text


def test_a_symbolic_image_cannot_be_flattened_into_a_linear_layer():
    spec = _image_spec("  f: {op: flatten}\n  y: {op: linear, out_features: 10}\n")
    with pytest.raises(SpecError) as caught:
        compile_text(spec, file="image.yaml")
    assert "cannot flatten symbolic dimensions [3, 'H', 'W']" in str(caught.value)


# -- networks over [N, 3, H, W] against their references -----------------------

def _resnet18_any_size():
    text = (SPECS / "resnet.yaml").read_text()
    assert "image: {shape: [N, 3, 224, 224]}" in text
    return compile_text(text.replace("image: {shape: [N, 3, 224, 224]}", "image: {shape: [N, 3, H, W]}"),
                        "18", file="resnet.yaml")


@pytest.fixture(scope="module")
def resnet18():
    return _resnet18_any_size()


def test_resnet_over_symbolic_sizes_needs_multiples_of_32(resnet18):
    graph = resnet18.graph
    assert graph.nodes["layer1.0.conv1"].out.shape == ("N", 64, "H/4", "W/4")
    assert graph.nodes["layer4.1.relu"].out.shape == ("N", 512, "H/32", "W/32")
    assert graph.nodes["fc"].out.shape == ("N", 1000)
    multiples = dim_multiples(graph)
    assert {s: m.of for s, m in multiples.items()} == {"H": 32, "W": 32}
    assert multiples["H"].node == "layer4.0.conv1"  # the first node at H/32


@pytest.mark.parametrize("h, w", [(224, 224), (160, 192), (32, 64)])
def test_resnet18_at_any_size_equals_torchvision(resnet18, h, w):
    reference = torchvision.models.resnet18().eval()
    randomize_norms(reference)
    copy_weights(reference, resnet18.module)
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h + w))
    with torch.no_grad():
        torch.testing.assert_close(resnet18.module.eval()(x), reference(x), rtol=1e-5, atol=1e-5)


def test_verify_runs_a_symbolic_image_at_a_size_the_model_divides(resnet18):
    result = verify(resnet18, "torchvision:resnet18")
    assert result.ok and result.max_rel == 0.0, result.as_dict()


def test_unet_any_size_equals_the_hand_written_module_at_sizes_that_are_not_square():
    model = compile_file(SPECS / "unet.yaml", "any")
    assert model.inputs["image"].shape == ("N", 1, "H", "W")
    assert model.outputs["segmentation"].shape == ("N", 2, "H", "W")
    assert {s: m.of for s, m in dim_multiples(model.graph).items()} == {"H": 16, "W": 16}
    reference = UNet().eval()
    assert copy_weights(reference, model.module.eval()) == "order"
    for h, w in ((32, 48), (16, 64)):
        x = torch.randn(1, 1, h, w)
        with torch.no_grad():
            torch.testing.assert_close(model.module(x), reference(x), rtol=1e-5, atol=1e-6)


def test_counts_of_a_symbolic_image_are_those_of_a_stated_size():
    fixed = analyze_file(SPECS / "unet.yaml", "128")
    stated = analyze_file(SPECS / "unet.yaml", "any", dims={"H": 128, "W": 128})
    assert sum(n.macs for n in stated.nodes.values()) == sum(n.macs for n in fixed.nodes.values())


def test_an_onnx_export_keeps_height_and_width_dynamic(tmp_path):
    pytest.importorskip("onnxruntime")
    from compiler.tools.export import ExportSettings, export
    from compiler.tools.export.check import calibrate, onnx_difference

    model = compile_text(_image_spec(
        "  stem: {op: conv2d, out_channels: 8, kernel: 3, stride: 2, padding: 1}\n"
        "  act: {op: relu}\n"
        "  pool: {op: max_pool2d, kernel: 3, stride: 2, padding: 1}\n"
        "  up: {op: conv_transpose2d, out_channels: 4, kernel: 2, stride: 2}\n"
        "  y: {op: upsample, scale: 2}\n"))
    calibrate(model)
    folder = export(model, "onnx", tmp_path, ExportSettings(name="image"))
    import onnx

    dims_of_input = [d.dim_param or d.dim_value for d in
                     onnx.load(folder / "model.onnx").graph.input[0].type.tensor_type.shape.dim]
    assert dims_of_input[1] == 3 and all(isinstance(d, str) for d in dims_of_input[2:]), dims_of_input
    # at H, W = 3 * 4 and 7 * 4 (the sizes the check tries, times the multiple of 4 the strides need)
    assert onnx_difference(model, folder) < 1e-5


def test_halves_joined_along_a_symbolic_size_make_it_whole_again():
    spec = _image_spec(
        "  a: {op: max_pool2d, in: x, kernel: 2}\n"
        "  b: {op: avg_pool2d, in: x, kernel: 2}\n"
        "  y: {op: concat, in: [a, b], dim: 2}\n")
    model = compile_text(spec)
    assert model.graph.nodes["y"].out.shape == ("N", 3, "H", "W/2")
    assert model.module(torch.randn(1, 3, 8, 6)).shape == (1, 3, 8, 3)
