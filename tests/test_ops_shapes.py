"""Shape rules of the base ops, as tables of one-node specs.

Each row compiles a spec holding a single node and holds it against a torch
reference built by hand for the same row (the module or function a person
would write): the inferred shape must equal the shape torch produces on a
tiny real tensor, the parameter count must equal sum(p.numel()) of both the
lowered module and the reference, the multiply-adds must equal half of
torch's flop count, and with the reference's weights copied in, the outputs
must agree (tolerance: rtol 1e-5, atol 1e-6).  Rows the rule rejects must be
rejected by torch too.  Every op a spec can name has at least one row.
"""
from __future__ import annotations

import math
import operator

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from torchvision.ops import StochasticDepth

from compiler.api import compile_text
from compiler.errors import SpecError
from compiler.ops import public_ops
from compiler.tools.verify import copy_weights, randomize_norms

BATCH = 2


def Ints(*shape: int) -> dict:
    """A per-sample input shape of integer token ids (an embedding's input)."""
    return {"shape": list(shape), "dtype": "int64"}


def Unbatched(*shape: int) -> dict:
    """An input shape without the batch dimension (a table that a lookup reads)."""
    return {"shape": list(shape), "dtype": "float32", "batch": False}


def _input(shape) -> dict:
    if isinstance(shape, dict):
        batch = ["N"] if shape.get("batch", True) else []
        return {"shape": [*batch, *shape["shape"]], "dtype": shape["dtype"]}
    return {"shape": ["N", *shape]}


# A spec needs an input: a node reading none (a parameter) gets one it ignores.
UNREAD = [1]


def spec_text(op: str, params: dict, shapes: list[list], output: str = "node") -> str:
    names = [f"x{i}" for i in range(len(shapes))]
    return yaml.safe_dump({
        "name": "one_op",
        "inputs": {n: _input(s) for n, s in zip(names, shapes)} if shapes else {"unread": _input(UNREAD)},
        "nodes": {"node": {"op": op, "in": names, **params}},
        "outputs": {"y": output},
    }, sort_keys=False)


# A node with several outputs (a split) is read one at a time: the row's
# output is this part of it, and its reference returns the same part.
READ = {"split-equal": "node.v", "split-sizes": "node.b", "split-channels": "node.a"}


class Fn(nn.Module):
    """A parameter-free reference: a plain function of the inputs."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


class Part(nn.Module):
    """A module whose result is a tuple, and the part of it a node stands for:
    Part(nn.LSTM(...), 1, 0) is h_n."""

    def __init__(self, module: nn.Module, *path: int):
        super().__init__()
        self.module, self.path = module, path

    def forward(self, *xs):
        out = self.module(*xs)
        for i in self.path:
            out = out[i]
        return out


class ChannelsLayerNorm(nn.LayerNorm):
    """Layer norm over dim 1 of [N, C, H, W], as torchvision's ConvNeXt writes it."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SelfAttentionOf(nn.Module):
    """torch.nn.MultiheadAttention called as a spec's node calls it: one input
    attends to itself, two are query and key (= value); the output only."""

    def __init__(self, attention: nn.MultiheadAttention, causal: bool = False):
        super().__init__()
        self.attention, self.causal = attention, causal

    def forward(self, q, k=None):
        k = q if k is None else k
        mask = nn.Transformer.generate_square_subsequent_mask(q.shape[1]) if self.causal else None
        return self.attention(q, k, k, need_weights=False, attn_mask=mask)[0]


def sinusoids(length: int, width: int) -> torch.Tensor:
    """The position encodings as PyTorch's nn.Transformer tutorial computes
    them (PositionalEncoding: exp of -log(10000) / d_model steps)."""
    position = torch.arange(length).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, width, 2) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * div_term)
    table[:, 1::2] = torch.cos(position * div_term)
    return table


class Learned(nn.Module):
    def __init__(self, *shape):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(shape))

    def forward(self, *unread):
        return self.weight


# The flop counter sees no matrix product inside torch's fused LSTM kernel,
# so an LSTM row states its multiply-adds, counted by hand: T steps of
# 4 gates, each H x (F + H).
MACS_BY_HAND = {"lstm": 5 * 4 * 16 * (8 + 16), "lstm-hidden": 5 * 4 * 16 * (8 + 16)}
# ... nor inside nn.MultiheadAttention's fused eval path: the four
# projections (T or S rows of E x E each) and the two products q k^T and
# weights @ v (T x S x E each).
# ... nor inside the fused kernel of F.scaled_dot_product_attention (the
# masked row runs the unfused path and is counted by torch): q k^T and
# weights @ v, rows x S x E each.
# The flop counter counts nothing of F.scaled_dot_product_attention on the
# CPU: q k^T and weights @ v are T x S x E each, per head.
MACS_BY_HAND.update({"sdpa": 2 * 2 * 5 * 5 * 4, "sdpa-causal-scale": 2 * 2 * 5 * 5 * 4})
MACS_BY_HAND.update({"sdpa": 2 * 5 * 5 * (4 + 4), "sdpa-causal-scale": 2 * 5 * 5 * (4 + 4)})
# The flop counter counts nothing of F.scaled_dot_product_attention on the
# CPU: q k^T and weights @ v are T x S x E each, per head.
MACS_BY_HAND.update({"sdpa": 2 * 2 * 5 * 5 * 4, "sdpa-causal-scale": 2 * 2 * 5 * 5 * 4})
MACS_BY_HAND.update({"mha": 4 * 5 * 8 * 8 + 2 * 5 * 5 * 8, "mha-causal": 4 * 5 * 8 * 8 + 2 * 5 * 5 * 8,
                     "mha-cross": 2 * 5 * 8 * 8 + 2 * 3 * 8 * 8 + 2 * 5 * 3 * 8})


