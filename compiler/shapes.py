"""Stage 5: shape inference. Each node's op validates its parameters and
computes its output shape from its inputs' shapes, in topological order, with
symbolic dimensions (N, T) carried through. All errors are collected; a node
whose input already failed is skipped rather than reported twice."""
from __future__ import annotations

from difflib import get_close_matches

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
            # A parameter of a union type (kernel: 3 or [3, 5]) fails once per
            # member: one message per parameter names all that it accepts.
            by_key: dict = {}
            for err in e.errors():
                by_key.setdefault(err["loc"][0] if err["loc"] else None, []).append(err)
            extras = [str(k) for k, errs in by_key.items() if errs[0]["type"] == "extra_forbidden"]
            for key, errs in by_key.items():
                if errs[0]["type"] == "missing" and get_close_matches(str(key), extras, n=1):
                    continue  # misspelt: the unknown key's error suggests this one
                loc = node.param_locs.get(key, node.loc)
                errors.error(_param_message(node.op, key, errs, node.params.get(key)), **{**where, "loc": loc},
                             hint=_param_hint(key, errs[0], op))
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


def _param_message(op_name: str, key, errs: list[dict], value) -> str:
    from .validate import _EXPECTED, _describe
    err = errs[0]
    if err["type"] == "extra_forbidden":
        return f"'{op_name}' has no parameter '{key}'"
    if err["type"] == "missing":
        return f"'{op_name}' needs the parameter '{key}'"
    expected = list(dict.fromkeys(_expected(e, _EXPECTED) for e in errs))
    if None in expected:  # a message of the op's own (a validator's): keep its words
        return f"parameter '{key}': {err['msg'].lower()}, got {err.get('input')!r}"
    got = list(value) if isinstance(value, list) else _describe(value)
    return f"parameter '{key}': expected {' or '.join(expected)}, got {got}"


def _expected(err: dict, words: dict) -> str | None:
    """What one failed member of a parameter's type accepts, in words."""
    member = str(err["loc"][1]) if len(err["loc"]) > 1 else ""
    if member.startswith("tuple"):
        return "a pair such as [3, 3]"
    if err["type"] in words:
        return words[err["type"]]
    if err["type"] == "literal_error":
        return err["ctx"]["expected"]
    if err["msg"].startswith("Input should be "):  # "a valid number, unable to parse ..."
        return err["msg"].removeprefix("Input should be ").split(", ")[0]
    return None


def _param_hint(key, err: dict, op) -> str:
    from difflib import get_close_matches
    known = list(op.Params.model_fields)
    if err["type"] == "extra_forbidden":
        close = get_close_matches(str(key), known, n=1)
        if key in ("in_channels", "in_features", "num_features"):
            return "input sizes are inferred from the input's shape: remove it"
        return f"did you mean '{close[0]}'?" if close else f"its parameters: {', '.join(known) or 'none'}"
    return f"parameters of '{op.name}': {', '.join(known) or 'none'}"
