"""Modules that torch.nn lacks and lowerings name: the scan that runs a
cell over time, stochastic depth, and torch.nn's recurrent layers fed with
the lengths of padded sequences.  A standalone model.py carries the source
of the ones it uses (`source`), so it still needs only torch."""
from __future__ import annotations

import inspect
import textwrap

import torch
import torch.nn.functional as F
from torch import nn


class Scan(nn.Module):
    """Runs `cell` over dimension 1 of x ([N, T, ...]): returns the per-step
    outputs stacked over time, then the final states. With `lengths`, the
    states of sequence n stop at step lengths[n] - 1 and its outputs after
    that step are zero."""

    def __init__(self, cell: nn.Module, state_shapes: tuple, inits: tuple, outputs: int = 1):
        super().__init__()
        self.cell = cell
        self.state_shapes = [tuple(s) for s in state_shapes]
        self.inits = list(inits)
        self.outputs = outputs

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        if not torch.jit.is_scripting():  # TorchScript skips this branch unread
            if hasattr(torch.compiler, "is_exporting") and torch.compiler.is_exporting():  # torch >= 2.5
                return self._scan_op(x, lengths)
        states = self._initial_states(x)
        per_step: list[list[torch.Tensor]] = [[] for _ in range(self.outputs)]
        for t in range(x.shape[1]):
            outs, states = self._step(x[:, t], states, lengths, t)
            for store, o in zip(per_step, outs):
                store.append(o)
        return (*[torch.stack(store, 1) for store in per_step], *states)

    def _initial_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.full((x.shape[0], *shape), init, dtype=x.dtype, device=x.device)
                for shape, init in zip(self.state_shapes, self.inits)]

    def _step(self, x_t, states, lengths, t):
        """One step: (this step's outputs, the next states)."""
        result = self.cell(x_t, *states)
        outs, new = list(result[:self.outputs]), list(result[self.outputs:])
        if lengths is not None:
            alive = lengths > t  # [N]: which sequences are still running
            new = [torch.where(alive.view(-1, *([1] * (s.dim() - 1))), ns, s) for s, ns in zip(states, new)]
            outs = [torch.where(alive.view(-1, *([1] * (o.dim() - 1))), o, torch.zeros_like(o)) for o in outs]
        return outs, new

    def _scan_op(self, x: torch.Tensor, lengths: torch.Tensor | None):
        """The same loop as torch's scan operator, for torch.export: a Python
        loop over time would be unrolled and fix the number of steps, while
        the operator keeps it dynamic (it becomes ONNX's Scan)."""
        from torch._higher_order_ops.scan import scan

        steps = torch.arange(x.shape[1], device=x.device)

        def step(states, inputs):
            x_t, t = inputs
            outs, new = self._step(x_t, states, lengths, t)
            return new, [o.clone() for o in outs]  # scan's outputs may not alias its carried states

        states, per_step = scan(step, self._initial_states(x), [x.transpose(0, 1), steps])
        return (*[y.transpose(0, 1) for y in per_step], *states)


class StochasticDepth(nn.Module):
    """Zeroes the branch for a sample ('row') or the whole batch ('batch') with
    probability p while training, scaling what is kept by 1 / (1 - p), as
    torchvision.ops.stochastic_depth does; the identity in eval mode."""

    def __init__(self, p: float, mode: str = "row"):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        shape = [x.shape[0]] + [1] * (x.dim() - 1) if self.mode == "row" else [1] * x.dim()
        keep = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1.0 - self.p)
        return x * keep.div_(1.0 - self.p)

    def extra_repr(self):
        return f"p={self.p}, mode={self.mode!r}"


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of [N, C, H, W], as torchvision's ConvNeXt
    writes it: its weights are nn.LayerNorm's."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Reshape(nn.Module):
    """x.reshape(shape): each item of `dims` is a size, or ('dim', i) for a
    symbolic size that is dim i of the input (torch.reshape takes one -1; a
    shape with two symbolic sizes needs this)."""

    def __init__(self, dims: tuple):
        super().__init__()
        self.dims = list(dims)

    def forward(self, x):
        return x.reshape([d if isinstance(d, int) else x.shape[d[1]] for d in self.dims])


class Expand(nn.Module):
    """x.expand(shape), where ('like', i) stands for dim i of the second input
    (a class token repeated for each sample of the batch)."""

    def __init__(self, dims: tuple):
        super().__init__()
        self.dims = list(dims)

    def forward(self, x, like):
        return x.expand([d if isinstance(d, int) else like.shape[d[1]] for d in self.dims])


class SelfAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention returning only its output (need_weights=False);
    with one input it is self-attention, and `causal` masks the future. Its
    state dict is nn.MultiheadAttention's, key for key."""

    def __init__(self, embed_dim: int, num_heads: int, causal: bool = False, **kwargs):
        super().__init__(embed_dim, num_heads, **kwargs)
        self.causal = causal

    def forward(self, query, key=None, value=None):
        key = query if key is None else key
        value = key if value is None else value
        mask = None
        if self.causal:
            mask = torch.ones(query.shape[1], key.shape[1], dtype=torch.bool, device=query.device).triu(1)
        return super().forward(query, key, value, need_weights=False, attn_mask=mask, is_causal=self.causal)[0]


class Attention(nn.Module):
    """F.scaled_dot_product_attention with dropout on its weights while
    training only (the functional form would drop in eval mode too)."""

    def __init__(self, dropout: float, is_causal: bool = False, scale: float | None = None):
        super().__init__()
        self.dropout, self.is_causal, self.scale = dropout, is_causal, scale

    def forward(self, q, k, v, mask=None):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.is_causal, scale=self.scale,
                                              dropout_p=self.dropout if self.training else 0.0)


class LearnedTensor(nn.Module):
    """A learned tensor read by other nodes (a class token, a position
    embedding, a layer scale); forward takes no input."""

    def __init__(self, shape: tuple, init: str = "zeros", std: float = 0.02, value: float = 0.0, device=None):
        super().__init__()
        self.init, self.std, self.value = init, std, value
        self.weight = nn.Parameter(torch.empty(shape, device=device))
        if self.weight.device.type != "meta":
            self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None):
        with torch.no_grad():
            if self.init == "normal":
                self.weight.normal_(0.0, self.std, generator=generator)
            elif self.init == "trunc_normal":
                nn.init.trunc_normal_(self.weight, std=self.std, a=-2 * self.std, b=2 * self.std, generator=generator)
            else:
                self.weight.fill_({"zeros": 0.0, "ones": 1.0}.get(self.init, self.value))

    def forward(self):
        return self.weight


class NarrowLike(nn.Module):
    """x.narrow(dim, start, n), n the size of dim `like_dim` of the second
    input: the first T rows of a position table, T the sequence's length."""

    def __init__(self, dim: int, start: int, like_dim: int):
        super().__init__()
        self.dim, self.start, self.like_dim = dim, start, like_dim

    def forward(self, x, like):
        return x.narrow(self.dim, self.start, like.shape[self.like_dim])


class SinusoidalTable(nn.Module):
    """Vaswani et al.'s position encodings, [length, width]: column 2i holds
    sin(pos / base^(2i / width)), column 2i + 1 the cosine. A buffer outside
    the state dict: it is computed, not learned or stored."""

    def __init__(self, length: int, width: int, base: float = 10000.0):
        super().__init__()
        position = torch.arange(length, dtype=torch.float64).unsqueeze(1)
        frequency = base ** (-torch.arange(0, width, 2, dtype=torch.float64) / width)
        table = torch.empty(length, width, dtype=torch.float64)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency)
        self.register_buffer("table", table.float(), persistent=False)

    def forward(self):
        return self.table


def _packed(base: type[nn.Module]) -> type[nn.Module]:
    """torch.nn's module taking the lengths of padded sequences as a second
    input: it runs on a packed sequence (each sequence to its own end, the
    final states those at its end) and pads the output back to T with zeros.
    The weights keep torch.nn's names."""

    class Packed(base):
        def forward(self, x, lengths):
            time = 1 if self.batch_first else 0
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=self.batch_first,
                                                       enforce_sorted=False)
            out, state = super().forward(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=self.batch_first,
                                                      total_length=x.shape[time])
            return out, state

    Packed.__name__ = Packed.__qualname__ = f"Packed{base.__name__}"
    return Packed


def _packed_source(base: str) -> str:
    body = inspect.getsource(_packed).split("class Packed(base):", 1)[1].split("    Packed.__name__")[0]
    return f"class Packed{base}(nn.{base}):\n" + textwrap.indent(textwrap.dedent(body.strip("\n")), "    ") + "\n"


RUNTIME: dict[str, type[nn.Module]] = {
    cls.__name__: cls for cls in (Scan, StochasticDepth, LayerNorm2d, Reshape, Expand, SelfAttention, Attention,
                                  LearnedTensor, NarrowLike, SinusoidalTable)}
_SOURCES = {name: (lambda c=cls: inspect.getsource(c)) for name, cls in RUNTIME.items()}
for _base in (nn.RNN, nn.LSTM, nn.GRU):
    RUNTIME[f"Packed{_base.__name__}"] = _packed(_base)
    _SOURCES[f"Packed{_base.__name__}"] = lambda b=_base.__name__: _packed_source(b)


def source(name: str) -> str:
    """The source of runtime module `name`, for a standalone model.py."""
    return _SOURCES[name]()
