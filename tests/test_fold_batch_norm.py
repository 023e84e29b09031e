"""Batch norms folded into the convolutions before them (compiler.api.fold_batch_norm)
give the outputs of the unfolded module, and only a batch norm that reads a
convolution alone is folded."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from common import SPECS
from compiler.api import compile_file, compile_text, fold_batch_norm

# fp32 rounding of the rescaled weights: bench/fast_equivalence.py measured
# 5.7e-7 (ResNet-50, outputs up to 1.1), 1.6e-7 (MobileNet v2), 7e-8 (DenseNet).
ATOL = 1e-5


def _norms(module: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def _with_statistics(module: nn.Module) -> nn.Module:
    """Running statistics and affine parameters that are not the identity's
    (fresh ones are: mean 0, var 1, weight 1, bias 0, and would hide a wrong fold)."""
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if m.weight is not None:
                m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
    return module.eval()


def _fold_and_compare(model, shape) -> tuple[int, int]:
    plain = _with_statistics(model.module)
    folded = copy.deepcopy(plain)
    before = _norms(folded)
    n = fold_batch_norm(folded)
    assert _norms(folded) == before - n
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want, got = plain(x), folded(x)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    return n, before


def test_resnet50_folds_every_batch_norm_as_torchvision_has_them():
    torchvision = pytest.importorskip("torchvision")
    # 64x64 inputs (the pooling before the classifier is adaptive) keep it fast.
    n, before = _fold_and_compare(compile_file(SPECS / "resnet.yaml", "50"), (2, 3, 64, 64))
    with torch.device("meta"):  # counted, not computed
        reference = torchvision.models.resnet50()
    assert n == before == _norms(reference)  # each of torchvision's batch norms follows a convolution


def test_mobilenet_v2_folds_every_batch_norm():
    n, before = _fold_and_compare(compile_file(SPECS / "mobilenet.yaml", "v2"), (2, 3, 64, 64))
    assert n == before == 52


def test_densenet_folds_only_the_norms_after_a_convolution():
    """DenseNet's layers are norm -> relu -> conv on a concatenation: the
    norms that read a concatenation or a pooling stay."""
    n, before = _fold_and_compare(compile_file(SPECS / "densenet.yaml"), (1, 3, 32, 32))
    assert 0 < n < before


@pytest.mark.parametrize("nodes,folded", [
    # an activation between them
    ("""  conv: {op: conv2d, out_channels: 4, kernel: 3, padding: 1}
  act: {op: relu}
  bn: {op: batchnorm2d}""", 0),
    # the convolution's output is also read by the add: folding would change it
    ("""  conv: {op: conv2d, out_channels: 4, kernel: 3, padding: 1}
  bn: {op: batchnorm2d}
  sum: {op: add, inputs: [conv, bn]}""", 0),
    # a batch norm on the input itself
    ("""  bn: {op: batchnorm2d}
  conv: {op: conv2d, out_channels: 4, kernel: 3, padding: 1, bias: false}""", 0),
    # a convolution without bias, then its norm: folded, the bias made
    ("""  conv: {op: conv2d, out_channels: 4, kernel: 3, padding: 1, bias: false}
  bn: {op: batchnorm2d}
  act: {op: relu}""", 1),
])
def test_what_is_folded(nodes, folded):
    spec = f"name: t\ninputs: {{x: {{shape: [N, 4, 8, 8]}}}}\nnodes:\n{nodes}\noutputs: {{y: {nodes.split(chr(10))[-1].split(':')[0].strip()}}}\n"
    n, _ = _fold_and_compare(compile_text(spec), (3, 4, 8, 8))
    assert n == folded


def test_a_batch_norm_in_a_block_folds_into_its_convolution():
    spec = """name: t
inputs: {x: {shape: [N, 3, 8, 8]}}
blocks:
  conv_bn:
    params: {c: null}
    nodes:
      conv: {op: conv2d, out_channels: $c, kernel: 3, padding: 1, bias: false}
      bn: {op: batchnorm2d}
      act: {op: relu}
nodes:
  a: {block: conv_bn, c: 4}
  b: {block: conv_bn, c: 6, repeat: 2}
  pool: {op: global_avg_pool}
outputs: {y: pool}
"""
    n, before = _fold_and_compare(compile_text(spec), (2, 3, 8, 8))
    assert n == before == 3
