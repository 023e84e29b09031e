"""The sequential classics: LeNet, AlexNet, VGG and NiN against the lecture
notes (../shared/seeds), the papers' tables and torchvision.

Totals are read from `netspec summary --json`, as a user would read them.
"""
from __future__ import annotations

import json

import pytest
import torch
import torchvision
from torch import nn

from compiler.api import analyze_file, compile_file
from compiler.tools.verify import copy_weights

from common import SPECS


# (spec, variant) -> total parameters.
TOTALS = {
    ("lenet", None): 61_706,
    ("alexnet", "original"): 60_965_224,
    ("alexnet", "torchvision"): 61_100_840,
    ("vgg", "A"): 132_863_336,
    ("vgg", "A-LRN"): 132_863_336,
    ("vgg", "B"): 133_047_848,
    ("vgg", "C"): 133_638_952,
    ("vgg", "D"): 138_357_544,
    ("vgg", "E"): 143_667_240,
    ("nin", "fashion-mnist"): 1_992_166,
    ("nin", "imagenet"): 7_439_608,
}


def summary(cli, specs, name, variant=None) -> dict:
    run = cli("summary", specs / f"{name}.yaml", "--json", *(["--variant", variant] if variant else []))
    assert run.code == 0, run.err
    return json.loads(run.out)


def test_summary_json_in_a_real_process(cli_process, specs):
    run = cli_process("summary", specs / "alexnet.yaml", "--json")
    assert run.code == 0, run.err
    data = json.loads(run.out)
    assert set(data) >= {"model", "variant", "inputs", "outputs", "total_params", "total_macs", "layers"}
    assert data["model"] == "alexnet" and data["variant"] == "original"
    assert data["inputs"] == {"image": ["N", 3, 227, 227]}
    assert data["outputs"] == {"logits": ["N", 1000]}
    assert data["total_params"] == TOTALS[("alexnet", "original")]
    assert data["total_params"] == sum(layer["params"] for layer in data["layers"])
    assert data["total_macs"] == sum(layer["macs"] for layer in data["layers"])
    assert set(data["layers"][0]) == {"name", "op", "output_shape", "params", "macs"}


@pytest.mark.parametrize("name,variant", list(TOTALS), ids=[f"{n}-{v}" for n, v in TOTALS])
def test_totals(cli, specs, name, variant):
    data = summary(cli, specs, name, variant)
    assert data["total_params"] == TOTALS[(name, variant)]
    # The totals count what the emitted module holds.
    module = compile_file(specs / f"{name}.yaml", variant).module
    assert data["total_params"] == sum(p.numel() for p in module.parameters())


# The notes' AlexNet tables (seeds: "AlexNet参数数量" and "AlexNet神经元数量"):
# parameters per layer, and the neurons of each layer's output,
# 55x55x48x2 for C1 and so on.  The output layer's 4,096,000 leaves out the
# bias; with it the layer holds 4,097,000.
NOTES_PARAMS = {"conv1": 34_944, "conv2": 307_456, "conv3": 885_120, "conv4": 663_936, "conv5": 442_624,
                "fc6": 37_752_832, "fc7": 16_781_312}
NOTES_OUTPUT_WEIGHTS = 4_096_000
NOTES_NEURONS = {"conv1": 290_400, "conv2": 186_624, "conv3": 64_896, "conv4": 64_896, "conv5": 43_264,
                 "fc6": 4096, "fc7": 4096, "fc8": 1000}
# Output shapes the notes derive layer by layer (H x W x C).
NOTES_SHAPES = {"conv1": (55, 55, 96), "norm1": (55, 55, 96), "pool1": (27, 27, 96), "conv2": (27, 27, 256),
                "pool2": (13, 13, 256), "conv3": (13, 13, 384), "conv4": (13, 13, 384), "conv5": (13, 13, 256),
                "pool5": (6, 6, 256)}


def test_alexnet_layers_equal_the_notes(cli, specs):
    data = summary(cli, specs, "alexnet")
    layers = {layer["name"]: layer for layer in data["layers"]}
    for name, params in NOTES_PARAMS.items():
        assert layers[name]["params"] == params, name
    assert layers["fc8"]["params"] == NOTES_OUTPUT_WEIGHTS + 1000
    for name, (h, w, c) in NOTES_SHAPES.items():
        assert layers[name]["output_shape"] == ["N", c, h, w], name
    for name, neurons in NOTES_NEURONS.items():
        shape = layers[name]["output_shape"][1:]
        assert torch.Size(shape).numel() == neurons, name
    # fc6 sees the 6x6x256 maps of both GPUs merged.
    assert layers["flatten"]["output_shape"] == ["N", 6 * 6 * 256]


def test_alexnet_output_layer_weights_without_bias(cli, specs):
    run = cli("summary", specs / "alexnet.yaml", "--json", "--weights-only")
    layers = {layer["name"]: layer for layer in json.loads(run.out)["layers"]}
    assert layers["fc8"]["weights"] == NOTES_OUTPUT_WEIGHTS


