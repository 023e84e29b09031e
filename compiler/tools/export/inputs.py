"""Example inputs, one tensor per model input: for torch.export to trace
with, and for the checks to run the exported file and the compiled module
on."""
from __future__ import annotations

import torch

# Example sizes for tracing: not 0 or 1, which torch.export would take as
# special values and specialise a dimension to.
EXAMPLE_BATCH = 2
EXAMPLE_STEPS = 5


def example_inputs(model, sizes: dict[str, int] | None = None, integers: int = 1) -> tuple[torch.Tensor, ...]:
    """One tensor per model input, in input order: symbolic dimensions take
    `sizes[symbol]` (default: EXAMPLE_BATCH for N, EXAMPLE_STEPS for others).
    Integer inputs are drawn from [0, integers): the default, zeros, is a
    valid index for any embedding."""
    sizes = sizes or {}
    generator = torch.Generator().manual_seed(0)
    tensors = []
    for info in model.inputs.values():
        shape = [d if isinstance(d, int) else sizes.get(d, EXAMPLE_BATCH if d == "N" else EXAMPLE_STEPS)
                 for d in info.shape]
        dtype = getattr(torch, info.dtype)
        if dtype.is_floating_point:
            tensors.append(torch.randn(shape, generator=generator).to(dtype))
        else:
            tensors.append(torch.randint(0, integers, shape, generator=generator).to(dtype))
    return tuple(tensors)
