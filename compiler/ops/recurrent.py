"""Sequences: token embedding, torch.nn's RNN, LSTM and GRU, and pooling over
time.  Sequences are [N, T, F] (batch first) with a symbolic T."""
from __future__ import annotations

import inspect
import operator
import textwrap
from typing import Any, Literal

from pydantic import ConfigDict

import torch
from torch import nn

from ..errors import RuleError
from ..ir import TensorInfo
from .base import FunctionCall, ModuleCall, Op, Params, expect_rank, known, register


class EmbeddingParams(Params):
    num_embeddings: int
    embedding_dim: int
    padding_idx: int | None = None


@register
class Embedding(Op):
    name = "embedding"
    Params = EmbeddingParams
    doc = "Token ids (int64) to vectors: [N, T] -> [N, T, embedding_dim]."

    def infer(self, p, inputs):
        (x,) = inputs
        if x.dtype not in ("int64", "int32"):
            raise RuleError(f"expects integer token ids, got {x.dtype} input {x}",
                            hint="declare the input with 'dtype: int64'")
        return TensorInfo((*x.shape, p.embedding_dim), "float32")

    def count_params(self, p, inputs, out):
        return p.num_embeddings * p.embedding_dim

    def lower(self, p, inputs, out):
        kwargs = {} if p.padding_idx is None else {"padding_idx": p.padding_idx}
        return ModuleCall("nn.Embedding", (p.num_embeddings, p.embedding_dim), kwargs)


class RecurrentParams(Params):
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    batch_first: bool = True
    dropout: float = 0.0  # between layers, as torch.nn applies it
    bias: bool = True
    # Which result the node stands for: the output at every step
    # ([N, T, D*H]), or the final hidden / cell state ([L*D, N, H]).
    output: Literal["sequence", "hidden", "cell"] = "sequence"


class RNNParams(RecurrentParams):
    nonlinearity: Literal["tanh", "relu"] = "tanh"


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


PACKED = {cls.__name__: _packed(cls) for cls in (nn.RNN, nn.LSTM, nn.GRU)}


def _packed_source(base: str) -> str:
    """The source of Packed<base> for a standalone model.py."""
    body = inspect.getsource(_packed).split("class Packed(base):", 1)[1].split("    Packed.__name__")[0]
    return f"class Packed{base}(nn.{base}):\n" + textwrap.indent(textwrap.dedent(body.strip("\n")), "    ") + "\n"


class _Recurrent(Op):
    module: str
    gates: int  # weight blocks per layer: 1 (rnn), 3 (gru), 4 (lstm)
    Params = RecurrentParams
    arity = (1, 2)  # the sequence, and optionally the lengths [N] (int64)

    def infer(self, p, inputs):
        x = inputs[0]
        if len(inputs) == 2:
            lengths, batch = inputs[1], x.shape[0 if p.batch_first else 1]
            if lengths.shape != (batch,) or lengths.dtype not in ("int64", "int32"):
                raise RuleError(f"the lengths must be integers of shape [{batch}], got {lengths} {lengths.dtype}",
                                hint="declare the input as {shape: [N], dtype: int64}")
        expect_rank(x, 3, "[N, T, features]" if p.batch_first else "[T, N, features]")
        known(x.shape[-1], "the feature dimension")
        if p.output == "cell" and self.name != "lstm":
            raise RuleError(f"'{self.name}' has no cell state", hint="use output: sequence or hidden")
        if not 0 <= p.dropout < 1:
            raise RuleError(f"dropout must be in [0, 1), got {p.dropout}")
        d = 2 if p.bidirectional else 1
        if p.output == "sequence":
            return TensorInfo((*x.shape[:2], d * p.hidden_size), x.dtype)
        batch = x.shape[0] if p.batch_first else x.shape[1]
        return TensorInfo((p.num_layers * d, batch, p.hidden_size), x.dtype)

    def count_params(self, p, inputs, out):
        d = 2 if p.bidirectional else 1
        h, g = p.hidden_size, self.gates
        total = 0
        for layer in range(p.num_layers):
            f = inputs[0].shape[-1] if layer == 0 else d * h
            total += d * (g * h * (f + h) + (2 * g * h if p.bias else 0))
        return total

    def count_macs(self, p, inputs, out):
        # The matmuls per step, times T when T is known (a symbolic T counts
        # one step: the figure is then per time step).
        t = inputs[0].shape[1 if p.batch_first else 0]
        steps = t if isinstance(t, int) else 1
        d = 2 if p.bidirectional else 1
        h, g = p.hidden_size, self.gates
        per_step = 0
        for layer in range(p.num_layers):
            f = inputs[0].shape[-1] if layer == 0 else d * h
            per_step += d * g * h * (f + h)
        return steps * per_step

    def lower(self, p, inputs, out):
        kwargs = dict(batch_first=p.batch_first)
        if p.num_layers != 1:
            kwargs["num_layers"] = p.num_layers
        if p.bidirectional:
            kwargs["bidirectional"] = True
        if p.dropout:
            kwargs["dropout"] = p.dropout
        if not p.bias:
            kwargs["bias"] = False
        if getattr(p, "nonlinearity", "tanh") != "tanh":
            kwargs["nonlinearity"] = p.nonlinearity
        select = {"sequence": (0,), "hidden": (1,), "cell": (1, 1)}[p.output]
        if self.name == "lstm" and p.output == "hidden":
            select = (1, 0)
        args = (inputs[0].shape[-1], p.hidden_size)
        if len(inputs) == 2:
            base = self.module.split(".")[-1]
            return ModuleCall(f"Packed{base}", args, kwargs, select=select,
                              factory=lambda: PACKED[base](*args, **kwargs),
                              helpers=((f"Packed{base}", _packed_source(base)),))
        return ModuleCall(self.module, args, kwargs, select=select)


