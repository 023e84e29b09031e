"""Fold each batch norm into the convolution it follows, for inference.

In eval mode a batch norm is an affine map per channel, y = (x - mean) /
sqrt(var + eps) * gamma + beta, so a convolution followed by one equals the
same convolution with its output channels' weights scaled and a bias
shifted (as torch.nn.utils.fusion.fuse_conv_bn_weights computes them, here
in place: a copy of ResNet-50's weights doubled the time). The rewrite is made in each fx graph of
the module tree where a batch norm reads a convolution of the same graph
whose output nothing else reads; a convolution shared by several calls, a
batch norm after anything else (a concatenation, an activation, a block's
output) and one without running statistics are left as they are.
"""
from __future__ import annotations

from collections import Counter

import torch
import torch.fx as fx
from torch import nn

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def fold_batch_norm(module: nn.Module) -> int:
    """Fold in place (the module is put in eval mode); return how many batch
    norms were folded."""
    module.eval()
    uses = Counter(id(m) for m in _called_modules(module))
    folded = 0
    for graph_module in [m for m in module.modules() if isinstance(m, fx.GraphModule)]:
        changed = False
        for node in list(graph_module.graph.nodes):
            pair = _foldable(graph_module, node, uses)
            if pair is None:
                continue
            conv_node, conv, norm = pair
            _fold_into(conv, norm)
            node.replace_all_uses_with(conv_node)
            graph_module.graph.erase_node(node)
            graph_module.delete_submodule(node.target)
            folded += 1
            changed = True
        if changed:
            graph_module.graph.lint()
            graph_module.recompile()
    return folded


def _foldable(gm: fx.GraphModule, node: fx.Node, uses: Counter):
    """(conv node, conv, norm) when `node` calls a batch norm that can be folded."""
    if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
        return None
    norm = gm.get_submodule(node.target)
    if not isinstance(norm, _NORMS) or norm.running_mean is None or uses[id(norm)] != 1:
        return None
    source = node.args[0]
    if not isinstance(source, fx.Node) or source.op != "call_module" or len(source.users) != 1:
        return None
    conv = gm.get_submodule(source.target)
    # A grouped transposed convolution holds its output channels in groups
    # along dimension 1: not the layout _fold_into scales.
    transposed_groups = isinstance(conv, _TRANSPOSED) and conv.groups != 1
    if not isinstance(conv, _CONVS + _TRANSPOSED) or transposed_groups or uses[id(conv)] != 1:
        return None
    return source, conv, norm


@torch.no_grad()
def _fold_into(conv: nn.Module, norm: nn.Module) -> None:
    """conv's weight and bias become those of norm(conv(x))."""
    scale = norm.running_var.add(norm.eps).rsqrt()
    if norm.weight is not None:
        scale.mul_(norm.weight)
    channel_dim = 1 if isinstance(conv, _TRANSPOSED) else 0
    shape = [1] * conv.weight.dim()
    shape[channel_dim] = -1
    conv.weight.mul_(scale.reshape(shape))
    bias = -norm.running_mean if conv.bias is None else conv.bias.sub(norm.running_mean)
    bias.mul_(scale)
    if norm.bias is not None:
        bias.add_(norm.bias)
    conv.bias = nn.Parameter(bias)


def _called_modules(module: nn.Module):
    """Every module an fx graph of the tree calls, once per call site (a
    module that is called twice, or also held by a plain module, cannot be
    rewritten for one of its uses alone)."""
    for m in module.modules():
        if isinstance(m, fx.GraphModule):
            for node in m.graph.nodes:
                if node.op == "call_module":
                    yield m.get_submodule(node.target)
        else:
            yield from (child for _, child in m.named_children())
