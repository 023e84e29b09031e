"""Stage 3: expand blocks, repeats and variants into a flat list of nodes.

Every node gets its dotted name through the block instances that produced it
(`layer2.0.conv1`), its concrete parameter values, and the chain of
expansions (`Frame`s) that errors print.  Names used in `in:` are resolved
after the whole file is expanded, so a forward reference (or a cycle, which
the graph stage reports) is not mistaken for an unknown name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any

from .errors import Collector, Diagnostic, Frame, Loc, RuleError, SpecError
from .expr import evaluate, work_limit
from .ir import Graph, Node, TensorInfo
from .load import Map, Seq
from .ops import OPS
from .schema import NODE_KEYS, SpecFile


# A spec is untrusted input: `repeat: 1000000` is refused, not expanded.
# The zoo's largest graph (EfficientNet-B7) has 863 nodes.
MAX_EXPANDED = 10_000  # nodes, block instances and repeats one spec expands to


# Symbols: what a local name in a scope stands for.

@dataclass
class Ref:
    scope: "Scope"
    text: str
    loc: Loc


@dataclass
class NodeSym:
    full: str


@dataclass
class AliasSym:
    """A block input: stands for whatever the instance was given."""
    ref: Ref


@dataclass
class InstanceSym:
    scope: "Scope"
    outputs: dict[str, Ref]
    default: str | None  # key into outputs, None if the block has several


@dataclass
class GroupSym:
    """A repeated node or block: `name` is the last repeat, `name.K` repeat K."""
    reps: list[Any]


@dataclass
class DisabledSym:
    loc: Loc
    condition: str


@dataclass
class FailedSym:
    """A node or instance whose expansion failed; its error is already
    reported, so references to it are dropped without a second one."""
    reason: str


@dataclass
class Scope:
    env: dict[str, Any]
    prefix: str
    trace: tuple[Frame, ...]
    symbols: dict[str, Any] = field(default_factory=dict)


class Expander:
    def __init__(self, spec: SpecFile, tree: Map, variant: str | None):
        self.spec, self.tree = spec, tree
        self.file = tree.loc.file
        self.errors = Collector()
        self.nodes: dict[str, Node] = {}
        self.pending: list[tuple[Node, list[Ref]]] = []
        self.variant = variant
        self.blocks: Map = tree.get("blocks") or Map()
        self.cell_items: set[str] = set()  # a cell instance's outputs and final states
        self.expanded = 0  # nodes and instances made so far, against MAX_EXPANDED

    # -- entry point -------------------------------------------------------

    def run(self) -> Graph:
        env = self._top_env()
        inputs = {name: TensorInfo(self._input_shape(name, i.shape, env), i.dtype)
                  for name, i in self.spec.inputs.items()}
        top = Scope(env, "", ())
        for name in inputs:
            top.symbols[name] = NodeSym(name)
        first_input = Ref(top, next(iter(inputs)), self.tree["inputs"].loc)
        self._expand_nodes(self.tree["nodes"], top, first_input)

        raw_outputs = self.tree["outputs"]
        if isinstance(raw_outputs, str):
            raw_outputs = {"output": raw_outputs}
            out_locs = {"output": self.tree.loc_of("outputs")}
        else:
            out_locs = raw_outputs.value_locs
        outputs, output_locs = {}, {}
        for out_name, text in raw_outputs.items():
            resolved = self._resolve(Ref(top, self._eval_ref(text, top.env, out_locs[out_name]), out_locs[out_name]))
            if resolved is not None:
                outputs[out_name] = resolved
                output_locs[out_name] = out_locs[out_name]
        for node, refs in self.pending:
            resolved = [self._resolve(r, node) for r in refs]
            node.inputs = [r for r in resolved if r is not None]
        # A cell instance offers its outputs and final states; those nothing
        # reads are not nodes of the model.
        used = {src for n in self.nodes.values() for src in n.inputs} | set(outputs.values())
        for item in self.cell_items - used:
            del self.nodes[item]
        self.errors.raise_if_any()
        return Graph(self.spec.name, self.variant, self.file, inputs, outputs, self.nodes,
                     input_locs=dict(self.tree["inputs"].key_locs), output_locs=output_locs)

    def _input_shape(self, name: str, shape: list, env: dict) -> tuple:
        """Dims may be expressions (`$size`); plain strings stay symbolic (N, T)."""
        loc = self.tree["inputs"][name].loc_of("shape")
        dims = tuple(self._eval(d, env, loc) for d in shape)
        for d in dims:
            if isinstance(d, bool) or not isinstance(d, (int, str)) or (isinstance(d, int) and d < 1):
                self.errors.error(f"input '{name}': each dimension must be a positive size or a symbol "
                                  f"such as N, got {d!r}", loc=loc)
        return dims

    def _top_env(self) -> dict[str, Any]:
        """Parameters in order, each taking the chosen variant's value where it
        sets one; a parameter derived from earlier ones (`t1: ${init // 2}`)
        therefore sees the variant's values, not the defaults."""
        params: Map = self.tree.get("params") or Map()
        variants: Map = self.tree.get("variants") or Map()
        names = [str(k) for k in variants]
        if self.variant is None and variants:
            self.variant = str(self.spec.default_variant if self.spec.default_variant is not None else names[0])
        overrides: Map = Map()
        if self.variant is not None:
            if self.variant not in names:
                close = get_close_matches(self.variant, names, n=1)
                raise SpecError(Diagnostic(
                    f"unknown variant '{self.variant}'" + ("" if names else ": this spec has no variants"),
                    loc=variants.loc if variants else self.tree.loc,
                    hint=(f"did you mean '{close[0]}'? " if close else "")
                    + (f"variants: {', '.join(names)}" if names else "drop --variant")))
            key = next(k for k in variants if str(k) == self.variant)
            overrides = variants[key] or Map()
            for name in overrides:
                if name not in params:
                    close = get_close_matches(str(name), list(params), n=1)
                    self.errors.error(
                        f"variant '{self.variant}' sets '{name}', which 'params' does not declare",
                        loc=overrides.key_locs.get(name, overrides.loc if isinstance(overrides, Map) else None),
                        hint=f"did you mean '{close[0]}'?" if close else
                        f"declare '{name}' with its default under 'params'")
        env: dict[str, Any] = {"variant": self.variant}
        for key, value in params.items():
            if key in overrides:
                env[key] = self._eval(overrides[key], env, overrides.loc_of(key))
            else:
                env[key] = self._eval(value, env, params.loc_of(key))
        env["variant"] = self.variant
        self.errors.raise_if_any()
        return env

    # -- expansion ---------------------------------------------------------

    def _expand_nodes(self, nodes: Map, scope: Scope, prev: Ref) -> Ref:
        """Expand a scope's nodes in order; return a Ref to the last one."""
        for local, body in nodes.items():
            loc = nodes.key_locs[local]
            prev = self._expand_node(local, body, loc, scope, prev)
        return prev

    def _expand_node(self, local: str, body: Map, loc: Loc, scope: Scope, prev: Ref) -> Ref:
        repeat = self._eval(body.get("repeat"), scope.env, body.loc_of("repeat")) if "repeat" in body else None
        items: list[Any] | None = None
        if repeat is None:
            count = None
        elif isinstance(repeat, bool) or not isinstance(repeat, (int, list)):
            self.errors.error(f"repeat must be a count or a list, got {repeat!r}", loc=body.loc_of("repeat"),
                              node=scope.prefix + local)
            return prev
        elif isinstance(repeat, list):
            items, count = repeat, len(repeat)
        else:
            count = repeat
        if count == 0 and "when" in body and self._switched_off(body, scope):
            # A node switched off may repeat an empty list (a variant without
            # those layers): it is absent, like any node whose `when` is false.
            scope.symbols[local] = DisabledSym(body.loc_of("when"), str(body["when"]))
            return prev
        if count is not None and count < 1:
            self.errors.error(f"repeat must be at least 1, got {count}", loc=body.loc_of("repeat"),
                              node=scope.prefix + local)
            return prev
        if local in scope.symbols:
            self.errors.error(f"duplicate name '{local}': it is already a block input or input name",
                              loc=loc, node=scope.prefix + local)
            return prev

        explicit = self._input_refs(body, scope)
        if count is None:
            sym, out = self._expand_one(local, body, loc, scope, explicit or [prev], {}, None)
            scope.symbols[local] = sym
            return out if out is not None else prev

        reps: list[Any] = []
        chain_in = explicit or [prev]
        last_out = None
        for r in range(count):
            extra = {"i": r, **({"item": items[r]} if items is not None else {})}
            sym, out = self._expand_one(f"{local}.{r}", body, loc, scope, chain_in, extra, r)
            reps.append(sym)
            if out is not None:  # the next repeat takes this one's output
                chain_in = [out] + chain_in[1:]
                last_out = out
        scope.symbols[local] = GroupSym(reps)
        return Ref(scope, local, loc) if last_out is not None else prev

    def _switched_off(self, body: Map, scope: Scope) -> bool:
        try:
            return not evaluate(body["when"], scope.env)
        except RuleError:  # the condition needs $i or $item: the repeat count must stand
            return False

    def _expand_one(self, name: str, body: Map, loc: Loc, scope: Scope, inputs: list[Ref],
                    extra_env: dict, rep: int | None) -> tuple[Any, Ref | None]:
        env = {**scope.env, **extra_env}
        full = scope.prefix + name
        self.expanded += 1
        if self.expanded > MAX_EXPANDED:
            raise SpecError(Diagnostic(
                f"the spec expands to more than {MAX_EXPANDED:,} nodes and block instances", loc=loc, node=full,
                trace=scope.trace, hint="check the repeat counts: a model this large is not what a spec is for"))
        if "when" in body:
            cond = self._eval(body["when"], env, body.loc_of("when"))
            if not cond:
                return DisabledSym(body.loc_of("when"), str(body["when"])), None
        args, arg_locs = self._arguments(body, env, rep)
        if body.get("op") is not None:
            return self._make_op(full, name, body, loc, scope, inputs, args, arg_locs), Ref(scope, name, loc)
        return self._instantiate(full, name, body, loc, scope, inputs, args, arg_locs, rep)

    def _arguments(self, body: Map, env: dict, rep: int | None) -> tuple[dict, dict]:
        args, locs = {}, {}
        for key, value in body.items():
            if key in NODE_KEYS:
                continue
            args[key] = self._eval(value, env, body.loc_of(key))
            locs[key] = body.key_locs[key]
        overrides = body.get("overrides")
        if rep is not None and isinstance(overrides, Map):
            count = self._rep_count(body, env)
            for key in overrides:
                if not -count <= key < count:
                    if rep == 0:  # report once per node, not once per repeat
                        self.errors.error(f"override {key} is out of range: the node repeats {count} times",
                                          loc=overrides.key_locs[key],
                                          hint=f"use 0 to {count - 1}, or -1 for the last")
                    continue
                if key % count == rep:
                    for k, v in overrides[key].items():
                        args[k] = self._eval(v, env, overrides[key].loc_of(k))
                        locs[k] = overrides[key].key_locs[k]
        elif overrides is not None and rep is None:
            self.errors.error("'overrides' applies to the repeats of a node, but this node has no 'repeat'",
                              loc=body.loc_of("overrides"))
        return args, locs

    def _rep_count(self, body: Map, env: dict) -> int:
        repeat = self._eval(body.get("repeat"), env, body.loc_of("repeat"))
        return len(repeat) if isinstance(repeat, list) else int(repeat)

    def _make_op(self, full, name, body, loc, scope, inputs, args, arg_locs) -> NodeSym:
        # Like a block, the op may be chosen by an expression (`op: $act`), so
        # a block can take its activation as a parameter (MobileNet v3, EfficientNet).
        op = self._eval(body["op"], scope.env, body.loc_of("op"))
        if not isinstance(op, str):
            self.errors.error(f"'op' must name an op, got {op!r}", loc=body.loc_of("op"), node=full,
                              trace=scope.trace)
            op = str(op)
        if op not in OPS:
            close = get_close_matches(op, list(OPS), n=1)
            self.errors.error(f"unknown op '{op}'", loc=body.loc_of("op"), node=full, trace=scope.trace,
                              hint=f"did you mean '{close[0]}'?" if close else
                              "see 'netspec ops' for the list of ops")
        if full in self.nodes:
            self.errors.error(f"duplicate node name '{full}'", loc=loc, node=full, trace=scope.trace,
                              hint=f"'{full}' is first defined at line {self.nodes[full].loc.line}")
            return NodeSym(full)
        node = Node(full, op, args, [], loc, arg_locs, scope.trace)
        self.nodes[full] = node
        self.pending.append((node, inputs))
        return NodeSym(full)

    def _instantiate(self, full, name, body, loc, scope, inputs, args, arg_locs, rep):
        # The block may be chosen by an expression (`block: $unit`), so one
        # spec can switch between block kinds (basic or bottleneck) by a parameter.
        block_name = self._eval(body["block"], scope.env, body.loc_of("block"))
        if not isinstance(block_name, str):
            self.errors.error(f"'block' must name a block, got {block_name!r}", loc=body.loc_of("block"),
                              node=full, trace=scope.trace)
            return FailedSym("unknown block"), None
        if block_name not in self.blocks:
            close = get_close_matches(block_name, list(self.blocks), n=1)
            self.errors.error(f"unknown block '{block_name}'", loc=body.loc_of("block"), node=full,
                              trace=scope.trace,
                              hint=f"did you mean '{close[0]}'?" if close else
                              f"blocks defined in this file: {', '.join(self.blocks) or 'none'}")
            return FailedSym("unknown block"), None
        if any(f.block == block_name for f in scope.trace):
            self.errors.error(f"block '{block_name}' instantiates itself", loc=body.loc_of("block"),
                              node=full, trace=scope.trace, hint="blocks cannot be recursive")
            return FailedSym("recursive block"), None
        block: Map = self.blocks[block_name]
        frame = Frame(block_name, self.blocks.value_locs[block_name], full, loc, rep)
        trace = scope.trace + (frame,)

        declared: Map = block.get("params") or Map()
        env = {k: v for k, v in scope.env.items() if k not in ("i", "item")}
        for key in args:
            if key not in declared:
                close = get_close_matches(key, list(declared), n=1)
                self.errors.error(f"block '{block_name}' has no parameter '{key}'", loc=arg_locs[key], node=full,
                                  trace=scope.trace,
                                  hint=f"did you mean '{close[0]}'?" if close else
                                  f"its parameters: {', '.join(declared) or 'none'}")
        for key, default in declared.items():
            if key in args:
                env[key] = args[key]
            elif default is None:
                self.errors.error(f"block '{block_name}' needs the argument '{key}'", loc=loc, node=full,
                                  trace=scope.trace, hint=f"add '{key}: ...' to this node")
                env[key] = None
            else:
                env[key] = self._eval(default, env, declared.loc_of(key))

        if block.get("state"):
            from .cells import expand_cell
            made = expand_cell(self, full, name, block_name, block, env, trace, loc, scope, inputs, rep)
            return made if made is not None else (FailedSym("bad cell"), None)
        block_inputs = list(block.get("inputs") or ["x"])
        if len(inputs) != len(block_inputs):
            self.errors.error(
                f"block '{block_name}' takes {len(block_inputs)} input(s) ({', '.join(block_inputs)}), "
                f"got {len(inputs)}", loc=body.loc_of("in") if "in" in body else loc, node=full,
                trace=scope.trace, hint="list them in order under 'in:'")
            return FailedSym("bad inputs"), None
        inner = Scope(env, full + ".", trace)
        for input_name, ref in zip(block_inputs, inputs):
            inner.symbols[input_name] = AliasSym(ref)
        last = self._expand_nodes(block["nodes"], inner, Ref(inner, block_inputs[0], loc))

        raw_out = block.get("outputs")
        if raw_out is None:
            outputs, default = {"": last}, ""
        elif isinstance(raw_out, str):
            outputs, default = {"": Ref(inner, self._eval_ref(raw_out, env, block.loc_of("outputs")),
                                        block.loc_of("outputs"))}, ""
        else:
            outputs = {k: Ref(inner, self._eval_ref(v, env, raw_out.loc_of(k)), raw_out.loc_of(k))
                       for k, v in raw_out.items()}
            default = next(iter(outputs)) if len(outputs) == 1 else None
        sym = InstanceSym(inner, outputs, default)
        out_ref = Ref(scope, name, loc) if default is not None else None
        return sym, out_ref

    # -- references --------------------------------------------------------

    def _input_refs(self, body: Map, scope: Scope) -> list[Ref] | None:
        if "in" not in body or body["in"] is None:
            return None
        raw = body["in"]
        if isinstance(raw, Seq):
            return [Ref(scope, self._eval_ref(v, scope.env, raw.loc_of(i)), raw.loc_of(i)) for i, v in enumerate(raw)]
        return [Ref(scope, self._eval_ref(raw, scope.env, body.loc_of("in")), body.loc_of("in"))]

    def _eval_ref(self, text, env, loc) -> str:
        value = self._eval(text, env, loc)
        if not isinstance(value, str):
            self.errors.error(f"a reference must be a node name, got {value!r}", loc=loc)
            return "?"
        return value

    def _resolve(self, ref: Ref, node: Node | None = None, depth: int = 0) -> str | None:
        """Follow a reference to the full name of the node it denotes."""
        if depth > 100:
            self._ref_error(ref, node, "block inputs refer to each other in a loop")
            return None
        sym, rest = self._lookup(ref.scope, ref.text)
        if sym is None:
            names = [n for n in ref.scope.symbols]
            close = get_close_matches(ref.text, names, n=1)
            # node is None for what is not a node's input: an output, a cell's next state
            self._ref_error(ref, node, f"unknown {'input' if node else 'node'} '{ref.text}'",
                            f"did you mean '{close[0]}'?" if close else
                            f"names defined here: {', '.join(names[:12])}{' ...' if len(names) > 12 else ''}")
            return None
        while True:
            if isinstance(sym, FailedSym):
                return None
            if isinstance(sym, NodeSym) and not rest:
                return sym.full
            if isinstance(sym, AliasSym) and not rest:
                return self._resolve(sym.ref, node, depth + 1)
            if isinstance(sym, DisabledSym):
                self._ref_error(ref, node, f"'{ref.text}' is switched off here (when: {sym.condition})",
                                "give the node a condition that matches, or choose the input with an "
                                "expression such as ${'a' if cond else 'b'}")
                return None
            if isinstance(sym, GroupSym):
                if rest and rest[0].isdigit():
                    idx = int(rest[0])
                    if idx >= len(sym.reps):
                        self._ref_error(ref, node, f"'{ref.text}': there are only {len(sym.reps)} repeats")
                        return None
                    sym, rest = sym.reps[idx], rest[1:]
                else:
                    active = [s for s in sym.reps if not isinstance(s, DisabledSym)]
                    if not active:
                        sym = sym.reps[-1]
                        continue
                    sym = active[-1]
                continue
            if isinstance(sym, InstanceSym):
                if rest and rest[0] in sym.outputs:
                    return self._resolve(sym.outputs[rest[0]], node, depth + 1) if len(rest) == 1 else \
                        self._resolve(Ref(sym.scope, ".".join(rest), ref.loc), node, depth + 1)
                if rest:
                    return self._resolve(Ref(sym.scope, ".".join(rest), ref.loc), node, depth + 1)
                if sym.default is None:
                    self._ref_error(ref, node, f"'{ref.text}' has several outputs: "
                                    f"{', '.join(sym.outputs)}", f"name one, e.g. '{ref.text}.{next(iter(sym.outputs))}'")
                    return None
                return self._resolve(sym.outputs[sym.default], node, depth + 1)
            self._ref_error(ref, node, f"'{ref.text}' does not name a node")
            return None

    @staticmethod
    def _lookup(scope: Scope, text: str):
        if text in scope.symbols:
            return scope.symbols[text], []
        parts = text.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            head = ".".join(parts[:cut])
            if head in scope.symbols:
                return scope.symbols[head], parts[cut:]
        return None, []

    def _ref_error(self, ref: Ref, node: Node | None, message: str, hint: str | None = None) -> None:
        self.errors.error(message, loc=ref.loc, node=node.name if node else None,
                          op=node.op if node else None, trace=node.trace if node else ref.scope.trace, hint=hint)

    # -- values ------------------------------------------------------------

    def _eval(self, value, env, loc):
        try:
            return evaluate(value, env)
        except RuleError as e:
            self.errors.error(e.message, loc=loc, hint=e.hint)
            return None


def expand(spec: SpecFile, tree: Map, variant: str | None = None) -> Graph:
    with work_limit():  # one budget for all of the spec's expressions
        return Expander(spec, tree, variant).run()
