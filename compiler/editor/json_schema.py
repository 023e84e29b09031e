"""The JSON Schema (draft 2020-12) of the spec language, generated.

The structure comes from the pydantic models of `frontend/schema.py`; what a
node may hold comes from the op registry: one `if op is X then` branch per
public op, with X's parameters, their types, defaults and descriptions, so an
editor completes `conv2d`'s `kernel` and flags `kernal`.  A new op appears in
the schema the moment it is registered.

Where the compiler accepts an expression (a string starting with `$` or
holding `${...}`), so does the schema: any op parameter may be one, and so
may any element of a list.
"""
from __future__ import annotations

import copy
from typing import Any

from ..frontend.schema import NODE_KEYS, SpecFile
from ..ops import public_ops

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://netspec.dev/schema/spec.json"
EXPRESSION = {"type": "string", "pattern": r"^\s*\$|\$\{",
              "description": "an expression: '$name' or a string holding '${...}'"}


def spec_schema() -> dict[str, Any]:
    schema = SpecFile.model_json_schema(by_alias=True)
    schema = {"$schema": DRAFT, "$id": SCHEMA_ID, **schema,
              "title": "netspec spec", "description": "A network as a graph of named nodes: netspec's spec file."}
    node = schema["$defs"]["NodeSpec"]
    # NodeSpec's validator: exactly one of op and block.
    node["oneOf"] = [{"required": ["op"], "not": {"required": ["block"]}},
                     {"required": ["block"], "not": {"required": ["op"]}}]
    node["properties"]["op"] = {"description": "the layer: one of `netspec ops`, or an expression",
                                "anyOf": [{"enum": list(public_ops())}, EXPRESSION]}
    node["allOf"] = [_op_branch(name, op) for name, op in public_ops().items()]
    return schema


def _op_branch(name: str, op) -> dict[str, Any]:
    """If a node's op is `name`, its other keys are the node's own
    (`in`, `repeat`, ...) and the op's parameters, nothing else."""
    params = op.Params.model_json_schema()
    defs = params.pop("$defs", {})
    properties = {key: {} for key in NODE_KEYS}  # the node's keys, typed by NodeSpec itself
    properties["op"] = {"const": name, "description": op.doc}
    for key, prop in params.get("properties", {}).items():
        prop = _items_too(_inline(copy.deepcopy(prop), defs))
        described = {k: prop.pop(k) for k in ("description", "default", "title") if k in prop}
        properties[key] = {**described, "anyOf": [prop, EXPRESSION]}
    then: dict[str, Any] = {"properties": properties, "additionalProperties": False}
    if params.get("required"):
        then["required"] = params["required"]
    return {"if": {"properties": {"op": {"const": name}}, "required": ["op"]}, "then": then}


def _items_too(value: Any) -> Any:
    """The compiler evaluates a list's elements as expressions too
    (`shape: [$channels, 1, 1]`): so does the schema, at any depth."""
    if isinstance(value, dict):
        out = {k: _items_too(v) for k, v in value.items()}
        if isinstance(out.get("items"), dict):
            out["items"] = {"anyOf": [out["items"], EXPRESSION]}
        if isinstance(out.get("prefixItems"), list):
            out["prefixItems"] = [{"anyOf": [item, EXPRESSION]} for item in out["prefixItems"]]
        return out
    if isinstance(value, list):
        return [_items_too(v) for v in value]
    return value


def _inline(value: Any, defs: dict[str, Any]) -> Any:
    """Replace `#/$defs/X` references of a parameter model by their targets,
    so each branch stands alone inside the spec's schema."""
    if isinstance(value, dict):
        ref = value.get("$ref", "")
        if ref.startswith("#/$defs/") and ref[8:] in defs:
            return _inline(copy.deepcopy(defs[ref[8:]]), defs)
        return {k: _inline(v, defs) for k, v in value.items()}
    if isinstance(value, list):
        return [_inline(v, defs) for v in value]
    return value
