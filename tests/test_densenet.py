"""specs/densenet.yaml against torchvision's densenet121/169/201/161 and the
paper's DenseNet-264 (Huang et al., 2017)."""
from __future__ import annotations

import pytest
import torchvision

from compiler.api import analyze_file, compile_file
from compiler.tools.verify import randomize_norms, verify

from common import SPECS

SPEC = SPECS / "densenet.yaml"
TORCHVISION = ["121", "169", "201", "161"]


def params(graph) -> int:
    return sum(n.n_params for n in graph.nodes.values())


@pytest.mark.parametrize("depth", TORCHVISION)
def test_parameters_equal_torchvision(depth):
    reference = getattr(torchvision.models, f"densenet{depth}")(weights=None)
    assert params(analyze_file(SPEC, depth)) == sum(p.numel() for p in reference.parameters())


def test_documented_totals():
    assert params(analyze_file(SPEC, "121")) == 7_978_856
    assert params(analyze_file(SPEC, "169")) == 14_149_480
    assert params(analyze_file(SPEC, "201")) == 20_013_928
    # DenseNet-264 (k = 32) is not in torchvision; the paper gives 33.3M
    # (Figure 3 and Sec. 4.4) to one decimal.
    assert round(params(analyze_file(SPEC, "264")) / 1e6, 1) == 33.3


@pytest.mark.parametrize("depth", ["121", "264"])
def test_channels_grow_by_k_per_layer_and_halve_in_transitions(depth):
    graph = analyze_file(SPEC, depth)
    layers = {"121": [6, 12, 24, 16], "264": [6, 12, 64, 48]}[depth]
    k, channels = 32, 64
    for b, count in enumerate(layers, start=1):
        for i in range(count):
            concat = graph.nodes[f"denseblock{b}.{i}.concat"]
            # Layer i sees all i earlier maps of its block and the block input.
            assert graph.tensor(concat.inputs[0]).shape[1] == channels + i * k
            assert concat.out.shape[1] == channels + (i + 1) * k
        channels += count * k
        if b < 4:
            assert graph.nodes[f"transition{b}.pool"].out.shape[1] == channels // 2
            channels //= 2
    assert graph.tensor("avgpool").shape[1] == channels  # 1024 for 121, 2688 for 264


def test_verify_against_torchvision_121():
    model = compile_file(SPEC, "121")
    reference = torchvision.models.densenet121(weights=None)
    randomize_norms(reference)
    result = verify(model, "torchvision:densenet121", reference=reference)
    assert result.ok and result.max_rel < 1e-5, result.as_dict()


@pytest.mark.parametrize("depth", ["169", "201"])
def test_verify_against_torchvision_deeper(depth):
    model = compile_file(SPEC, depth)
    reference = getattr(torchvision.models, f"densenet{depth}")(weights=None)
    randomize_norms(reference, seed=int(depth))
    result = verify(model, f"torchvision:densenet{depth}", reference=reference)
    assert result.ok, result.as_dict()


def test_a_wrong_growth_rate_is_caught():
    # The k = 48 network does not verify as the k = 32 one: weights differ in shape.
    from compiler.errors import SpecError
    model = compile_file(SPEC, "161")
    with pytest.raises(SpecError):
        verify(model, "torchvision:densenet121")


def test_derived_widths_follow_the_variant():
    # t1..t3 are computed from growth, init and layers after the variant set
    # them: densenet161's k = 48 and 96 stem channels give 192, 384, 1056.
    graph = analyze_file(SPEC, "161")
    reference = torchvision.models.densenet161(weights=None)
    for i in (1, 2, 3):
        ours = graph.nodes[f"transition{i}.conv"].attrs.out_channels
        assert ours == getattr(reference.features, f"transition{i}").conv.out_channels