# (id, op, params, per-sample input shapes, reference module)
CASES = [
    # conv2d
    ("conv-k3", "conv2d", dict(out_channels=4, kernel=3), [[3, 8, 8]], lambda: nn.Conv2d(3, 4, 3)),
    ("conv-stride-pad", "conv2d", dict(out_channels=4, kernel=3, stride=2, padding=1), [[3, 9, 9]],
     lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1)),
    ("conv-alexnet-c1", "conv2d", dict(out_channels=8, kernel=11, stride=4), [[3, 227, 227]],
     lambda: nn.Conv2d(3, 8, 11, stride=4)),
    ("conv-same-odd", "conv2d", dict(out_channels=4, kernel=5, padding="same"), [[3, 7, 9]],
     lambda: nn.Conv2d(3, 4, 5, padding="same")),
    ("conv-same-even", "conv2d", dict(out_channels=4, kernel=4, padding="same"), [[3, 7, 8]],
     lambda: nn.Conv2d(3, 4, 4, padding="same")),
    ("conv-same-dilated", "conv2d", dict(out_channels=4, kernel=3, padding="same", dilation=2), [[3, 9, 9]],
     lambda: nn.Conv2d(3, 4, 3, padding="same", dilation=2)),
    ("conv-valid", "conv2d", dict(out_channels=4, kernel=3, padding="valid"), [[3, 6, 6]],
     lambda: nn.Conv2d(3, 4, 3, padding="valid")),
    ("conv-dilation", "conv2d", dict(out_channels=4, kernel=3, dilation=2, stride=2), [[3, 11, 11]],
     lambda: nn.Conv2d(3, 4, 3, dilation=2, stride=2)),
    ("conv-groups", "conv2d", dict(out_channels=6, kernel=3, groups=2, padding=1), [[4, 5, 5]],
     lambda: nn.Conv2d(4, 6, 3, groups=2, padding=1)),
    ("conv-depthwise", "conv2d", dict(out_channels=8, kernel=3, groups=4, bias=False), [[4, 5, 5]],
     lambda: nn.Conv2d(4, 8, 3, groups=4, bias=False)),
    ("conv-no-bias", "conv2d", dict(out_channels=4, kernel=1, bias=False), [[3, 5, 5]],
     lambda: nn.Conv2d(3, 4, 1, bias=False)),
    ("conv-rect", "conv2d", dict(out_channels=4, kernel=[3, 5], stride=[1, 2], padding=[1, 2]), [[3, 8, 9]],
     lambda: nn.Conv2d(3, 4, (3, 5), stride=(1, 2), padding=(1, 2))),
    ("conv-kernel-equals-input", "conv2d", dict(out_channels=4, kernel=6), [[2, 6, 6]],
     lambda: nn.Conv2d(2, 4, 6)),
    # pooling
    ("max-k2", "max_pool2d", dict(kernel=2), [[3, 9, 9]], lambda: nn.MaxPool2d(2)),
    ("max-overlap", "max_pool2d", dict(kernel=3, stride=2), [[3, 55, 55]], lambda: nn.MaxPool2d(3, 2)),
    ("max-pad", "max_pool2d", dict(kernel=3, stride=2, padding=1), [[3, 8, 8]],
     lambda: nn.MaxPool2d(3, 2, padding=1)),
    ("max-ceil", "max_pool2d", dict(kernel=3, stride=2, ceil_mode=True), [[3, 8, 8]],
     lambda: nn.MaxPool2d(3, 2, ceil_mode=True)),
    # ceil_mode's rule that the last window must start inside the input (not the padding)
    ("max-ceil-last-window", "max_pool2d", dict(kernel=2, stride=2, padding=1, ceil_mode=True), [[3, 5, 5]],
     lambda: nn.MaxPool2d(2, 2, padding=1, ceil_mode=True)),
    ("max-dilation", "max_pool2d", dict(kernel=2, stride=1, dilation=2), [[3, 6, 6]],
     lambda: nn.MaxPool2d(2, 1, dilation=2)),
    ("max-rect", "max_pool2d", dict(kernel=[2, 3], stride=[2, 1]), [[3, 6, 7]],
     lambda: nn.MaxPool2d((2, 3), (2, 1))),
    ("avg-k2", "avg_pool2d", dict(kernel=2, stride=2), [[6, 28, 28]], lambda: nn.AvgPool2d(2, 2)),
    ("avg-pad-ceil", "avg_pool2d", dict(kernel=3, stride=2, padding=1, ceil_mode=True), [[3, 8, 8]],
     lambda: nn.AvgPool2d(3, 2, padding=1, ceil_mode=True)),
    ("avg-exclude-pad", "avg_pool2d", dict(kernel=3, stride=1, padding=1, count_include_pad=False), [[3, 5, 5]],
     lambda: nn.AvgPool2d(3, 1, padding=1, count_include_pad=False)),
    ("adaptive-1", "adaptive_avg_pool2d", dict(output_size=1), [[3, 7, 7]], lambda: nn.AdaptiveAvgPool2d(1)),
    ("adaptive-rect", "adaptive_avg_pool2d", dict(output_size=[2, 3]), [[3, 7, 8]],
     lambda: nn.AdaptiveAvgPool2d((2, 3))),
    ("adaptive-upsizes", "adaptive_avg_pool2d", dict(output_size=6), [[3, 4, 4]], lambda: nn.AdaptiveAvgPool2d(6)),
    ("global", "global_avg_pool", {}, [[5, 4, 3]], lambda: Fn(lambda x: x.mean((2, 3)))),
    ("global-keepdim", "global_avg_pool", dict(keepdim=True), [[5, 4, 3]],
     lambda: Fn(lambda x: x.mean((2, 3), keepdim=True))),
    # linear and flatten
    ("linear", "linear", dict(out_features=5), [[10]], lambda: nn.Linear(10, 5)),
    ("linear-no-bias", "linear", dict(out_features=5, bias=False), [[10]], lambda: nn.Linear(10, 5, bias=False)),
    ("linear-sequence", "linear", dict(out_features=5), [[7, 10]], lambda: nn.Linear(10, 5)),
    ("linear-channels-last", "linear", dict(out_features=5, channels_last=True), [[3, 4, 10]], lambda: nn.Linear(10, 5)),
    ("flatten", "flatten", {}, [[16, 5, 5]], lambda: nn.Flatten()),
    ("flatten-tail", "flatten", dict(start_dim=2), [[4, 3, 5]], lambda: nn.Flatten(2)),
    ("flatten-middle", "flatten", dict(start_dim=1, end_dim=2), [[4, 3, 5]], lambda: nn.Flatten(1, 2)),
    # activations, softmax, dropout
    ("relu", "relu", {}, [[3, 4, 4]], lambda: nn.ReLU()),
    ("sigmoid", "sigmoid", {}, [[3, 4]], lambda: nn.Sigmoid()),
    ("tanh", "tanh", {}, [[3, 4]], lambda: nn.Tanh()),
    ("leaky-relu", "leaky_relu", dict(negative_slope=0.2), [[3, 4, 4]], lambda: nn.LeakyReLU(0.2)),
    ("leaky-relu-default", "leaky_relu", {}, [[3, 4]], lambda: nn.LeakyReLU()),
    ("softmax", "softmax", {}, [[10]], lambda: nn.Softmax(-1)),
    ("softmax-channels", "softmax", dict(dim=1), [[4, 3, 3]], lambda: nn.Softmax(1)),
    ("dropout", "dropout", dict(p=0.3), [[3, 4]], lambda: nn.Dropout(0.3)),
    # normalisation
    ("lrn-alexnet", "local_response_norm", dict(size=5, alpha=1e-4, beta=0.75, k=2), [[8, 5, 5]],
     lambda: nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)),
    ("batchnorm", "batchnorm2d", {}, [[4, 3, 3]], lambda: nn.BatchNorm2d(4)),
    ("batchnorm-eps", "batchnorm2d", dict(eps=1e-3), [[4, 3, 3]], lambda: nn.BatchNorm2d(4, eps=1e-3)),
    ("batchnorm-no-affine", "batchnorm2d", dict(affine=False), [[4, 3, 3]],
     lambda: nn.BatchNorm2d(4, affine=False)),
    # joins
    ("add-2", "add", {}, [[4, 3, 3], [4, 3, 3]], lambda: Fn(operator.add)),
    ("add-3", "add", {}, [[4, 3, 3]] * 3, lambda: Fn(lambda a, b, c: a + b + c)),
    ("concat", "concat", {}, [[4, 3, 3], [2, 3, 3]], lambda: Fn(lambda *xs: torch.cat(xs, 1))),
    ("concat-3", "concat", {}, [[1, 3, 3], [2, 3, 3], [3, 3, 3]], lambda: Fn(lambda *xs: torch.cat(xs, 1))),
    ("concat-last", "concat", dict(dim=-1), [[4, 3, 2], [4, 3, 5]], lambda: Fn(lambda *xs: torch.cat(xs, -1))),
    ("identity", "identity", {}, [[4, 3, 3]], lambda: nn.Identity()),
    # more activations
    ("relu6", "relu6", {}, [[3, 4, 4]], lambda: nn.ReLU6()),
    ("silu", "silu", {}, [[3, 4]], lambda: nn.SiLU()),
    ("hardswish", "hardswish", {}, [[3, 4]], lambda: nn.Hardswish()),
    ("hardsigmoid", "hardsigmoid", {}, [[3, 4]], lambda: nn.Hardsigmoid()),
    ("gelu", "gelu", {}, [[3, 4]], lambda: nn.GELU()),
    ("one-minus", "one_minus", {}, [[3, 4]], lambda: Fn(lambda x: 1 - x)),
    # products, channel rearrangements, stochastic depth (eval mode: the identity)
    ("mul-gate", "mul", {}, [[8, 5, 5], [8, 1, 1]], lambda: Fn(operator.mul)),
    ("mul-3", "mul", {}, [[4, 3], [4, 3], [1, 3]], lambda: Fn(lambda a, b, c: a * b * c)),
    ("channel-shuffle", "channel_shuffle", dict(groups=2), [[8, 3, 3]], lambda: nn.ChannelShuffle(2)),
    ("chunk-last-smaller", "chunk", dict(chunks=3, index=2), [[10, 4, 4]],
     lambda: Fn(lambda x: torch.chunk(x, 3, 1)[2])),
    ("slice", "slice", dict(start=2, end=5), [[8, 3, 3]], lambda: Fn(lambda x: x[:, 2:5])),
    ("slice-from-end", "slice", dict(start=-3, dim=2), [[2, 6, 3]], lambda: Fn(lambda x: x[:, :, -3:])),
    ("stochastic-depth", "stochastic_depth", dict(p=0.2), [[4, 3, 3]], lambda: StochasticDepth(0.2, "row")),
    # sequences
    ("embedding", "embedding", dict(num_embeddings=10, embedding_dim=4), [Ints(5)], lambda: nn.Embedding(10, 4)),
    ("rnn", "rnn", dict(hidden_size=16), [[5, 8]], lambda: Part(nn.RNN(8, 16, batch_first=True), 0)),
    ("rnn-relu-2-layers", "rnn", dict(hidden_size=6, num_layers=2, nonlinearity="relu"), [[5, 8]],
     lambda: Part(nn.RNN(8, 6, num_layers=2, nonlinearity="relu", batch_first=True), 0)),
    ("gru-bidirectional", "gru", dict(hidden_size=16, bidirectional=True), [[5, 8]],
     lambda: Part(nn.GRU(8, 16, bidirectional=True, batch_first=True), 0)),
    ("lstm", "lstm", dict(hidden_size=16), [[5, 8]], lambda: Part(nn.LSTM(8, 16, batch_first=True), 0)),
    ("lstm-hidden", "lstm", dict(hidden_size=16, output="hidden"), [[5, 8]],
     lambda: Part(nn.LSTM(8, 16, batch_first=True), 1, 0)),
    ("select-last", "select", {}, [[3, 4]], lambda: Fn(lambda x: x[-1])),
    ("last-step", "last_step", {}, [[5, 4]], lambda: Fn(lambda x: x[:, -1])),
    ("time-pool-mean", "time_pool", {}, [[5, 4]], lambda: Fn(lambda x: x.mean(1))),
    ("time-pool-max", "time_pool", dict(mode="max"), [[5, 4]], lambda: Fn(lambda x: x.amax(1))),
    # normalisation past batch norm
    ("batchnorm1d", "batchnorm1d", {}, [[4]], lambda: nn.BatchNorm1d(4)),
    ("batchnorm1d-sequence", "batchnorm1d", dict(eps=1e-3), [[4, 5]], lambda: nn.BatchNorm1d(4, eps=1e-3)),
    ("layer-norm", "layer_norm", {}, [[5, 8]], lambda: nn.LayerNorm(8)),
    ("layer-norm-2-dims", "layer_norm", dict(dims=2, eps=1e-6), [[5, 8]], lambda: nn.LayerNorm([5, 8], eps=1e-6)),
    ("layer-norm-no-bias", "layer_norm", dict(bias=False), [[8]], lambda: nn.LayerNorm(8, bias=False)),
    ("layer-norm-channels-first", "layer_norm", dict(channels_first=True, eps=1e-6), [[6, 3, 4]],
     lambda: ChannelsLayerNorm(6, eps=1e-6)),
    ("group-norm", "group_norm", dict(groups=2), [[6, 3, 4]], lambda: nn.GroupNorm(2, 6)),
    # arithmetic with broadcasting, matrix products
    ("add-broadcast", "add", {}, [[5, 8], [1, 8]], lambda: Fn(operator.add)),
    ("sub", "sub", {}, [[4, 3], [4, 1]], lambda: Fn(operator.sub)),
    ("div", "div", {}, [[4, 3], [1, 3]], lambda: Fn(operator.truediv)),
    ("scale", "scale", dict(factor=0.125), [[4, 3]], lambda: Fn(lambda x: x * 0.125)),
    ("matmul", "matmul", {}, [[2, 5, 4], [2, 4, 3]], lambda: Fn(torch.matmul)),
    ("matmul-broadcast", "matmul", {}, [[2, 5, 4], [1, 4, 3]], lambda: Fn(torch.matmul)),
    # layout and reductions
    ("reshape", "reshape", dict(shape=["N", 6, -1]), [[6, 2, 3]], lambda: Fn(lambda x: x.reshape(BATCH, 6, 6))),
    ("reshape-symbols", "reshape", dict(shape=["N", 2, 12]), [[4, 6]], lambda: Fn(lambda x: x.reshape(BATCH, 2, 12))),
    ("unflatten", "unflatten", dict(dim=-1, sizes=[2, -1]), [[5, 8]], lambda: nn.Unflatten(-1, (2, 4))),
    ("permute", "permute", dict(dims=[0, 2, 3, 1]), [[6, 3, 4]], lambda: Fn(lambda x: x.permute(0, 2, 3, 1))),
    ("transpose", "transpose", {}, [[3, 5, 4]], lambda: Fn(lambda x: x.transpose(-2, -1))),
    ("expand", "expand", dict(shape=[-1, 3, -1]), [[1, 4]], lambda: Fn(lambda x: x.expand(-1, 3, -1))),
    ("expand-like", "expand", dict(shape=["N", -1, -1]), [[1, 4], [7, 4]],
     lambda: Fn(lambda x, like: x.expand(like.shape[0], -1, -1))),
    ("pad", "pad", dict(pad=[1, 2, 0, 1]), [[3, 4, 4]], lambda: Fn(lambda x: F.pad(x, (1, 2, 0, 1)))),
    ("pad-reflect", "pad", dict(pad=[1, 1], mode="reflect"), [[3, 4]],
     lambda: Fn(lambda x: F.pad(x, (1, 1), mode="reflect"))),
    ("mean", "mean", dict(dims=[-1]), [[3, 4]], lambda: Fn(lambda x: x.mean(-1))),
    ("mean-keepdim", "mean", dict(dims=[2, 3], keepdim=True), [[3, 4, 5]],
     lambda: Fn(lambda x: x.mean((2, 3), keepdim=True))),
    ("sum", "sum", dict(dims=[1]), [[3, 4]], lambda: Fn(lambda x: x.sum(1))),
    ("amax", "amax", dict(dims=[1, 2]), [[3, 4]], lambda: Fn(lambda x: x.amax((1, 2)))),
    # attention
    ("sdpa", "scaled_dot_product_attention", {}, [[2, 5, 4]] * 3, lambda: Fn(F.scaled_dot_product_attention)),
    ("sdpa-causal-scale", "scaled_dot_product_attention", dict(causal=True, scale=0.3), [[2, 5, 4]] * 3,
     lambda: Fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3))),
    ("sdpa-mask", "scaled_dot_product_attention", {}, [[2, 5, 4], [2, 6, 4], [2, 6, 3], [1, 5, 6]],
     lambda: Fn(F.scaled_dot_product_attention)),
    ("mha", "multi_head_attention", dict(heads=2), [[5, 8]], lambda: SelfAttentionOf(nn.MultiheadAttention(8, 2, batch_first=True))),
    ("mha-causal", "multi_head_attention", dict(heads=4, causal=True), [[5, 8]],
     lambda: SelfAttentionOf(nn.MultiheadAttention(8, 4, batch_first=True), causal=True)),
    ("mha-cross", "multi_head_attention", dict(heads=2, bias=False), [[5, 8], [3, 8]],
     lambda: SelfAttentionOf(nn.MultiheadAttention(8, 2, bias=False, batch_first=True))),
    # learned tensors
    ("parameter", "parameter", dict(shape=[1, 3, 4], init="trunc_normal"), [], lambda: Learned(1, 3, 4)),
    # positions: a table narrowed to a sequence's length, fixed sinusoids, rows of a table node
    ("narrow", "narrow", {}, [[6, 4], [3, 2]], lambda: Fn(lambda x, like: x.narrow(1, 0, like.shape[1]))),
    ("narrow-table", "narrow", dict(dim=0, like_dim=1, start=1), [Unbatched(6, 4), Ints(3)],
     lambda: Fn(lambda table, ids: table[1:1 + ids.shape[1]])),
    ("sinusoidal-table", "sinusoidal_table", dict(length=50, width=8), [], lambda: Fn(lambda: sinusoids(50, 8))),
    ("lookup", "lookup", {}, [Ints(5), Unbatched(10, 4)], lambda: Fn(F.embedding)),
    # enlarging
    ("conv-transpose", "conv_transpose2d", dict(out_channels=4, kernel=2, stride=2), [[6, 3, 4]],
     lambda: nn.ConvTranspose2d(6, 4, 2, stride=2)),
    ("conv-transpose-pad", "conv_transpose2d", dict(out_channels=4, kernel=3, stride=2, padding=1, output_padding=1,
                                                   groups=2, bias=False), [[6, 3, 4]],
     lambda: nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1, groups=2, bias=False)),
    ("upsample-nearest", "upsample", dict(scale=2), [[3, 4, 5]], lambda: nn.Upsample(scale_factor=2)),
    ("upsample-bilinear", "upsample", dict(size=[7, 9], mode="bilinear", align_corners=True), [[3, 4, 5]],
     lambda: nn.Upsample(size=(7, 9), mode="bilinear", align_corners=True)),
    ("pixel-shuffle", "pixel_shuffle", dict(factor=2), [[8, 3, 4]], lambda: nn.PixelShuffle(2)),
    # more activations
    ("gelu-tanh", "gelu", dict(approximate="tanh"), [[3, 4]], lambda: nn.GELU(approximate="tanh")),
    ("erf", "erf", {}, [[3, 4]], lambda: Fn(torch.erf)),
    ("softplus", "softplus", {}, [[3, 4]], lambda: nn.Softplus()),
    ("mish", "mish", {}, [[3, 4]], lambda: nn.Mish()),
    # sequences as [N, C, L]: 1-D convolution and pooling, instance norm
    ("conv1d", "conv1d", dict(out_channels=4, kernel=3), [[3, 9]], lambda: nn.Conv1d(3, 4, 3)),
    ("conv1d-stride-pad-groups", "conv1d", dict(out_channels=6, kernel=5, stride=2, padding=2, groups=3, bias=False),
     [[3, 11]], lambda: nn.Conv1d(3, 6, 5, stride=2, padding=2, groups=3, bias=False)),
    ("conv1d-same-dilated", "conv1d", dict(out_channels=4, kernel=3, padding="same", dilation=2), [[3, 8]],
     lambda: nn.Conv1d(3, 4, 3, padding="same", dilation=2)),
    ("max-pool1d", "max_pool1d", dict(kernel=3, stride=2, padding=1), [[3, 10]],
     lambda: nn.MaxPool1d(3, 2, padding=1)),
    ("max-pool1d-ceil-dilated", "max_pool1d", dict(kernel=2, dilation=2, ceil_mode=True), [[3, 9]],
     lambda: nn.MaxPool1d(2, dilation=2, ceil_mode=True)),
    ("avg-pool1d", "avg_pool1d", dict(kernel=2), [[3, 9]], lambda: nn.AvgPool1d(2)),
    ("avg-pool1d-exclude-pad", "avg_pool1d", dict(kernel=3, stride=1, padding=1, count_include_pad=False),
     [[3, 6]], lambda: nn.AvgPool1d(3, 1, padding=1, count_include_pad=False)),
    ("instance-norm", "instance_norm", {}, [[4, 5, 6]], lambda: nn.InstanceNorm2d(4)),
    ("instance-norm-1d-affine", "instance_norm", dict(affine=True, eps=1e-3), [[4, 7]],
     lambda: nn.InstanceNorm1d(4, affine=True, eps=1e-3)),
    # several named outputs
    ("split-equal", "split", dict(dim=-1, names=["q", "k", "v"]), [[5, 12]],
     lambda: Fn(lambda x: torch.split(x, 4, -1)[2])),
    ("split-sizes", "split", dict(names=["a", "b"], sizes=[2, 5]), [[7, 3]],
     lambda: Fn(lambda x: torch.split(x, [2, 5], 1)[1])),
    ("split-channels", "split", dict(names=["a", "b"]), [[6, 2, 2]], lambda: Fn(lambda x: torch.split(x, 3, 1)[0])),
]

