"""Shape inference: each node's value from its inputs', in topological
order, with symbolic dimensions (N, T) carried through.  A node whose input
already failed is skipped rather than reported twice; all errors are
collected.  A subgraph op's rule is handed its body and asks for it to be
inferred with the input values it chooses (as ONNX's Scan body is)."""
from __future__ import annotations

from ..errors import Collector, Diagnostic, InternalError, RuleError, SpecError
from ..ir import Graph, Node, TensorInfo, TupleInfo, format_shape
from ..ops import OPS, SubgraphOp
from . import signature


class _Body:
    """The handle a subgraph op's rule gets on its node's body."""

    def __init__(self, body: Graph):
        self.body = body
        self.outputs = dict(body.outputs)

    def infer(self, inputs: dict[str, TensorInfo]) -> dict[str, TensorInfo]:
        self.body.inputs = dict(inputs)
        infer(self.body)  # a SpecError names the body's node
        return {k: self.body.tensor(v) for k, v in self.body.outputs.items()}


def infer(graph: Graph) -> None:
    errors = Collector()
    failed: set[str] = set()
    for node in graph.nodes.values():
        if any(src in failed for src in node.inputs):
            failed.add(node.name)
            continue
        if _value(node, graph.input_infos(node), errors) is None:
            failed.add(node.name)
    for out_name, src in graph.outputs.items():
        value = graph.tensor(src) if src not in failed else None
        if isinstance(value, TupleInfo) and value.names:
            errors.error(f"output '{out_name}': {_several(src, value)}", loc=graph.output_locs.get(out_name),
                         hint=f"name one, e.g. '{src}.{value.names[0]}'")
    errors.raise_if_any()


def node_value(node: Node, ins: list[TensorInfo], errors: Collector) -> TensorInfo | None:
    """One node's value from its inputs', its signature checked first: the
    expansion reads shapes (`shape(x)`) through this while it builds the
    graph.  Problems go to `errors` (the same ones the passes find again
    later, which the collector keeps once); None when there are any."""
    found = Collector()
    signature.check_node(node, found)
    value = _value(node, ins, found) if not found.errors else None
    errors.extend(found.errors)
    return value


def _value(node: Node, ins: list[TensorInfo], errors: Collector) -> TensorInfo | None:
    """Set and return the node's value; None, its problems in `errors`, if
    its rule refuses the inputs."""
    try:
        _whole_values(node, ins)
        node.out = _rule(node, ins)
        return node.out
    except RuleError as e:
        errors.add(_diagnostic(node, ins, e))
    except SpecError as e:  # from the node's body
        errors.extend(e.diagnostics)
    return None


def _diagnostic(node: Node, ins: list[TensorInfo], e: RuleError) -> Diagnostic:
    message = e.message
    if e.at is None and (len(ins) > 1 or "input" not in message):
        message += ": " + " vs ".join(f"{format_shape(t.shape)} from '{src}'" for t, src in zip(ins, node.inputs))
    return Diagnostic(message, loc=node.param_locs.get(e.at, node.loc), node=node.name, op=node.op,
                      trace=node.trace, hint=e.hint)


def _several(src: str, value: TupleInfo) -> str:
    return f"'{src}' has several outputs ({', '.join(value.names)})"


def _whole_values(node: Node, ins: list[TensorInfo]) -> None:
    """A node with named outputs (a split) is read one output at a time."""
    if node.op == "tuple_item":
        return
    for src, value in zip(node.inputs, ins):
        if isinstance(value, TupleInfo) and value.names:
            raise RuleError(f"input {_several(src, value)}, not one tensor",
                            hint=f"name one, e.g. 'in: {src}.{value.names[0]}'")


def _rule(node: Node, ins: list[TensorInfo]) -> TensorInfo:
    op = OPS[node.op]
    try:
        if isinstance(op, SubgraphOp):
            return op.infer(node.attrs, ins, _Body(node.body))
        return op.infer(node.attrs, ins)
    except (RuleError, SpecError):
        raise
    except Exception as e:  # a rule that fails other than by RuleError is our bug, not the spec's
        raise InternalError(f"the shape rule of '{node.op}' raised {type(e).__name__}: {e} (inputs: "
                            f"{', '.join(map(str, ins)) or 'none'})", node.name, node.op, node.loc) from e
