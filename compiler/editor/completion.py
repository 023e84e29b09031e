"""What may be written at the cursor, read from the text before it (the
text being typed rarely parses): after `op:` an op, after `block:` a block,
in `in:` a name the node can read, at a key of a node its op's parameters
(from the op registry's pydantic models, with their descriptions) or its
block's, after `$` a parameter in scope."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..frontend.schema import NODE_KEYS
from ..ops import public_ops
from .document import display_value
from .outline import TOP, Outline

OP_VALUE = re.compile(r"(^|[{,\s])op:\s*[\"']?\w*$")
BLOCK_VALUE = re.compile(r"(^|[{,\s])block:\s*[\"']?\w*$")
IN_VALUE = re.compile(r"(^|[{,\s])in:\s*(\[([^\]]*,)?\s*)?[\"']?[\w.]*$")
EXPRESSION = re.compile(r"\$(\{[^}]*?)?\w*$")
FLOW_KEY = re.compile(r"[{,]\s*\w*$")
BLOCK_KEY = re.compile(r"^(\s+)\w*$")
KEY_VALUE = re.compile(r"(?:^|[{,\s])(\w+):\s*[\"']?([\w$]*)")
NODE_KEY_DOCS = {
    "op": "the layer: one of `netspec ops`",
    "block": "an instance of a block of this file",
    "in": "the inputs: a name or a list of names (default: the previous node)",
    "repeat": "a count or a list: the node is made once for each ($i, $item)",
    "when": "an expression: the node exists only where it is true",
    "overrides": "per repeat index, the arguments that differ: {0: {stride: 2}}",
    "doc": "a line saying what the node is for",
}
LOOK_BACK = 12  # lines searched for the start of the mapping being typed in


@dataclass(frozen=True)
class Item:
    label: str
    kind: str  # "op", "block", "name", "parameter", "key", "variable"
    detail: str = ""
    documentation: str = ""
    insert: str | None = None


def complete(lines: list[str], line: int, col: int, outline: Outline | None) -> list[Item]:
    """Completions at a 0-based position."""
    text = lines[line] if 0 <= line < len(lines) else ""
    prefix = text[:col]
    scope = _scope(outline, line)
    if EXPRESSION.search(prefix):
        return _variables(outline, scope)
    if OP_VALUE.search(prefix):
        return [Item(name, "op", op.doc, _op_doc(op)) for name, op in public_ops().items()]
    if BLOCK_VALUE.search(prefix):
        return [Item(name, "block", f"block at line {loc.line}") for name, loc in (outline.blocks if outline else {}).items()]
    if IN_VALUE.search(prefix):
        return _names(outline, scope, line)
    mapping = _open_mapping(lines, line, col) if FLOW_KEY.search(prefix) else None
    if mapping is None and BLOCK_KEY.match(prefix):
        mapping = _block_mapping(lines, line, len(BLOCK_KEY.match(prefix).group(1)))
    if mapping is None:
        return []
    given = dict(KEY_VALUE.findall(mapping))
    return _keys(given, outline)


def _scope(outline: Outline | None, line: int) -> str | None:
    entry = outline.entry_at(line + 1) if outline else None
    return entry.scope if entry else TOP


def _op_doc(op) -> str:
    fields = op.Params.model_fields
    if not fields:
        return "no parameters"
    return "\n".join(f"- `{k}`" + ("" if f.is_required() else f" = {display_value(f.default)}")
                     + (f": {f.description}" if f.description else "") for k, f in fields.items())


def _names(outline: Outline | None, scope: str | None, line: int) -> list[Item]:
    if outline is None:
        return []
    here = outline.entry_at(line + 1)
    return [Item(name, "name", f"line {loc.line}") for name, loc in outline.names.get(scope, {}).items()
            if not (here and here.scope == scope and here.name == name)]


def _variables(outline: Outline | None, scope: str | None) -> list[Item]:
    names = {"variant": "the variant being built", "i": "the repeat index", "item": "the repeat's list item"}
    if outline is not None:
        params = outline.tree.get("params")
        for key, value in params.items() if isinstance(params, dict) else ():
            names[str(key)] = f"spec parameter = {display_value(value)}"
        for key, value in outline.block_params.get(scope, {}).items() if scope is not None else ():
            names[str(key)] = f"parameter of block '{scope}'" + ("" if value is None else f" = {display_value(value)}")
    return [Item(name, "variable", detail) for name, detail in names.items()]


def _keys(given: dict[str, str], outline: Outline | None) -> list[Item]:
    """The keys a node may still take: its op's parameters (or its block's),
    then the keys every node has."""
    items = []
    op = public_ops().get(given.get("op", ""))
    for name, f in op.Params.model_fields.items() if op is not None else ():
        if name not in given:
            detail = "required" if f.is_required() else f"default {display_value(f.default)}"
            items.append(Item(name, "parameter", f"{op.name}: {detail}", f.description or "", f"{name}: "))
    block = given.get("block", "")
    for name, default in (outline.block_params.get(block, {}) if outline else {}).items():
        if name not in given:
            detail = "required" if default is None else f"default {display_value(default)}"
            items.append(Item(name, "parameter", f"block {block}: {detail}", insert=f"{name}: "))
    one_kind = {"op", "block"} if {"op", "block"} & set(given) else set()  # a node is one or the other
    items += [Item(key, "key", NODE_KEY_DOCS.get(key, ""), insert=f"{key}: ")
              for key in NODE_KEYS if key not in given and key not in one_kind]
    return items


def _open_mapping(lines: list[str], line: int, col: int) -> str | None:
    """The text of the `{...}` mapping the cursor is in, from its `{` to its
    `}` (or the end of the cursor's line while it is unclosed)."""
    start = max(0, line - LOOK_BACK)
    before = "\n".join(lines[start:line] + [lines[line][:col]])
    opened, i, in_quote = [], 0, None
    while i < len(before):
        c = before[i]
        if in_quote:  # a quote left open on its line is an apostrophe in a plain word (`doc: it's`)
            in_quote = None if c in (in_quote, "\n") else in_quote
        elif c in "\"'":
            in_quote = c
        elif c == "{":
            opened.append(i)
        elif c == "}" and opened:
            opened.pop()
        elif c == "#" and (i == 0 or before[i - 1] in " \t\n"):  # a comment: to the end of its line
            end = before.find("\n", i)
            i = len(before) if end < 0 else end
            continue
        i += 1
    if not opened:
        return None
    rest = lines[line][col:]
    close = rest.find("}")
    return before[opened[-1]:] + (rest[:close] if close >= 0 else rest)


def _block_mapping(lines: list[str], line: int, indent: int) -> str | None:
    """The sibling lines of a key being typed in a block-style node mapping
    (`op: conv2d` on the line above, at the same indentation); None when the
    key is not inside a node (its siblings name no op or block)."""
    siblings = []
    for step in (-1, 1):
        row = line + step
        while 0 <= row < len(lines):
            text = lines[row]
            width = len(text) - len(text.lstrip())
            if text.strip() and not text.lstrip().startswith("#"):
                if width < indent:
                    break
                if width == indent:
                    siblings.append(text.strip())
            row += step
    mapping = "\n".join(siblings)
    return mapping if re.search(r"^(op|block):", mapping, re.M) else None
