"""Attention over sequences [N, ..., T, E]: torch's scaled dot product, and
torch.nn.MultiheadAttention with its weights under its own names."""
from __future__ import annotations

from pydantic import Field

from ..errors import RuleError
from ..ir import TensorInfo
from .base import FunctionCall, ModuleCall, Op, Params, register
from .merge import broadcast
from .rules import expect_rank, known, per_sample


class SDPAParams(Params):
    causal: bool = Field(False, description="each position attends to itself and those before it only")
    dropout: float = Field(0.0, description="dropout on the attention weights while training")
    scale: float | None = Field(None, description="the logits' factor (default 1/sqrt(head width))")


@register
class ScaledDotProductAttention(Op):
    name = "scaled_dot_product_attention"
    Params = SDPAParams
    arity = (3, 4)  # query, key, value, and an optional mask added to (or, if bool, masking) the logits
    doc = "softmax(q k^T * scale + mask) v over [N, heads, T, d] (F.scaled_dot_product_attention)."
    fresh_output = True

    def infer(self, p, inputs):
        q, k, v = inputs[:3]
        if len(q.shape) < 2 or len(k.shape) != len(q.shape) or len(v.shape) != len(q.shape):
            raise RuleError(f"query, key and value need one rank of 2 or more, got {q}, {k}, {v}")
        if q.shape[-1] != k.shape[-1]:
            raise RuleError(f"query {q} and key {k} differ in their last (head width) dimension")
        if k.shape[-2] != v.shape[-2]:
            raise RuleError(f"key {k} and value {v} differ in length (dim -2)")
        if not 0 <= p.dropout < 1:
            raise RuleError(f"dropout must be in [0, 1), got {p.dropout}")
        batch = broadcast(broadcast(q.shape[:-2], k.shape[:-2]), v.shape[:-2])
        if len(inputs) == 4:
            if p.causal:
                raise RuleError("give a mask or causal: true, not both", hint="F.scaled_dot_product_attention refuses both")
            broadcast(inputs[3].shape, (*batch, q.shape[-2], k.shape[-2]))
        return TensorInfo((*batch, q.shape[-2], v.shape[-1]), q.dtype)

    def count_macs(self, p, inputs, out):
        q, k, v = inputs[:3]
        rows = out.shape[:-1]  # q k^T: rows x S x E, then weights v: rows x S x Ev
        s = k.shape[-2] if isinstance(k.shape[-2], int) else 1  # a symbolic length counts one key
        per_row = s * (known(q.shape[-1], "the head width") + known(v.shape[-1], "the value width"))
        return per_sample(rows) * per_row

    def lower(self, p, inputs, out):
        kwargs = {}
        if p.causal:
            kwargs["is_causal"] = True
        if p.scale is not None:
            kwargs["scale"] = p.scale
        if p.dropout:
            return ModuleCall("Attention", (p.dropout,), kwargs)  # dropout only while training
        return FunctionCall("F.scaled_dot_product_attention", (), kwargs)

    def label(self, p):
        return "attention (causal)" if p.causal else "attention"


class MHAParams(Params):
    heads: int = Field(description="parallel attention heads; they split the width")
    dropout: float = Field(0.0, description="dropout on the attention weights while training")
    bias: bool = Field(True, description="biases in the input and output projections")
    causal: bool = Field(False, description="each position attends to itself and those before it only")


@register
class MultiHeadAttention(Op):
    name = "multi_head_attention"
    Params = MHAParams
    arity = (1, 3)  # self-attention on one input; query, key (and value) given apart
    doc = "torch.nn.MultiheadAttention (batch first) over [N, T, E]: one input is self-attention."
    fresh_output = True
    torch_reference = "MultiheadAttention"

    def infer(self, p, inputs):
        q = inputs[0]
        k = inputs[1] if len(inputs) > 1 else q
        v = inputs[2] if len(inputs) > 2 else k
        for x in (q, k, v):
            expect_rank(x, 3, "[N, T, width]")
        e = known(q.shape[-1], "the width")
        if p.heads < 1 or e % p.heads:
            raise RuleError(f"heads={p.heads} must divide the width {e} of input {q}",
                            hint=f"widths per head must be whole: choose heads among the divisors of {e}")
        if k.shape[-1] != e or v.shape[-1] != e:
            raise RuleError(f"query {q}, key {k} and value {v} must share their width")
        if k.shape[:2] != v.shape[:2] or k.shape[0] != q.shape[0]:
            raise RuleError(f"key {k} and value {v} must share batch and length with each other, and batch with {q}")
        if not 0 <= p.dropout < 1:
            raise RuleError(f"dropout must be in [0, 1), got {p.dropout}")
        return q

    def count_params(self, p, inputs, out):
        e = inputs[0].shape[-1]
        return 4 * e * e + (4 * e if p.bias else 0)

    def count_weights(self, p, inputs, out):
        return 4 * inputs[0].shape[-1] ** 2

    def count_macs(self, p, inputs, out):
        # Projections of q, k, v and the output (4 x T x E^2), then q k^T and
        # the weighted sum of v (2 x T x S x E); a symbolic T counts one step.
        q = inputs[0]
        k = inputs[1] if len(inputs) > 1 else q
        e = q.shape[-1]
        t, s = (d if isinstance(d, int) else 1 for d in (q.shape[1], k.shape[1]))
        return 2 * t * e * e + 2 * s * e * e + 2 * t * s * e

    def lower(self, p, inputs, out):
        kwargs = {"batch_first": True}
        if p.dropout:
            kwargs["dropout"] = p.dropout
        if not p.bias:
            kwargs["bias"] = False
        if p.causal:
            kwargs["causal"] = True
        # The runtime's SelfAttention is nn.MultiheadAttention called with
        # need_weights=False: its state dict is torch.nn's, key for key.
        return ModuleCall("SelfAttention", (inputs[0].shape[-1], p.heads), kwargs)

    def label(self, p):
        return f"attention x{p.heads}"
