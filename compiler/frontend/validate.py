"""Check a loaded tree against the schema and return the typed, located
tree that `expand` reads; report every problem at its position, in words a
person can act on."""
from __future__ import annotations

import re
from difflib import get_close_matches

from pydantic import ValidationError

from ..errors import EXPECTED, Collector, describe
from .load import Map, locate
from .reserved import why_reserved
from .schema import NAME_PATTERN, NODE_KEYS, BlockSpec, InputSpec, SpecFile, keys_of

_FIELDS = {
    "spec": keys_of(SpecFile),
    "block": keys_of(BlockSpec),
    "input": keys_of(InputSpec),
    "node": list(NODE_KEYS),
}


def validate(tree: Map) -> SpecFile:
    # Key-name rules the schema cannot express come first.
    errors = Collector()
    _check_names(tree, errors)
    try:
        spec = SpecFile.model_validate(tree)
    except ValidationError as e:
        errs = e.errors()
        extras = {(tuple(x["loc"][:-1]), str(x["loc"][-1])) for x in errs if x["type"] == "extra_forbidden"}
        for err in errs:
            if err["type"] == "missing" and get_close_matches(
                    str(err["loc"][-1]), [k for parent, k in extras if parent == tuple(err["loc"][:-1])], n=1):
                continue  # misspelt: the unknown key's error suggests this one
            _report(tree, err, errors)
        errors.raise_if_any()
        raise  # unreachable: a ValidationError always has errors
    errors.raise_if_any()
    return spec


def _check_names(tree: Map, errors: Collector) -> None:
    """Node, block, input and parameter names must be identifiers."""
    def check(mapping, what):
        if not isinstance(mapping, Map):
            return
        for key in mapping:
            if not isinstance(key, str) or not re.match(NAME_PATTERN, key):
                errors.error(f"invalid {what} name {key!r}", loc=mapping.key_locs.get(key),
                             hint="names start with a letter or '_' and hold letters, digits and '_'")
            elif what in ("node", "input") and (why := why_reserved(key, what)):
                errors.error(f"{what} name '{key}' {why}", loc=mapping.key_locs.get(key),
                             hint=f"rename the {what}: a name that says what it does, or '{key}_'")
    check(tree.get("inputs"), "input")
    check(tree.get("nodes"), "node")
    check(tree.get("blocks"), "block")
    blocks = tree.get("blocks")
    if isinstance(blocks, Map):
        for body in blocks.values():
            if isinstance(body, Map):
                check(body.get("nodes"), "node")


def _context(path: tuple) -> str:
    """Which kind of mapping a pydantic error path points into."""
    if len(path) >= 1 and path[0] == "inputs" and len(path) == 3:
        return "input"
    if "nodes" in path and path.index("nodes") == len(path) - 3:
        return "node"
    if path and path[0] == "blocks" and len(path) == 3:
        return "block"
    return "spec"


def _report(tree: Map, err: dict, errors: Collector) -> None:
    path = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    kind = err["type"]
    where = ".".join(str(p) for p in path) or "the spec"
    loc = locate(tree, path)
    if kind == "extra_forbidden":
        key = path[-1]
        parent = locate_parent(tree, path)
        if isinstance(parent, Map) and key in parent.key_locs:
            loc = parent.key_locs[key]
        context = _context(path[:-1] + ("?",))
        if context == "spec" and len(path) == 1:
            context = "spec"
        known = _FIELDS.get(context, [])
        close = get_close_matches(str(key), known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed keys here: {', '.join(known)}"
        errors.error(f"unknown key '{key}' in {where.rsplit('.', 1)[0] if len(path) > 1 else 'the spec'}",
                     loc=loc, hint=hint)
    elif kind == "missing":
        errors.error(f"missing required key '{path[-1]}'", loc=locate(tree, path[:-1]),
                     hint=_MISSING_HINTS.get(str(path[-1])))
    elif kind == "value_error" and "exactly one of" in err["msg"]:
        errors.error(err["msg"].removeprefix("Value error, "), loc=loc, node=_node_name(path))
    elif kind == "literal_error":
        errors.error(f"{where}: {err['msg'].lower()}, got {err['input']!r}", loc=loc)
    elif kind == "too_short":
        errors.error(f"{where} must not be empty", loc=loc)
    elif kind == "string_pattern_mismatch":
        errors.error(f"{where}: {err['input']!r} is not a valid name", loc=loc,
                     hint="use letters, digits, '_' and '-', starting with a letter")
    else:
        expected = EXPECTED.get(kind, err["msg"].lower())
        errors.error(f"{where}: expected {expected}, got {describe(err.get('input'))}", loc=loc)


def locate_parent(tree, path):
    node = tree
    for step in path[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _node_name(path: tuple) -> str | None:
    return str(path[-1]) if len(path) >= 2 and path[-2] == "nodes" else None


_MISSING_HINTS = {
    "name": "add 'name: my_model' at the top of the file",
    "inputs": "declare inputs, e.g. 'inputs: {image: {shape: [N, 3, 224, 224]}}'",
    "outputs": "name the outputs, e.g. 'outputs: {logits: fc}'",
    "nodes": "add the 'nodes:' mapping with the layers",
    "shape": "give the input a shape, e.g. 'shape: [N, 3, 224, 224]'",
}
