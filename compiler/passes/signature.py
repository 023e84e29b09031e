"""The one pass that owns each node's op signature, before any shape is
known: the op exists (and may be written in a spec), the node has as many
inputs as the op takes, and its parameters are the op's (validated into
`node.attrs`).  Recurses into node bodies; collects every problem."""
from __future__ import annotations

from difflib import get_close_matches

from pydantic import ValidationError

from ..errors import EXPECTED, Collector, describe
from ..ir import Graph, Node
from ..ops import OPS, Op, public_ops


def check(graph: Graph, errors: Collector | None = None) -> None:
    """Raise SpecError for every bad signature; with `errors`, add to it instead."""
    found = errors if errors is not None else Collector()
    for node in graph.nodes.values():
        check_node(node, found)
    if errors is None:
        found.raise_if_any()


def check_node(node: Node, errors: Collector) -> None:
    """One node's signature, and its body's."""
    op = _op(node, errors)
    if op is None:
        return
    _arity(node, op, errors)
    _params(node, op, errors)
    if node.body is not None:
        check(node.body, errors)


def _op(node: Node, errors: Collector) -> Op | None:
    op = OPS.get(node.op)
    if op is not None and (not op.internal or node.synthetic):
        return op
    names = list(public_ops())
    close = get_close_matches(node.op, names, n=1)
    errors.error(f"unknown op '{node.op}'", loc=node.param_locs.get("op", node.loc), node=node.name,
                 trace=node.trace,
                 hint=f"did you mean '{close[0]}'?" if close else "see 'netspec ops' for the list of ops")
    return None


def _arity(node: Node, op: Op, errors: Collector) -> None:
    lo, hi = (op.arity, op.arity) if isinstance(op.arity, int) else op.arity
    n = len(node.inputs)
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
        errors.error(f"'{node.op}' takes {want} input(s), got {n}", loc=node.loc, node=node.name,
                     op=node.op, trace=node.trace,
                     hint="list the inputs under 'in:'" if n < lo else
                     "write 'in: []': it reads no node" if hi == 0 else "remove the extra inputs")


def _params(node: Node, op: Op, errors: Collector) -> None:
    where = dict(node=node.name, op=node.op, trace=node.trace)
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
            errors.error(_param_message(node.op, key, errs, node.params.get(key)),
                         loc=node.param_locs.get(key, node.loc), hint=_param_hint(key, errs[0], op), **where)


def _param_message(op_name: str, key, errs: list[dict], value) -> str:
    err = errs[0]
    if err["type"] == "extra_forbidden":
        return f"'{op_name}' has no parameter '{key}'"
    if err["type"] == "missing":
        return f"'{op_name}' needs the parameter '{key}'"
    expected = list(dict.fromkeys(_expected(e) for e in errs))
    if None in expected:  # a message of the op's own (a validator's): keep its words
        return f"parameter '{key}': {err['msg'].lower()}, got {err.get('input')!r}"
    got = list(value) if isinstance(value, list) else describe(value)
    return f"parameter '{key}': expected {' or '.join(expected)}, got {got}"


def _expected(err: dict) -> str | None:
    """What one failed member of a parameter's type accepts, in words."""
    member = str(err["loc"][1]) if len(err["loc"]) > 1 else ""
    if member.startswith("tuple"):
        return "a pair such as [3, 3]"
    if err["type"] in EXPECTED:
        return EXPECTED[err["type"]]
    if err["type"] == "literal_error":
        return err["ctx"]["expected"]
    if err["msg"].startswith("Input should be "):  # "a valid number, unable to parse ..."
        return err["msg"].removeprefix("Input should be ").split(", ")[0]
    return None


def _param_hint(key, err: dict, op: Op) -> str:
    known = list(op.Params.model_fields)
    if err["type"] == "extra_forbidden":
        close = get_close_matches(str(key), known, n=1)
        if key in ("in_channels", "in_features", "num_features"):
            return "input sizes are inferred from the input's shape: remove it"
        return f"did you mean '{close[0]}'?" if close else f"its parameters: {', '.join(known) or 'none'}"
    return f"parameters of '{op.name}': {', '.join(known) or 'none'}"
