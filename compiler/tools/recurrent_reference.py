"""`netspec verify --against torch.nn:LSTM` (or GRU, RNN): compare a spec's
recurrent layer with torch.nn's module built with the sizes taken from the
spec, on the same weights and the same random sequence.

The layer compared is the spec's first recurrent node: a built-in op that
is a torch.nn module (`Op.torch_reference`: rnn, lstm, gru, whose weights
have torch.nn's names), or a cell's scan.  A cell's weights are mapped by
the rule the gate equations suggest: its layers whose rows are output
features (`Op.gate_rows`: linear) on the step input, in definition order,
take consecutive rows of weight_ih_l0 and bias_ih_l0; those on a state take
the rows of weight_hh_l0 and bias_hh_l0.  The sequence output and every
final state are compared.
"""
from __future__ import annotations

import torch
from torch import nn

from ..api import Model
from ..errors import Diagnostic, SpecError
from ..ir import Node
from ..ops import OPS, SubgraphOp
from .compare import Result

REFERENCES = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}


def _fail(message: str, hint: str | None = None):
    raise SpecError(Diagnostic(message, hint=hint))


def _recurrent(node: Node) -> bool:
    op = OPS[node.op]
    return op.torch_reference in REFERENCES or isinstance(op, SubgraphOp)


def verify_torch_nn(model: Model, against: str, tolerance: float = 1e-5, seed: int = 0) -> Result:
    name = against.partition(":")[2]
    if name not in REFERENCES:
        _fail(f"torch.nn has no reference '{name}'",
              hint="use torch.nn:LSTM, GRU, RNN, TransformerEncoder, TransformerEncoderLayer or MultiheadAttention")
    graph = model.graph
    node = next((n for n in graph.nodes.values() if _recurrent(n)), None)
    if node is None:
        _fail(f"the spec has no recurrent layer to compare with torch.nn.{name}",
              hint="a built-in rnn/lstm/gru node or an instance of a cell block (a block with 'state')")
    x_info = graph.tensor(node.inputs[0])
    features = x_info.shape[-1]
    ours = model.module.get_submodule(node.name).eval()
    cell = node.body is not None
    if cell:
        hidden = node.attrs.states[0].shape[-1]
        reference = REFERENCES[name](features, hidden, batch_first=True)
        _copy_cell_weights(node, reference, ours, name)
        matched = "gate rows"
    else:
        op = OPS[node.op]
        if op.torch_reference != name:
            _fail(f"node '{node.name}' is a built-in {node.op}, not torch.nn.{name}")
        # The reference is the op's own lowering, without the packing of lengths.
        call = op.lower(node.attrs, [x_info], node.out)
        reference = REFERENCES[name](*call.args, **call.kwargs)
        ours.load_state_dict(reference.state_dict())
        matched = "name"
    reference.eval()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 7, features, generator=gen)
    with torch.no_grad():
        seq, state = reference(x)
        got = ours(x)
    states = list(state) if isinstance(state, tuple) else [state]
    if cell:
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


def _copy_cell_weights(scan: Node, reference: nn.Module, ours: nn.Module, name: str) -> None:
    cell, body = scan.attrs, scan.body
    states = {s.name for s in cell.states}
    rows: dict[str, list[tuple[Node, tuple[str, ...]]]] = {"ih": [], "hh": []}
    for node in body.nodes.values():
        tensors = OPS[node.op].gate_rows(node.attrs)
        if tensors is None:
            if node.n_params:
                _fail(f"cell '{cell.block}': '{node.name}' ({node.op}) has weights that do not map onto "
                      f"torch.nn.{name}'s", hint="torch.nn's cells have linear gates only")
            continue
        src = node.inputs[0]
        if src in cell.step_inputs:
            rows["ih"].append((node, tensors))
        elif src in states:
            rows["hh"].append((node, tensors))
        else:
            _fail(f"cell '{cell.block}': {node.op} '{node.name}' takes '{src}', neither the step input nor a "
                  f"state, so its weights do not map onto torch.nn.{name}'s",
                  hint="torch.nn's cells apply every weight to x_t or h_(t-1) directly")
    new = {}
    for kind, nodes in rows.items():
        stacked = {"weight": getattr(reference, f"weight_{kind}_l0"), "bias": getattr(reference, f"bias_{kind}_l0", None)}
        total = sum(n.out.shape[-1] for n, _ in nodes)
        if total != stacked["weight"].shape[0]:
            _fail(f"cell '{cell.block}': its linears on {'the input' if kind == 'ih' else 'the state'} give "
                  f"{total} rows, torch.nn.{name}'s weight_{kind}_l0 has {stacked['weight'].shape[0]}",
                  hint="the cell has a different number of gates")
        start = 0
        for n, tensors in nodes:
            size = n.out.shape[-1]
            for tensor in tensors:
                new[f"cell.{n.name}.{tensor}"] = stacked[tensor][start:start + size]
            start += size
    ours.load_state_dict({k: v.detach().clone() for k, v in new.items()})
