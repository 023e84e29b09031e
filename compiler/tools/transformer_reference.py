"""`netspec verify --against torch.nn:TransformerEncoder` (or
TransformerEncoderLayer, MultiheadAttention): compare the spec's encoder
layers with torch.nn's, built with the constructor arguments read from the
spec's nodes, on the same weights and the same random sequence.

The layers are the instance of a block that holds the spec's first
multi_head_attention node and the repeats of that instance after it
(TransformerEncoderLayer: the first only).  In each, the nodes with weights
take their roles by op and order, whatever their names: the attention is
`self_attn`, the two linears `linear1` and `linear2`, the two layer norms
`norm1` and `norm2`.  Read from them: d_model (the attention's width),
nhead, dim_feedforward (linear1's width), activation (the relu or gelu
node), layer_norm_eps, bias, and norm_first (a norm comes before the
attention).  MultiheadAttention compares the first attention node alone.
"""
from __future__ import annotations

import torch
from torch import nn

from ..api import Model
from ..errors import Diagnostic, SpecError
from ..ir import Graph, Instance, Node
from .compare import Result

REFERENCES = ("TransformerEncoder", "TransformerEncoderLayer", "MultiheadAttention")
LENGTH = 7  # the random sequence's length where the spec leaves it symbolic


def _fail(message: str, hint: str | None = None):
    raise SpecError(Diagnostic(message, hint=hint))


def verify_transformer(model: Model, against: str, tolerance: float = 1e-5, seed: int = 0) -> Result:
    name = against.partition(":")[2]
    graph = model.graph
    attention = next((n for n in graph.nodes.values() if n.op == "multi_head_attention"), None)
    if attention is None:
        _fail(f"the spec has no multi_head_attention node to compare with torch.nn.{name}")
    gen = torch.Generator().manual_seed(seed)
    if name == "MultiheadAttention":
        return _attention(model, attention, against, tolerance, gen)
    layers = _layers(graph, attention)
    if name == "TransformerEncoderLayer":
        layers = layers[:1]
    roles = [_roles(graph, layer) for layer in layers]
    config = _config(graph, roles[0], layers[0])
    for layer, r in zip(layers[1:], roles[1:]):
        if _config(graph, r, layer) != config:
            _fail(f"layer '{layer.name}' differs from '{layers[0].name}' in its sizes or norms",
                  hint="torch.nn.TransformerEncoder repeats one layer")
    causal = config.pop("causal")
    layer = nn.TransformerEncoderLayer(**config, dropout=0.0, batch_first=True)
    if name == "TransformerEncoder":
        reference = nn.TransformerEncoder(layer, len(layers), enable_nested_tensor=False)
        reference_layers = list(reference.layers)
    else:
        reference, reference_layers = layer, [layer]
    for r, theirs in zip(roles, reference_layers):
        for role, node in r.items():
            _load(model.module.get_submodule(node.name), getattr(theirs, role), node, role)
    ours = [_module(model, layer) for layer in layers]
    for m in [*ours, reference]:
        m.eval()

    x = torch.randn(2, LENGTH, config["d_model"], generator=gen)
    kwargs = {}
    if causal:
        mask = nn.Transformer.generate_square_subsequent_mask(LENGTH)
        kwargs = {"mask" if name == "TransformerEncoder" else "src_mask": mask, "is_causal": True}
    with torch.no_grad():
        theirs = reference(x, **kwargs)
        mine = x
        for m in ours:
            mine = m(mine)
    diff = (mine.double() - theirs.double()).abs().max().item()
    scale = theirs.abs().max().item() or 1.0
    shown = ", ".join(f"{k} {v}" for k, v in config.items() if k in ("d_model", "nhead", "dim_feedforward"))
    first = "norm_first" if config["norm_first"] else "post-norm"
    where = layers[0].name if len(layers) == 1 else f"{layers[0].name}..{layers[-1].name.rpartition('.')[2]}"
    return Result(f"{against} ({shown}, {config['activation']}, {first}, {len(layers)} layer(s)) at '{where}'",
                  "roles", len(reference.state_dict()), diff, diff / scale, tolerance)


def _attention(model: Model, node: Node, against: str, tolerance: float, gen: torch.Generator) -> Result:
    graph = model.graph
    infos = graph.input_infos(node)
    width = infos[0].shape[-1]
    reference = nn.MultiheadAttention(width, node.attrs.heads, bias=node.attrs.bias, batch_first=True).eval()
    ours = model.module.get_submodule(node.name).eval()
    _load(ours, reference, node, "self_attn")
    lengths = [d if isinstance(d, int) else LENGTH for d in (i.shape[1] for i in infos)]
    xs = [torch.randn(2, t, width, generator=gen) for t in lengths]
    q = xs[0]
    k = xs[1] if len(xs) > 1 else q
    v = xs[2] if len(xs) > 2 else k
    mask = nn.Transformer.generate_square_subsequent_mask(q.shape[1]) if node.attrs.causal else None
    with torch.no_grad():
        theirs = reference(q, k, v, need_weights=False, attn_mask=mask)[0]
        mine = ours(*xs)
    diff = (mine.double() - theirs.double()).abs().max().item()
    scale = theirs.abs().max().item() or 1.0
    return Result(f"{against} ({width} wide, {node.attrs.heads} heads) at '{node.name}'", "name",
                  len(reference.state_dict()), diff, diff / scale, tolerance)


