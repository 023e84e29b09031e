"""Building modules with their weights drawn from a generator of their own,
so that compiling never touches torch's global random state.

Each initialiser draws exactly what the module's own `reset_parameters`
draws, in the same order: with one generator seeded s, the weights equal
those torch.manual_seed(s) followed by the same constructors would give.
"""
from __future__ import annotations

import collections
import math
from typing import Callable, NamedTuple

import torch
from torch import nn
from torch.nn import init
from torch.overrides import TorchFunctionMode

from .keys import PLAIN, typed
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
    return _finished(_constructed(cls, args, kwargs), generator)


class Builder:
    """Builds one emit's modules, as `build` does, constructing only the
    first of each class and arguments: the others are copies of it with
    tensors of their own, allocated (and drawn) as `build` gives them, or,
    for a constructor that draws nothing, equal to the first's.  torch's
    constructors (Module.__init__, registering each tensor, the meta-device
    pass) were most of emitting ResNet-152, whose 312 modules are 31 kinds.
    A module is copied only when its state outside its own tensors is plain
    values (`_copyable`): nn.RNN, which keeps its weights in a list too, and
    any module holding another are constructed each time."""

    def __init__(self, generator: torch.Generator | None):
        self.generator = generator
        # key -> the module copied (never handed out; on the meta device if
        # its weights are drawn), or None: that kind is constructed each time
        self._first: dict[tuple, _Template | None] = {}

    def build(self, cls: type[nn.Module], args: tuple, kwargs: dict) -> nn.Module:
        key = _key(cls, args, kwargs)
        if key is None:
            return build(cls, args, kwargs, self.generator)
        if key not in self._first:
            first = _constructed(cls, args, kwargs)
            self._first[key] = _Template.of(first) if _copyable(first) else None
            if self._first[key] is None:  # constructed each time, this one included
                return _finished(first, self.generator)
        template = self._first[key]
        if template is None:
            return build(cls, args, kwargs, self.generator)
        if template.initialise is None:
            return _copy(template, lambda t: t.detach().clone())
        device = torch.get_default_device()
        return _drawn(_copy(template, lambda t: _empty(t, device)), template.initialise, self.generator)


def _initialiser(cls: type[nn.Module]):
    for kinds, initialise in _INITIALISERS:
        if issubclass(cls, kinds):
            return initialise
    return None


def _constructed(cls: type[nn.Module], args: tuple, kwargs: dict) -> nn.Module:
    """`cls(*args, **kwargs)`; one whose constructor draws is built on the
    meta device, so nothing is drawn, and `_finished` gives it storage where
    torch builds tensors now (the CPU, or a `torch.device` context's).
    (nn.utils.skip_init does this, but refuses nn.RNN, whose signature is
    (*args, **kwargs).)"""
    if _initialiser(cls) is None:
        return cls(*args, **kwargs)
    with _NoDraws():
        return cls(*args, device="meta", **kwargs)


def _finished(module: nn.Module, generator: torch.Generator | None) -> nn.Module:
    """A module as `_constructed` left it, allocated and drawn where it draws."""
    initialise = _initialiser(type(module))
    if initialise is None:
        return module
    return _drawn(_allocated(module, torch.get_default_device()), initialise, generator)


def _drawn(module: nn.Module, initialise, generator: torch.Generator | None) -> nn.Module:
    if generator is not None:
        with torch.no_grad():
            initialise(module, generator)
    return module


def _key(cls: type, args: tuple, kwargs: dict) -> tuple | None:
    """What a module is built from (backend.keys); None when a value is not plain."""
    try:
        return cls, typed(args), tuple(sorted((k, typed(v)) for k, v in kwargs.items()))
    except TypeError:
        return None


_CONTAINERS = (dict, collections.OrderedDict, list, tuple, set)


def _copyable(module: nn.Module) -> bool:
    """No submodules; tensors only as plain nn.Parameter and torch.Tensor in
    its own registries; everything else plain values or containers of them,
    which `_copy` gives each copy anew."""
    def plain(v) -> bool:
        if isinstance(v, PLAIN):
            return True
        if type(v) in _CONTAINERS:
            items = v.items() if isinstance(v, dict) else ((None, x) for x in v)
            return all(plain(k) and plain(x) for k, x in items)
        return False

    state = module.__dict__
    return (not state.get("_modules")
            and all(p is None or type(p) is nn.Parameter for p in state["_parameters"].values())
            and all(b is None or type(b) is torch.Tensor for b in state["_buffers"].values())
            and all(plain(v) for k, v in state.items() if k not in ("_parameters", "_buffers")))


def _anew(value):
    """A plain value, its containers (hooks' dicts, padding lists) new."""
    if type(value) in _CONTAINERS:
        if not value:  # most are: a module's hook registries
            return type(value)()
        if isinstance(value, dict):
            return type(value)((k, _anew(v)) for k, v in value.items())
        return type(value)(_anew(v) for v in value)
    return value


class _Template(NamedTuple):
    module: nn.Module
    containers: tuple[str, ...]  # the keys of its state holding containers, but its tensors'
    initialise: Callable | None  # how its copies' weights are drawn; None: its constructor draws nothing

    @classmethod
    def of(cls, module: nn.Module) -> _Template:
        return cls(module, tuple(k for k, v in module.__dict__.items()
                                 if type(v) in _CONTAINERS and k not in ("_parameters", "_buffers")),
                   _initialiser(type(module)))


def _copy(template: _Template, tensor: Callable[[torch.Tensor], torch.Tensor]) -> nn.Module:
    """A module as its constructor left the template's, its tensors from `tensor`."""
    first = template.module
    module = object.__new__(type(first))
    state = dict(first.__dict__)
    for k in template.containers:
        state[k] = _anew(state[k])
    state["_parameters"] = {k: None if p is None else nn.Parameter(tensor(p), p.requires_grad)
                            for k, p in first._parameters.items()}
    state["_buffers"] = {k: None if b is None else tensor(b) for k, b in first._buffers.items()}
    module.__dict__.update(state)
    return module


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
    return module._apply(lambda t: _empty(t, device))


def _empty(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device=device)


def generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g
