"""`netspec verify --against torch.nn:LSTM` (or GRU, RNN): compare a spec's
recurrent layer with torch.nn's module built with the sizes taken from the
spec, on the same weights and the same random sequence.

The layer compared is the spec's first recurrent node: a built-in rnn, lstm
or gru op (whose weights have torch.nn's names), or a cell block.  A cell's
weights are mapped by the rule the gate equations suggest: the cell's linears
on the step input, in definition order, take consecutive rows of
weight_ih_l0 and bias_ih_l0; its linears on a state take those of
weight_hh_l0 and bias_hh_l0.  The sequence output and every final state are
compared.
"""
from __future__ import annotations

import torch
from torch import nn

from .api import Model
from .errors import Diagnostic, SpecError
from .verify import Result

REFERENCES = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}
RECURRENT_OPS = ("rnn", "lstm", "gru", "scan")


def _fail(message: str, hint: str | None = None):
    raise SpecError(Diagnostic(message, hint=hint))


def verify_torch_nn(model: Model, against: str, tolerance: float = 1e-5, seed: int = 0) -> Result:
    name = against.partition(":")[2]
    if name not in REFERENCES:
        _fail(f"torch.nn has no recurrent reference '{name}'", hint="use torch.nn:LSTM, torch.nn:GRU or torch.nn:RNN")
    graph = model.graph
    node = next((n for n in graph.nodes.values() if n.op in RECURRENT_OPS), None)
    if node is None:
        _fail(f"the spec has no recurrent layer to compare with torch.nn.{name}",
              hint="a built-in rnn/lstm/gru node or an instance of a cell block (a block with 'state')")
    x_info = graph.tensor(node.inputs[0])
    features = x_info.shape[-1]
    ours = model.module.get_submodule(node.name).eval()
    if node.op == "scan":
        cell = node.attrs.cell
        hidden = cell.states[0].shape[-1]
        reference = REFERENCES[name](features, hidden, batch_first=True)
        _copy_cell_weights(cell, reference, ours, name)
        matched = "gate rows"
    else:
        if node.op != name.lower():
            _fail(f"node '{node.name}' is a built-in {node.op}, not torch.nn.{name}")
        p = node.attrs
        kwargs = dict(num_layers=p.num_layers, bidirectional=p.bidirectional, batch_first=p.batch_first,
                      bias=p.bias)
        if name == "RNN":
            kwargs["nonlinearity"] = p.nonlinearity
        reference = REFERENCES[name](features, p.hidden_size, **kwargs)
        ours.load_state_dict(reference.state_dict())
        matched = "name"
    reference.eval()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 7, features, generator=gen)
    with torch.no_grad():
        seq, state = reference(x)
        got = ours(x)
    states = list(state) if isinstance(state, tuple) else [state]
    if node.op == "scan":
        theirs = [seq, *(s[0] for s in states)]
        mine = list(got)[:len(theirs)]
    else:
        theirs, mine = [seq, *states], [got[0], *(list(got[1]) if isinstance(got[1], tuple) else [got[1]])]
    diff = scale = 0.0
    for a, b in zip(mine, theirs):
        if a.shape != b.shape:
            _fail(f"output shapes differ: ours {list(a.shape)} vs torch.nn.{name} {list(b.shape)}")
        diff = max(diff, (a.double() - b.double()).abs().max().item())
        scale = max(scale, b.abs().max().item())
    return Result(f"{against} ({features} -> {reference.hidden_size}) at '{node.name}'", matched,
                  len(reference.state_dict()), diff, diff / (scale or 1.0), tolerance)


def _copy_cell_weights(cell, reference: nn.Module, ours: nn.Module, name: str) -> None:
    states = {s.name for s in cell.states}
    rows = {"ih": [], "hh": []}
    for node in cell.graph.nodes.values():
        if node.op != "linear":
            continue
        src = node.inputs[0]
        if src in cell.step_inputs:
            rows["ih"].append(node)
        elif src in states:
            rows["hh"].append(node)
        else:
            _fail(f"cell '{cell.block}': linear '{node.name}' takes '{src}', neither the step input nor a state, "
                  f"so its weights do not map onto torch.nn.{name}'s",
                  hint="torch.nn's cells apply every weight to x_t or h_(t-1) directly")
    new = {}
    for kind, nodes in rows.items():
        weight = getattr(reference, f"weight_{kind}_l0")
        bias = getattr(reference, f"bias_{kind}_l0", None)
        total = sum(n.out.shape[-1] for n in nodes)
        if total != weight.shape[0]:
            _fail(f"cell '{cell.block}': its linears on {'the input' if kind == 'ih' else 'the state'} give "
                  f"{total} rows, torch.nn.{name}'s weight_{kind}_l0 has {weight.shape[0]}",
                  hint="the cell has a different number of gates")
        start = 0
        for n in nodes:
            size = n.out.shape[-1]
            new[f"cell.{n.name}.weight"] = weight[start:start + size]
            if n.attrs.bias:
                new[f"cell.{n.name}.bias"] = bias[start:start + size]
            start += size
    ours.load_state_dict({k: v.detach().clone() for k, v in new.items()})
