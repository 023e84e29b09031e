"""Sequences: token embedding, torch.nn's RNN, LSTM and GRU, and taking
steps or pooling over time.  Sequences are [N, T, F] (batch first) with a
symbolic T."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..errors import RuleError
from ..ir import TensorInfo
from .base import FunctionCall, ModuleCall, Op, Params, register
from .rules import expect_rank, known


class EmbeddingParams(Params):
    num_embeddings: int = Field(description="the vocabulary's size")
    embedding_dim: int = Field(description="the length of each vector")
    padding_idx: int | None = Field(None, description="a token id whose vector stays zero and learns nothing")


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
    hidden_size: int = Field(description="features of the hidden state")
    num_layers: int = Field(1, description="stacked layers")
    bidirectional: bool = Field(False, description="also run backwards over time, and concatenate")
    batch_first: bool = Field(True, description="sequences are [N, T, F] (false: [T, N, F])")
    dropout: float = Field(0.0, description="dropout between layers while training, as torch.nn applies it")
    bias: bool = Field(True, description="learn the bias terms")
    # Which result the node stands for: the output at every step
    # ([N, T, D*H]), or the final hidden / cell state ([L*D, N, H]).
    output: Literal["sequence", "hidden", "cell"] = Field(
        "sequence", description="what the node is: the output at every step, the final hidden or the final cell state")


class RNNParams(RecurrentParams):
    nonlinearity: Literal["tanh", "relu"] = Field("tanh", description="the cell's activation")


def check_lengths(lengths: TensorInfo, batch) -> None:
    if lengths.shape != (batch,) or lengths.dtype not in ("int64", "int32"):
        raise RuleError(f"the lengths must be integers of shape [{batch}], got {lengths} {lengths.dtype}",
                        hint="declare the input as {shape: [N], dtype: int64}")


class _Recurrent(Op):
    gates: int  # weight blocks per layer: 1 (rnn), 3 (gru), 4 (lstm)
    Params = RecurrentParams
    arity = (1, 2)  # the sequence, and optionally the lengths [N] (int64)

    def infer(self, p, inputs):
        x = inputs[0]
        if len(inputs) == 2:
            check_lengths(inputs[1], x.shape[0 if p.batch_first else 1])
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
        # With the lengths, the backend's Packed<module> runs torch.nn's module
        # on a packed sequence; its weights keep torch.nn's names.
        cls = f"Packed{self.torch_reference}" if len(inputs) == 2 else f"nn.{self.torch_reference}"
        return ModuleCall(cls, args, kwargs, select=select)


@register
class RNN(_Recurrent):
    name = "rnn"
    torch_reference = "RNN"
    gates = 1
    Params = RNNParams
    doc = "Elman RNN (torch.nn.RNN); output: sequence | hidden."


@register
class LSTM(_Recurrent):
    name = "lstm"
    torch_reference = "LSTM"
    gates = 4
    doc = "LSTM (torch.nn.LSTM); output: sequence | hidden | cell."


@register
class GRU(_Recurrent):
    name = "gru"
    torch_reference = "GRU"
    gates = 3
    doc = "GRU (torch.nn.GRU); output: sequence | hidden."


class IndexParams(Params):
    index: int = Field(-1, description="the item of the first dimension (default: the last)")


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
        return FunctionCall("operator.getitem", (p.index,))


@register
class LastStep(Op):
    name = "last_step"
    doc = "The output at the last time step: [N, T, F] -> [N, F] (x[:, -1])."

    def infer(self, p, inputs):
        (x,) = inputs
        expect_rank(x, 3, "[N, T, features]")
        return TensorInfo((x.shape[0], x.shape[2]), x.dtype)

    def lower(self, p, inputs, out):
        return FunctionCall("torch.select", (1, -1))


class TimePoolParams(Params):
    mode: Literal["mean", "max"] = Field("mean", description="the mean or the maximum over time")


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
        return FunctionCall("torch.mean" if p.mode == "mean" else "torch.amax", (1,))