def test_alexnet_two_gpu_layers_are_grouped():
    graph = analyze_file(SPECS / "alexnet.yaml")
    groups = {n.name: n.attrs.groups for n in graph.nodes.values() if n.op == "conv2d"}
    assert groups == {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
    lrn = [n.attrs for n in graph.nodes.values() if n.op == "local_response_norm"]
    assert [(a.size, a.alpha, a.beta, a.k) for a in lrn] == [(5, 1e-4, 0.75, 2.0)] * 2


# VGG, Table 1: weight layers per configuration; Table 2: parameters in millions.
VGG_LAYERS = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}
VGG_TABLE2_MILLIONS = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}
TORCHVISION_VGG = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}


@pytest.mark.parametrize("variant", list(VGG_LAYERS))
def test_vgg_configurations_follow_table_1(variant):
    graph = analyze_file(SPECS / "vgg.yaml", variant)
    nodes = list(graph.nodes.values())
    weighted = [n for n in nodes if n.op in ("conv2d", "linear")]
    assert len(weighted) == VGG_LAYERS[variant]
    total = sum(n.n_params for n in nodes)
    assert round(total / 1e6) == VGG_TABLE2_MILLIONS[variant]
    one_by_one = [n.name for n in nodes if n.op == "conv2d" and n.attrs.kernel == 1]
    assert one_by_one == (["features.2.layer.2.conv", "features.3.layer.2.conv", "features.4.layer.2.conv"]
                          if variant == "C" else [])
    lrn = [n.name for n in nodes if n.op == "local_response_norm"]
    assert lrn == (["features.0.norm"] if variant == "A-LRN" else [])
    assert nodes[-1].out.shape == ("N", 1000)


@pytest.mark.parametrize("variant", list(TORCHVISION_VGG))
def test_vgg_parameters_equal_torchvision(variant):
    graph = analyze_file(SPECS / "vgg.yaml", variant)
    reference = getattr(torchvision.models, TORCHVISION_VGG[variant])(weights=None)
    assert sum(n.n_params for n in graph.nodes.values()) == sum(p.numel() for p in reference.parameters())


def d2l_nin(channels: int, classes: int) -> nn.Sequential:
    """The notes' NiN written out by hand (as d2l's nin_block code)."""
    def block(cin, cout, k, s, p):
        return [nn.Conv2d(cin, cout, k, s, p), nn.ReLU(), nn.Conv2d(cout, cout, 1), nn.ReLU(),
                nn.Conv2d(cout, cout, 1), nn.ReLU()]
    return nn.Sequential(*block(channels, 96, 11, 4, 0), nn.MaxPool2d(3, 2),
                         *block(96, 256, 5, 1, 2), nn.MaxPool2d(3, 2),
                         *block(256, 384, 3, 1, 1), nn.MaxPool2d(3, 2), nn.Dropout(0.5),
                         *block(384, classes, 3, 1, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def d2l_lenet() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
                         nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2, 2), nn.Flatten(),
                         nn.Linear(400, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10))


@pytest.mark.parametrize("variant,channels,classes", [("fashion-mnist", 1, 10), ("imagenet", 3, 1000)])
def test_nin_equals_the_notes_network(variant, channels, classes):
    model = compile_file(SPECS / "nin.yaml", variant)
    reference = d2l_nin(channels, classes).eval()
    assert sum(p.numel() for p in reference.parameters()) == TOTALS[("nin", variant)]
    copy_weights(reference, model.module)
    x = torch.randn(2, channels, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model.module.eval()(x), reference(x), rtol=1e-5, atol=1e-6)
    shapes = {n.name: n.out.shape for n in model.graph.nodes.values()}
    assert shapes["block1.relu2"] == ("N", 96, 54, 54)
    assert shapes["pool3"] == ("N", 384, 5, 5)
    assert shapes["gap"] == ("N", classes)


def test_lenet_equals_the_notes_network():
    model = compile_file(SPECS / "lenet.yaml")
    reference = d2l_lenet().eval()
    assert sum(p.numel() for p in reference.parameters()) == TOTALS[("lenet", None)]
    copy_weights(reference, model.module)
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model.module.eval()(x), reference(x), rtol=1e-5, atol=1e-6)
    shapes = {n.name: n.out.shape[1:] for n in model.graph.nodes.values()}
    # The notes: C1 28x28x6, S2 14x14x6, C3 10x10x16, S4 5x5x16, then 120, 84, 10.
    assert shapes["conv1"] == (6, 28, 28) and shapes["pool1"] == (6, 14, 14)
    assert shapes["conv2"] == (16, 10, 10) and shapes["pool2"] == (16, 5, 5)
    assert [shapes[k] for k in ("fc1", "fc2", "fc3")] == [(120,), (84,), (10,)]
