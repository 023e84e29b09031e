"""Example inputs, one tensor per model input: for torch.export to trace
with, and for the checks to run the exported file and the compiled module
on."""
from __future__ import annotations

import torch

from ...api import dim_steps

# Example sizes for tracing: not 0 or 1, which torch.export would take as
# special values and specialise a dimension to.
EXAMPLE_BATCH = 2
EXAMPLE_STEPS = 5


def example_inputs(model, sizes: dict[str, int] | None = None, integers: int = 1) -> tuple[torch.Tensor, ...]:
    """One tensor per model input, in input order: symbolic dimensions take
    `sizes[symbol]` (default: EXAMPLE_BATCH for N; for other symbols the
    size given for T, else EXAMPLE_STEPS), times the multiple the model needs
    of the symbol (an image height that five strides divide: 5 * 32).
    Integer inputs are drawn from [0, integers): the default, zeros, is a
    valid index for any embedding."""
    sizes = sizes or {}
    steps = dim_steps(model.graph)
    generator = torch.Generator().manual_seed(0)
    tensors = []

    def size(symbol: str) -> int:
        base = sizes.get(symbol, EXAMPLE_BATCH if symbol == "N" else sizes.get("T", EXAMPLE_STEPS))
        return base * steps.get(symbol, 1)

    for info in model.inputs.values():
        shape = [d if isinstance(d, int) else size(d) for d in info.shape]
        dtype = getattr(torch, info.dtype)
        if dtype.is_floating_point:
            tensors.append(torch.randn(shape, generator=generator).to(dtype))
        else:
            tensors.append(torch.randint(0, integers, shape, generator=generator).to(dtype))
    return tuple(tensors)