# Rows the rule must reject, and torch rejects as well.
REJECTED = [
    ("conv-kernel-too-large", "conv2d", dict(out_channels=4, kernel=5), [[3, 4, 4]], lambda: nn.Conv2d(3, 4, 5)),
    ("conv-dilated-too-large", "conv2d", dict(out_channels=4, kernel=3, dilation=3), [[3, 6, 6]],
     lambda: nn.Conv2d(3, 4, 3, dilation=3)),
    ("conv-groups-indivisible", "conv2d", dict(out_channels=4, kernel=1, groups=2), [[3, 4, 4]],
     lambda: nn.Conv2d(3, 4, 1, groups=2)),
    ("conv-same-strided", "conv2d", dict(out_channels=4, kernel=3, stride=2, padding="same"), [[3, 8, 8]],
     lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same")),
    ("conv-rank-2", "conv2d", dict(out_channels=4, kernel=1), [[3]], lambda: nn.Conv2d(3, 4, 1)),
    ("max-window-too-large", "max_pool2d", dict(kernel=3), [[3, 2, 2]], lambda: nn.MaxPool2d(3)),
    ("max-pad-over-half", "max_pool2d", dict(kernel=2, padding=2), [[3, 6, 6]], lambda: nn.MaxPool2d(2, padding=2)),
    ("avg-pad-over-half", "avg_pool2d", dict(kernel=3, padding=2), [[3, 6, 6]], lambda: nn.AvgPool2d(3, padding=2)),
    ("linear-features-mismatch-rank", "linear", dict(out_features=4), [[]], lambda: nn.Linear(1, 4)),
    ("softmax-dim", "softmax", dict(dim=2), [[4]], lambda: nn.Softmax(2)),
    ("add-shapes", "add", {}, [[4, 3, 3], [3, 3, 3]], lambda: Fn(operator.add)),
    ("concat-spatial", "concat", {}, [[4, 3, 3], [4, 2, 2]], lambda: Fn(lambda *xs: torch.cat(xs, 1))),
    ("concat-dim", "concat", dict(dim=3), [[4, 3], [4, 3]], lambda: Fn(lambda *xs: torch.cat(xs, 3))),
    ("dropout-p", "dropout", dict(p=1.5), [[4]], lambda: nn.Dropout(1.5)),
    # sizes that must be positive (or padding not negative)
    ("conv-negative-padding", "conv2d", dict(out_channels=4, kernel=3, padding=-1), [[3, 6, 6]],
     lambda: nn.Conv2d(3, 4, 3, padding=-1)),
    ("max-kernel-0", "max_pool2d", dict(kernel=0), [[3, 6, 6]], lambda: nn.MaxPool2d(0)),
    ("avg-stride-0", "avg_pool2d", dict(kernel=2, stride=0), [[3, 6, 6]], lambda: nn.AvgPool2d(2, stride=0)),
    ("max-negative-padding", "max_pool2d", dict(kernel=3, padding=-1), [[3, 6, 6]],
     lambda: nn.MaxPool2d(3, padding=-1)),
    ("adaptive-negative", "adaptive_avg_pool2d", dict(output_size=-2), [[3, 6, 6]],
     lambda: nn.AdaptiveAvgPool2d(-2)),
    ("linear-negative", "linear", dict(out_features=-5), [[10]], lambda: nn.Linear(10, -5)),
    ("lrn-size-0", "local_response_norm", dict(size=0), [[4, 3, 3]], lambda: nn.LocalResponseNorm(0)),
    ("reshape-indivisible", "reshape", dict(shape=["N", 5, -1]), [[6, 2]], lambda: Fn(lambda x: x.reshape(BATCH, 5, -1))),
    ("reshape-count", "reshape", dict(shape=["N", 5]), [[6]], lambda: Fn(lambda x: x.reshape(BATCH, 5))),
    ("matmul-inner", "matmul", {}, [[5, 4], [3, 2]], lambda: Fn(torch.matmul)),
    ("mha-heads", "multi_head_attention", dict(heads=3), [[5, 8]],
     lambda: SelfAttentionOf(nn.MultiheadAttention(8, 3, batch_first=True))),
    ("group-norm-groups", "group_norm", dict(groups=4), [[6, 3, 3]], lambda: nn.GroupNorm(4, 6)),
    ("pixel-shuffle-channels", "pixel_shuffle", dict(factor=2), [[6, 3, 3]], lambda: nn.PixelShuffle(2)),
    ("unflatten-sizes", "unflatten", dict(dim=1, sizes=[3, 3]), [[8]], lambda: nn.Unflatten(1, (3, 3))),
    ("permute-dims", "permute", dict(dims=[0, 1, 1]), [[3, 4]], lambda: Fn(lambda x: x.permute(0, 1, 1))),
    ("sdpa-widths", "scaled_dot_product_attention", {}, [[5, 4], [5, 3], [5, 3]],
     lambda: Fn(F.scaled_dot_product_attention)),
    ("narrow-past-end", "narrow", {}, [[3, 4], [5, 2]], lambda: Fn(lambda x, like: x.narrow(1, 0, like.shape[1]))),
    ("lookup-float-ids", "lookup", {}, [[5], Unbatched(10, 4)], lambda: Fn(F.embedding)),
    ("conv1d-kernel-too-long", "conv1d", dict(out_channels=4, kernel=5), [[3, 4]], lambda: nn.Conv1d(3, 4, 5)),
    ("conv1d-groups", "conv1d", dict(out_channels=4, kernel=1, groups=2), [[3, 4]],
     lambda: nn.Conv1d(3, 4, 1, groups=2)),
    ("max-pool1d-window", "max_pool1d", dict(kernel=5), [[3, 4]], lambda: nn.MaxPool1d(5)),
    ("avg-pool1d-pad-over-half", "avg_pool1d", dict(kernel=2, padding=2), [[3, 6]],
     lambda: nn.AvgPool1d(2, padding=2)),
    ("instance-norm-rank", "instance_norm", {}, [[4, 2, 2, 2]], lambda: nn.InstanceNorm2d(4)),
    ("split-indivisible", "split", dict(dim=-1, names=["q", "k", "v"]), [[5, 8]],
     lambda: Fn(lambda x: torch.split(x, [8 // 3] * 3, -1))),
    ("split-sizes-sum", "split", dict(names=["a", "b"], sizes=[2, 4]), [[7]],
     lambda: Fn(lambda x: torch.split(x, [2, 4], 1))),
]


def real_inputs(shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s["shape"], generator=gen) if isinstance(s, dict) and not s.get("batch", True)
            else torch.randint(0, 10, [BATCH, *s["shape"]], generator=gen) if isinstance(s, dict)
            else torch.randn([BATCH, *s], generator=gen) for s in shapes]


def test_every_op_has_a_row():
    # A new op is tested against torch the moment it is registered.
    missing = set(public_ops()) - {case[1] for case in CASES}
    assert not missing, f"ops without a row in CASES: {sorted(missing)}"


def macs_by_torch(module, xs) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*xs)
    return counter.get_total_flops() // 2


# torch warns that an even kernel with 'same' padding copies the input: true, and not what is tested.
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_rule_matches_torch(case):
    name, op, params, shapes, make_reference = case
    rng = torch.random.get_rng_state()
    model = compile_text(spec_text(op, params, shapes, READ.get(name, "node")))
    assert torch.equal(torch.random.get_rng_state(), rng), "compiling drew from torch's global generator"
    node = model.graph.nodes["node"]
    value = model.graph.nodes[READ.get(name, "node")].out
    reference = make_reference().eval()
    randomize_norms(reference)  # fresh norms are the identity in eval mode
    ours = model.module.eval()
    xs = real_inputs(shapes)
    with torch.no_grad():
        expected = reference(*xs)

    inferred = [BATCH if d == "N" else d for d in value.shape]
    assert list(expected.shape) == inferred, f"rule says {value.shape}, torch gives {list(expected.shape)}"

    torch_params = sum(p.numel() for p in reference.parameters())
    assert node.n_params == torch_params == sum(p.numel() for p in ours.parameters())
    assert node.macs * BATCH == (MACS_BY_HAND[name] * BATCH if name in MACS_BY_HAND else macs_by_torch(reference, xs))

    copy_weights(reference, ours)
    with torch.no_grad():
        got = ours(*(xs or real_inputs([UNREAD])))
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", REJECTED, ids=[c[0] for c in REJECTED])
def test_rule_rejects_what_torch_rejects(case):
    _, op, params, shapes, make_reference = case
    with pytest.raises(SpecError) as caught:
        compile_text(spec_text(op, params, shapes))
    (diag,) = caught.value.diagnostics
    assert diag.node == "node" and diag.loc is not None
    # torch.nn.MultiheadAttention refuses heads that do not divide the width with an assert.
    with pytest.raises((RuntimeError, ValueError, IndexError, AssertionError)):
        make_reference()(*real_inputs(shapes))


def test_symbolic_batch_is_carried_through():
    model = compile_text(spec_text("conv2d", dict(out_channels=4, kernel=3), [[3, 8, 8]]))
    assert model.graph.nodes["node"].out.shape == ("N", 4, 6, 6)
    for batch in (1, 5):
        assert model.module(torch.zeros(batch, 3, 8, 8)).shape == (batch, 4, 6, 6)


def test_params_of_a_lowered_chain_equal_numel():
    # The per-node counts sum to the lowered module's parameters when layers
    # are chained (in_channels and in_features inferred from the previous node).
    text = yaml.safe_dump({
        "name": "chain",
        "inputs": {"x": {"shape": ["N", 3, 16, 16]}},
        "nodes": {
            "conv": {"op": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1},
            "bn": {"op": "batchnorm2d"},
            "relu": {"op": "relu"},
            "pool": {"op": "max_pool2d", "kernel": 2},
            "dw": {"op": "conv2d", "out_channels": 8, "kernel": 3, "groups": 8, "bias": False},
            "flat": {"op": "flatten"},
            "fc": {"op": "linear", "out_features": 10},
        },
        "outputs": {"y": "fc"},
    }, sort_keys=False)  # the nodes chain in the order written
    model = compile_text(text)
    assert sum(n.n_params for n in model.graph.nodes.values()) == sum(p.numel() for p in model.module.parameters())
    assert model.graph.nodes["fc"].out.shape == ("N", 10)
    assert model.module(torch.zeros(2, 3, 16, 16)).shape == (2, 10)


def test_functional_lrn_reference():
    # nn.LocalResponseNorm is F.local_response_norm; our lowering must pass
    # k, alpha and beta through (AlexNet's k = 2, not torch's default 1).
    model = compile_text(spec_text("local_response_norm", dict(size=5, alpha=1e-4, beta=0.75, k=2), [[8, 3, 3]]))
    x = real_inputs([[8, 3, 3]])[0] * 30
    with torch.no_grad():
        torch.testing.assert_close(model.module(x), F.local_response_norm(x, 5, alpha=1e-4, beta=0.75, k=2.0))
        assert not torch.allclose(model.module(x), F.local_response_norm(x, 5, alpha=1e-4, beta=0.75, k=1.0))
