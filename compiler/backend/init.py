"""Building modules with their weights drawn from a generator of their own,
so that compiling never touches torch's global random state.

Each initialiser draws exactly what the module's own `reset_parameters`
draws, in the same order: with one generator seeded s, the weights equal
those torch.manual_seed(s) followed by the same constructors would give.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import init
from torch.overrides import TorchFunctionMode

from .runtime import LearnedTensor


def _uniform_fan_in(m: nn.Module, g: torch.Generator) -> None:
    """Conv and Linear: kaiming_uniform_(a=sqrt(5)), the bias uniform in
    +-1/sqrt(fan_in) (torch.nn.modules.conv._ConvNd.reset_parameters)."""
    init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=g)
    if m.bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(m.weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(m.bias, -bound, bound, generator=g)


def _recurrent(m: nn.RNNBase, g: torch.Generator) -> None:
    stdv = 1.0 / math.sqrt(m.hidden_size) if m.hidden_size > 0 else 0
    for weight in m.parameters():
        init.uniform_(weight, -stdv, stdv, generator=g)


def _embedding(m: nn.Embedding, g: torch.Generator) -> None:
    init.normal_(m.weight, generator=g)
    m._fill_padding_idx_with_zero()


def _attention(m: nn.MultiheadAttention, g: torch.Generator) -> None:
    """The constructor's out_proj (a Linear) draws first, then
    _reset_parameters: xavier_uniform_ on the packed input projection, zero
    biases (torch.nn.MultiheadAttention)."""
    _uniform_fan_in(m.out_proj, g)
    init.xavier_uniform_(m.in_proj_weight, generator=g)
    if m.in_proj_bias is not None:
        init.constant_(m.in_proj_bias, 0.0)
        init.constant_(m.out_proj.bias, 0.0)


def _learned(m: nn.Module, g: torch.Generator) -> None:
    m.reset_parameters(generator=g)


_INITIALISERS = [
    ((nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear), _uniform_fan_in),
    ((nn.MultiheadAttention,), _attention),
    ((LearnedTensor,), _learned),
    ((nn.RNNBase,), _recurrent),
    ((nn.Embedding,), _embedding),
]


def build(cls: type[nn.Module], args: tuple, kwargs: dict, generator: torch.Generator | None) -> nn.Module:
    """`cls(*args, **kwargs)` with its random initialisation drawn from
    `generator`; with None, nothing is drawn and the weights are left as
    allocated, for a module whose every weight is loaded next.  Modules
    whose constructors draw nothing at random (batch norm, pooling,
    dropout) are built as they are."""
    for kinds, initialise in _INITIALISERS:
        if issubclass(cls, kinds):
            # Built on the meta device, so nothing is drawn, then given storage
            # where torch builds tensors now (the CPU, or a `torch.device`
            # context's).  (nn.utils.skip_init does this, but refuses nn.RNN,
            # whose signature is (*args, **kwargs).)
            with _NoDraws():
                module = cls(*args, device="meta", **kwargs)
            module = _allocated(module, torch.get_default_device())
            if generator is not None:
                with torch.no_grad():
                    initialise(module, generator)
            return module
    return cls(*args, **kwargs)


class _NoDraws(TorchFunctionMode):
    """Skips torch.nn.init's functions while a module is built on the meta
    device: its constructor's reset_parameters would draw into tensors that
    have no storage, through torch's Python decompositions for meta
    tensors, a third of building ResNet-152's modules. The weights are
    drawn (or loaded) after they are allocated. Modes are per thread, so
    models built at once in other threads are untouched."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else (kwargs or {}).get("tensor")  # the tensor it would have filled
        return func(*args, **(kwargs or {}))


def _allocated(module: nn.Module, device: torch.device) -> nn.Module:
    """Module.to_empty, with each tensor allocated from its size and strides:
    torch.empty_like of a meta tensor goes through a Python decomposition."""
    return module._apply(lambda t: torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device=device))


def generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g
