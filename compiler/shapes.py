"""Stage 5: shape inference. Each node's op validates its parameters and
computes its output shape from its inputs' shapes, in topological order, with
symbolic dimensions (N, T) carried through. All errors are collected; a node
whose input already failed is skipped rather than reported twice."""
from __future__ import annotations

from pydantic import ValidationError

from .errors import Collector, RuleError
from .ir import Graph, format_shape
from .ops import OPS


def infer(graph: Graph) -> None:
    errors = Collector()
    failed: set[str] = set()
    for node in graph.nodes.values():
        if any(src in failed for src in node.inputs):
            failed.add(node.name)
            continue
        op = OPS[node.op]
        where = dict(loc=node.loc, node=node.name, op=node.op, trace=node.trace)
        try:
            node.attrs = op.Params.model_validate(node.params)
        except ValidationError as e:
            for err in e.errors():
                key = err["loc"][0] if err["loc"] else None
                loc = node.param_locs.get(key, node.loc)
                errors.error(_param_message(node.op, key, err, op), **{**where, "loc": loc},
                             hint=_param_hint(key, err, op))
            failed.add(node.name)
            continue
        ins = [graph.tensor(src) for src in node.inputs]
        try:
            node.out = op.infer(node.attrs, ins)
            node.n_params = op.count_params(node.attrs, ins, node.out)
            node.macs = op.count_macs(node.attrs, ins, node.out)
        except RuleError as e:
            message = e.message
            if len(ins) > 1 or "input" not in message:
                message += ": " + " vs ".join(f"{format_shape(t.shape)} from '{src}'" for t, src in zip(ins, node.inputs))
            errors.error(message, **where, hint=e.hint)
            failed.add(node.name)
    errors.raise_if_any()


def _param_message(op_name: str, key, err: dict, op) -> str:
    if err["type"] == "extra_forbidden":
        return f"'{op_name}' has no parameter '{key}'"
    if err["type"] == "missing":
        return f"'{op_name}' needs the parameter '{key}'"
    return f"parameter '{key}': {err['msg'].lower()}, got {err.get('input')!r}"


def _param_hint(key, err: dict, op) -> str:
    from difflib import get_close_matches
    known = list(op.Params.model_fields)
    if err["type"] == "extra_forbidden":
        close = get_close_matches(str(key), known, n=1)
        if key in ("in_channels", "in_features", "num_features"):
            return "input sizes are inferred from the input's shape: remove it"
        return f"did you mean '{close[0]}'?" if close else f"its parameters: {', '.join(known) or 'none'}"
    return f"parameters of '{op.name}': {', '.join(known) or 'none'}"
