"""specs/zfnet.yaml against Fig. 3 of Zeiler and Fergus (2013), "Visualizing
and Understanding Convolutional Networks": no reference implementation
exists, so the figure's sizes and the parameters counted by hand are the
reference."""
from __future__ import annotations

import pytest
import torch

from compiler.api import analyze_text, compile_file

from timeline_util import analyze_file, reference_macs, total_macs, total_params
from common import SPECS

SPEC = SPECS / "zfnet.yaml"

# Fig. 3: the output of each layer, [channels, height, width].
FIG3_SHAPES = {
    "conv1": (96, 110, 110),          # 96 filters 7x7, stride 2
    "layer1.pool": (96, 55, 55),      # 3x3 max pool, stride 2
    "layer1.norm": (96, 55, 55),      # contrast normalisation
    "conv2": (256, 26, 26),           # 256 filters 5x5, stride 2
    "layer2.pool": (256, 13, 13),
    "layer2.norm": (256, 13, 13),
    "conv3": (384, 13, 13),           # 384 filters 3x3, stride 1
    "conv4": (384, 13, 13),
    "conv5": (256, 13, 13),
    "layer5.pool": (256, 6, 6),       # 3x3 max pool, stride 2
    "flatten": (6 * 6 * 256,),        # "6 . 6 . 256 = 9216 dimensions"
    "fc6": (4096,),
    "fc7": (4096,),
    "fc8": (1000,),                   # C-way softmax, C = 1000
    "softmax": (1000,),
}

# Fig. 3, each layer's k * k * c_in * c_out weights + c_out biases.
LAYER_PARAMS = {
    "conv1": 7 * 7 * 3 * 96 + 96,               # 14,208
    "conv2": 5 * 5 * 96 * 256 + 256,            # 614,656
    "conv3": 3 * 3 * 256 * 384 + 384,           # 885,120
    "conv4": 3 * 3 * 384 * 384 + 384,           # 1,327,488
    "conv5": 3 * 3 * 384 * 256 + 256,           # 884,992
    "fc6": 6 * 6 * 256 * 4096 + 4096,           # 37,752,832
    "fc7": 4096 * 4096 + 4096,                  # 16,781,312
    "fc8": 4096 * 1000 + 1000,                  # 4,097,000
}
TOTAL = 62_357_608


def edited(old: str, new: str):
    text = SPEC.read_text()
    assert old in text
    return analyze_text(text.replace(old, new), file=str(SPEC))


def test_shapes_follow_fig3():
    graph = analyze_file(SPEC)
    assert graph.inputs["image"].shape == ("N", 3, 224, 224)
    assert {name: graph.nodes[name].out.shape[1:] for name in FIG3_SHAPES} == FIG3_SHAPES


def test_parameters_counted_by_hand():
    graph = analyze_file(SPEC)
    assert sum(LAYER_PARAMS.values()) == TOTAL
    assert {n.name: n.n_params for n in graph.nodes.values() if n.n_params} == LAYER_PARAMS
    assert total_params(graph) == TOTAL
    model = compile_file(SPEC)
    assert sum(p.numel() for p in model.module.parameters()) == TOTAL


def test_macs_equal_torch_flop_counter():
    model = compile_file(SPEC)
    assert total_macs(analyze_file(SPEC)) == reference_macs(model.module, 224)


def test_contrast_normalisation_after_pooling_in_layers_1_and_2():
    graph = analyze_file(SPEC)
    norms = [n.name for n in graph.nodes.values() if n.op == "local_response_norm"]
    assert norms == ["layer1.norm", "layer2.norm"]
    assert [graph.nodes[name].inputs for name in norms] == [["layer1.pool"], ["layer2.pool"]]


@pytest.mark.parametrize("old,new,node,size", [
    # Unpadded, the 7x7/2 convolution gives 109, not the figure's 110.
    ("kernel: 7, stride: 2, padding: 1}", "kernel: 7, stride: 2}", "conv1", 109),
    # Rounding down, the pool over 110 gives 54, not 55.
    ("stride: 2, ceil_mode: true}", "stride: 2}", "layer1.pool", 54),
    # Padding the pools by one on both sides reaches 55 and 13, but 7 at pool5.
    ("stride: 2, ceil_mode: true}", "stride: 2, padding: 1}", "layer5.pool", 7),
])
def test_other_paddings_miss_the_figure(old, new, node, size):
    assert edited(old, new).nodes[node].out.shape[2:] == (size, size)


def test_runs_to_a_distribution():
    model = compile_file(SPEC)
    model.module.eval()
    with torch.no_grad():
        logits, probs = model.module(torch.randn(2, 3, 224, 224))   # the outputs in the spec's order
    assert logits.shape == probs.shape == (2, 1000)
    torch.testing.assert_close(probs, torch.softmax(logits, dim=-1))
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