@register
class RNN(_Recurrent):
    name = "rnn"
    module = "nn.RNN"
    gates = 1
    Params = RNNParams
    doc = "Elman RNN (torch.nn.RNN); output: sequence | hidden."


@register
class LSTM(_Recurrent):
    name = "lstm"
    module = "nn.LSTM"
    gates = 4
    doc = "LSTM (torch.nn.LSTM); output: sequence | hidden | cell."


@register
class GRU(_Recurrent):
    name = "gru"
    module = "nn.GRU"
    gates = 3
    doc = "GRU (torch.nn.GRU); output: sequence | hidden."


class IndexParams(Params):
    index: int = -1


@register
class Select(Op):
    """Needed to take the last layer's state out of h_n ([L*D, N, H])."""
    name = "select"
    Params = IndexParams
    doc = "Item `index` of the first dimension: h_n[-1] ([L, N, H] -> [N, H])."

    def infer(self, p, inputs):
        (x,) = inputs
        first = x.shape[0]
        if isinstance(first, int) and not -first <= p.index < first:
            raise RuleError(f"index {p.index} is outside the first dimension of {x}")
        return TensorInfo(x.shape[1:], x.dtype)

    def lower(self, p, inputs, out):
        return FunctionCall(operator.getitem, (p.index,))


@register
class LastStep(Op):
    name = "last_step"
    doc = "The output at the last time step: [N, T, F] -> [N, F] (x[:, -1])."

    def infer(self, p, inputs):
        (x,) = inputs
        expect_rank(x, 3, "[N, T, features]")
        return TensorInfo((x.shape[0], x.shape[2]), x.dtype)

    def lower(self, p, inputs, out):
        return FunctionCall(torch.select, (1, -1))


class TimePoolParams(Params):
    mode: Literal["mean", "max"] = "mean"


@register
class TimePool(Op):
    name = "time_pool"
    Params = TimePoolParams
    doc = "Mean or max over time: [N, T, F] -> [N, F]."

    def infer(self, p, inputs):
        (x,) = inputs
        expect_rank(x, 3, "[N, T, features]")
        return TensorInfo((x.shape[0], x.shape[2]), x.dtype)

    def lower(self, p, inputs, out):
        if p.mode == "mean":
            return FunctionCall(torch.mean, (1,))
        return FunctionCall(torch.amax, (1,))


@register
class OneMinus(Op):
    name = "one_minus"
    doc = "1 - x (the GRU's complement of the update gate)."

    def infer(self, p, inputs):
        return inputs[0]

    def lower(self, p, inputs, out):
        return FunctionCall(torch.rsub, (1,))


class ScanParams(Params):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    cell: Any


@register
class ScanOp(Op):
    """Made by instantiating a cell block (a block with `state`), never written."""
    name = "scan"
    Params = ScanParams
    arity = (1, 2)
    doc = "A cell block run over time (written as an instance of a block with 'state')."

    def infer(self, p, inputs):
        from ..cells import infer
        x = inputs[0]
        if len(x.shape) < 3:
            raise RuleError(f"a cell runs over a sequence [N, T, features], got {x}")
        lengths = inputs[1] if len(inputs) > 1 else None
        if lengths is not None and (lengths.shape != (x.shape[0],) or lengths.dtype not in ("int64", "int32")):
            raise RuleError(f"the lengths must be integers of shape [{x.shape[0]}], got {lengths} {lengths.dtype}",
                            hint="declare the input as {shape: [N], dtype: int64}")
        return infer(p.cell, x, lengths)

    def count_params(self, p, inputs, out):
        return sum(n.n_params for n in p.cell.graph.nodes.values())

    def count_macs(self, p, inputs, out):
        # Per time step when T is symbolic, as the built-in recurrent ops.
        t = inputs[0].shape[1]
        return (t if isinstance(t, int) else 1) * sum(n.macs for n in p.cell.graph.nodes.values())

    def lower(self, p, inputs, out):
        from ..cells import Code, Scan, build_step, step_class_name
        cell = p.cell
        shapes = tuple(s.shape for s in cell.states)
        inits = tuple(s.init for s in cell.states)
        args = (shapes, inits, len(cell.outputs))
        return ModuleCall("Scan", (Code(f"{step_class_name(cell)}()"), *args),
                          factory=lambda: Scan(build_step(cell), *args), helpers=(cell,))


class ItemParams(Params):
    index: int


@register
class TupleItem(Op):
    """Made by a cell instance for each of its outputs and final states."""
    name = "tuple_item"
    Params = ItemParams
    doc = "Item `index` of a cell's results (written as 'instance.output' or 'instance.<state>')."

    def infer(self, p, inputs):
        return inputs[0].items[p.index]

    def lower(self, p, inputs, out):
        return FunctionCall(operator.getitem, (p.index,))
