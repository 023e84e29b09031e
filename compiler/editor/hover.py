"""The hover text of a node entry, in Markdown: for an op, its output shape
(symbolic: N is the batch), its parameters and its counts; for a block
instance, the block's parameters as the instance sets them and its output
shapes.  An entry inside a block, or one that repeats, lists each node it
became."""
from __future__ import annotations

from ..ir import Graph, Node, format_shape
from ..ops import OPS
from .document import display_value
from .outline import Entry, GraphIndex, Outline

MAX_LISTED = 12  # nodes or instances listed one per line; the rest are counted


def hover_text(entry: Entry, outline: Outline, index: GraphIndex, word: str | None = None) -> str:
    """The hover of `entry`, an entry of `outline`, whose graph `index` holds;
    `word` (the word under the cursor) adds the description of the parameter it names."""
    parts = []
    if word and entry.op in OPS and word in OPS[entry.op].Params.model_fields and word != entry.name:
        parts.append(_parameter_doc(entry.op, word))
    parts.append(_block_entry(entry, outline, index) if entry.block else _op_entry(entry, index))
    return "\n\n".join(parts)


def _parameter_doc(op: str, name: str) -> str:
    field = OPS[op].Params.model_fields[name]
    default = "required" if field.is_required() else f"default {display_value(field.default)}"
    return f"`{name}` ({default}): {field.description or ''}".rstrip(": ")


def _where(entry: Entry) -> str:
    return f" in block `{entry.scope}`" if entry.scope else ""


def _op_entry(entry: Entry, index: GraphIndex) -> str:
    graph, nodes = index.graph, index.nodes_of(entry)
    op = OPS.get(nodes[0].op if nodes else entry.op or "")
    head = f"**{entry.name}**{_where(entry)}: `{op.name if op else entry.op}`" + (f", {op.doc}" if op and op.doc else "")
    if not nodes:
        return head + f"\n\nmakes no node in {_variant(graph)} (a `when` that is false, or a repeat of nothing)"
    if len(nodes) == 1:
        node = nodes[0]
        return "\n\n".join([head, f"output `{_shape(node)}` · {_counts(node)}", _parameters(node)])
    total_params, total_macs = sum(n.n_params for n in nodes), sum(n.macs for n in nodes)
    lines = [head, f"{len(nodes)} nodes in {_variant(graph)}: {total_params:,} parameters, "
                   f"{total_macs:,} multiply-adds per sample in all"]
    values = [_attrs(n) for n in nodes]
    shared = {k: v for k, v in values[0].items() if all(k in other and other[k] == v for other in values)}
    if shared:
        lines.append(_table(shared))
    listed = []
    for node, attrs in zip(nodes[:MAX_LISTED], values):
        own = ", ".join(f"{k}={display_value(v)}" for k, v in attrs.items() if k not in shared)
        listed.append(f"- `{node.name}` → `{_shape(node)}` · {_counts(node)}" + (f" · {own}" if own else ""))
    if len(nodes) > MAX_LISTED:
        listed.append(f"- … and {len(nodes) - MAX_LISTED} more")
    return "\n\n".join(lines + ["\n".join(listed)])


def _block_entry(entry: Entry, outline: Outline, index: GraphIndex) -> str:
    graph, block = index.graph, entry.block
    names = index.instances_of(entry)
    if not names and block not in outline.blocks:  # `block: $unit`: the value names the block
        block = None
    if names and graph.instances.get(names[0]):
        block = graph.instances[names[0]].block
    head = f"**{entry.name}**{_where(entry)}: block `{block or entry.block}`"
    return "\n\n".join(_block_parts(head, block, names, outline, index))


def block_text(block: str, outline: Outline, index: GraphIndex) -> str:
    """The hover of a block's name where it is defined: its parameters and
    every instance of it in the graph."""
    names = [name for name, found in index.graph.instances.items() if found.block == block]
    return "\n\n".join(_block_parts(f"block **{block}**", block, names, outline, index))


def input_text(name: str, index: GraphIndex) -> str:
    """The hover of one of the spec's inputs: its shape and type, and what reads it."""
    value = index.graph.inputs.get(name)
    if value is None:
        return f"input **{name}**"
    readers = [r for r in index.readers.get(name, ()) if r]
    read = ", ".join(f"`{r}`" for r in readers[:MAX_LISTED]) + (f" and {len(readers) - MAX_LISTED} more"
                                                                  if len(readers) > MAX_LISTED else "")
    return (f"input **{name}**: `{format_shape(value.shape)}` {value.dtype}\n\n"
            + (f"read by {read}" if readers else "read by no node"))


def output_text(name: str, index: GraphIndex) -> str:
    """The hover of one of the spec's outputs: the node it is, and its shape."""
    graph = index.graph
    source = graph.outputs.get(name)
    if source is None:
        return f"output **{name}**"
    value = graph.tensor(source)
    return f"output **{name}** = `{source}`: `{format_shape(value.shape)}` {value.dtype}"


def _block_parts(head: str, block: str | None, names: list[str], outline: Outline, index: GraphIndex) -> list[str]:
    written = outline.tree.get("blocks", {}).get(block, {}) if block else {}
    if isinstance(written, dict) and isinstance(written.get("doc"), str):
        head += f", {written['doc']}"
    declared = outline.block_params.get(block or "", {})
    parts = [head]
    if declared:
        parts.append("parameters: " + ", ".join(
            f"`{k}`" + (" (required)" if v is None else f" = {display_value(v)}") for k, v in declared.items()))
    if not names:
        parts.append(f"makes no instance in {_variant(index.graph)} (a `when` that is false, or a repeat of nothing)")
        return parts
    parts.append(f"{len(names)} instance{'s' if len(names) > 1 else ''} in {_variant(index.graph)}:")
    listed = []
    for name in names[:MAX_LISTED]:
        outputs = index.instance_outputs(name)
        shapes = ", ".join(f"`{_shape(n)}`" for n in outputs) or "nothing read"
        found = index.instance(name)
        args = ", ".join(f"{k}={display_value(v)}" for k, v in found.args.items()) if found else ""
        listed.append(f"- `{name}` → {shapes}" + (f" · {args}" if args else ""))
    if len(names) > MAX_LISTED:
        listed.append(f"- … and {len(names) - MAX_LISTED} more")
    parts.append("\n".join(listed))
    return parts


def _variant(graph: Graph) -> str:
    return f"variant {graph.variant}" if graph.variant else "this spec"


def _shape(node: Node) -> str:
    return format_shape(node.out.shape) if node.out is not None else "?"


def _counts(node: Node) -> str:
    return f"{node.n_params:,} parameters · {node.macs:,} multiply-adds per sample"


def _attrs(node: Node) -> dict:
    attrs = node.attrs
    return {k: getattr(attrs, k) for k in type(attrs).model_fields} if attrs is not None else dict(node.params)


def _parameters(node: Node) -> str:
    values = _attrs(node)
    return _table(values) if values else "no parameters"


def _table(values: dict) -> str:
    rows = ["| parameter | value |", "| --- | --- |"]
    rows += [f"| {k} | {display_value(v)} |" for k, v in values.items()]
    return "\n".join(rows)

