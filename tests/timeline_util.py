"""Shared by the timeline tests (tests/test_timeline_*.py): references built
without weights, batch norm with random statistics, and counts as PyTorch's
flop counter sees them."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from compiler.api import analyze_file
from compiler.ir import Graph
from compiler.verify import build_reference, verify


def randomize_batchnorm(model: torch.nn.Module, seed: int = 1) -> None:
    """Freshly built batch norm is the identity in eval mode (mean 0, var 1,
    weight 1, bias 0); random statistics make the comparison see it, and see
    a wrong eps (1e-3 for 1e-5 changes outputs by about 1e-3)."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)


def total_params(graph: Graph) -> int:
    return sum(n.n_params for n in graph.nodes.values())


def total_macs(graph: Graph) -> int:
    return sum(n.macs for n in graph.nodes.values())


def reference_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def reference_macs(model: torch.nn.Module, size: int) -> int:
    """Multiply-adds of one sample (the counter counts 2 flops per multiply-add
    of convolutions and matrix products, and nothing else)."""
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() // 2


def check_against(model, against: str, reference: torch.nn.Module | None = None):
    """Verify with random batch-norm statistics on the reference; return the result."""
    reference = reference if reference is not None else build_reference(against)
    randomize_batchnorm(reference)
    return verify(model, against, reference=reference)


__all__ = ["analyze_file", "check_against", "randomize_batchnorm", "reference_macs", "reference_params",
           "total_macs", "total_params"]