def _layers(graph: Graph, attention: Node) -> list[Instance]:
    """The instance holding `attention`, and the repeats after it."""
    holders = [i for i in graph.instances.values() if attention.name.startswith(i.name + ".")]
    if not holders:
        _fail(f"'{attention.name}' is not inside a block, so there is no encoder layer to compare",
              hint="write the layer as a block (see specs/transformer.yaml), or compare torch.nn:MultiheadAttention")
    first = max(holders, key=lambda i: len(i.name))  # the innermost
    parent, _, index = first.name.rpartition(".")
    layers = [first]
    if index.isdigit():  # a repeat: its later siblings follow, each taking the one before
        k = int(index) + 1
        while f"{parent}.{k}" in graph.instances:
            nxt = graph.instances[f"{parent}.{k}"]
            chained = all(src.startswith(layers[-1].name + ".") for src in nxt.inputs.values())
            if nxt.block != first.block or not chained:
                break
            layers.append(nxt)
            k += 1
    return layers


def _nodes(graph: Graph, layer: Instance) -> list[Node]:
    return [n for n in graph.nodes.values() if n.name.startswith(layer.name + ".")]


def _roles(graph: Graph, layer: Instance) -> dict[str, Node]:
    weighted = [n for n in _nodes(graph, layer) if n.n_params]
    by_op: dict[str, list[Node]] = {}
    for n in weighted:
        by_op.setdefault(n.op, []).append(n)
    expected = {"multi_head_attention": 1, "linear": 2, "layer_norm": 2}
    for n in weighted:
        if n.op not in expected:
            _fail(f"layer '{layer.name}': '{n.name}' ({n.op}) has weights torch.nn.TransformerEncoderLayer lacks",
                  hint="its weights are one attention, two linears and two layer norms")
    for op, count in expected.items():
        found = by_op.get(op, [])
        if len(found) != count:
            _fail(f"layer '{layer.name}' has {len(found)} {op} node(s) with weights, "
                  f"torch.nn.TransformerEncoderLayer {count}",
                  hint="its weights are one attention, two linears and two layer norms")
    (attention,), (linear1, linear2), (norm1, norm2) = (by_op[op] for op in expected)
    return {"self_attn": attention, "linear1": linear1, "linear2": linear2, "norm1": norm1, "norm2": norm2}


def _config(graph: Graph, roles: dict[str, Node], layer: Instance) -> dict:
    attention, linear1, norm1 = roles["self_attn"], roles["linear1"], roles["norm1"]
    activations = [n for n in _nodes(graph, layer) if n.op in ("relu", "gelu")]
    if len(activations) != 1 or getattr(activations[0].attrs, "approximate", "none") != "none":
        _fail(f"layer '{layer.name}' needs one relu or (exact) gelu between its linears, as "
              f"torch.nn.TransformerEncoderLayer's activation")
    order = list(graph.nodes)
    for norm in (norm1, roles["norm2"]):
        if norm.attrs.dims != 1 or norm.attrs.channels_first or not norm.attrs.affine:
            _fail(f"'{norm.name}' is not torch.nn.LayerNorm over the width",
                  hint="layer_norm with the defaults: dims 1, affine")
    return {"d_model": graph.input_infos(attention)[0].shape[-1], "nhead": attention.attrs.heads,
            "dim_feedforward": linear1.out.shape[-1], "activation": activations[0].op,
            "layer_norm_eps": norm1.attrs.eps, "norm_first": order.index(norm1.name) < order.index(attention.name),
            "bias": attention.attrs.bias, "causal": attention.attrs.causal}


def _load(ours: nn.Module, theirs: nn.Module, node: Node, role: str) -> None:
    want, have = theirs.state_dict(), ours.state_dict()
    if list(want) != list(have) or any(want[k].shape != have[k].shape for k in want):
        mine = ", ".join(f"'{k}' {list(v.shape)}" for k, v in have.items())
        ref = ", ".join(f"'{k}' {list(v.shape)}" for k, v in want.items())
        _fail(f"'{node.name}' ({node.op}) does not match torch.nn's {role}: ours {mine or 'none'} vs {ref}")
    ours.load_state_dict(want)


def _module(model: Model, layer: Instance) -> nn.Module:
    try:
        return model.module.get_submodule(layer.name)
    except AttributeError:
        _fail(f"layer '{layer.name}' was not built as a module of its own, so it cannot be run alone")
