"""Shared by the timeline tests (tests/test_timeline_*.py): references built
without weights, batch norm with random statistics, and counts as PyTorch's
flop counter sees them."""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from compiler.api import Model, analyze_file, compile_file, compile_text
from compiler.ir import Graph
from compiler.tools.verify import build_reference, randomize_norms, verify


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
    randomize_norms(reference)  # fresh norms are the identity in eval mode
    return verify(model, against, reference=reference)


def edit_spec(spec: Path, variant: str | None, *edits: tuple[str, str]) -> Model:
    """The spec compiled with lines edited as a user would edit them; each
    edited text must be in the spec, so a test cannot silently edit nothing."""
    text = spec.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    return compile_text(text, variant, file=str(spec))


__all__ = ["analyze_file", "build_reference", "check_against", "compile_file", "edit_spec", "reference_macs",
           "reference_params", "total_macs", "total_params"]
