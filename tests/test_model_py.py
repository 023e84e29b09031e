"""The standalone model.py of every spec in the zoo: it reads like
hand-written PyTorch (one class per block, nn.Sequential for repeats, no
add_module or get_submodule), has the compiled module's state-dict keys,
and computes what the compiled module computes."""
from __future__ import annotations

import importlib.util
import re

import pytest
import torch

from common import SPECS
from compiler.api import compile_file
from compiler.backend.standalone import source
from compiler.tools.compare import sample_inputs

ZOO = sorted(p.stem for p in SPECS.glob("*.yaml"))


def load_source(text: str, tmp_path, name: str):
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"standalone_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def top_class(module, text: str):
    return getattr(module, re.search(r"model = (\w+)\(\)", text).group(1))


@pytest.mark.parametrize("name", ZOO)
def test_model_py_equals_the_compiled_module(name, tmp_path):
    model = compile_file(SPECS / f"{name}.yaml")
    text = source(model.graph)
    assert not re.search(r"add_module|get_submodule|getattr\(", text)
    standalone = top_class(load_source(text, tmp_path, name), text)().eval()
    ours = model.module.eval()
    assert list(standalone.state_dict()) == list(ours.state_dict())
    standalone.load_state_dict(ours.state_dict())
    inputs = sample_inputs(model, batch=1)
    with torch.no_grad():
        want, got = ours(*inputs), standalone(*inputs)
    want, got = (want if isinstance(want, tuple) else (want,)), (got if isinstance(got, tuple) else (got,))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_resnet_reads_like_torchvision():
    text = source(compile_file(SPECS / "resnet.yaml", "50").graph)
    assert len(re.findall(r"^class \w+\(nn.Module\):", text, re.M)) == 3  # Projection, Bottleneck, Resnet
    assert "class Bottleneck(nn.Module):" in text
    assert "def __init__(self, in_channels, channels, stride=1, project=False):" in text
    assert "self.downsample = Projection(in_channels, 4 * channels, stride) if project else None" in text
    assert "downsample = self.downsample(x) if self.downsample is not None else x" in text
    assert ("self.layer1 = nn.Sequential(\n            Bottleneck(64, 64, project=True),\n"
            "            *(Bottleneck(256, 64) for _ in range(2)),\n        )") in text
    assert "layer1 = self.layer1(maxpool)  # [N, 256, 56, 56]" in text
    assert "conv2 = self.conv2(relu1)  # [N, channels, H // stride, W // stride]" in text


def test_vgg_stages_share_a_class_whatever_their_depth():
    text = source(compile_file(SPECS / "vgg.yaml", "D").graph)
    assert len(re.findall(r"^class Stage\w*\(", text, re.M)) == 1
    assert "*(ConvRelu(channels, channels) for _ in range(convs - 1))" in text


def test_fx_module_nests_as_the_blocks_do():
    module = compile_file(SPECS / "resnet.yaml", "50").module
    assert type(module.layer1).__name__ == "Sequential"
    assert type(module.layer1[0]).__name__ == "Bottleneck"
    assert "layer1 = self.layer1(maxpool)" in module.code
    assert "downsample = self.downsample(x)" in module.layer1[0].code


def test_modules_register_in_the_order_they_compute():
    # A repeat's modules have dotted paths (`convs.0`); they still come
    # before the layer that follows them, as in a hand-written module, so
    # the state dict lists tensors in computation order (verify matches by it).
    from compiler.api import compile_text

    model = compile_text("""
name: ordered
inputs: {x: {shape: [N, 3, 8, 8]}}
nodes:
  convs: {op: conv2d, out_channels: 3, kernel: 3, padding: 1, repeat: 2}
  head: {op: conv2d, out_channels: 2, kernel: 1}
  join: {op: concat, in: [head, convs.0]}
outputs: join
""")
    assert list(model.module.state_dict()) == ["convs.0.weight", "convs.0.bias", "convs.1.weight", "convs.1.bias",
                                               "head.weight", "head.bias"]
