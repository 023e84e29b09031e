"""Expand blocks, repeats and variants into a graph of nodes.

Reads the typed tree `validate` returns.  Every node gets its dotted name
through the block instances that produced it (`layer2.0.conv1`), its
concrete parameter values, and the chain of expansions (`Frame`s) that
errors print; every block instance is recorded (`ir.Instance`), so the
backend can nest modules as the blocks nest.  A block with `state` expands
into a scan node whose body is the cell's per-step graph (frontend.cells).
"""
from __future__ import annotations

from difflib import get_close_matches
from typing import Any

from ..errors import Collector, Diagnostic, Frame, Loc, RuleError, SpecError
from ..ir import Graph, Instance, Node, TensorInfo
from . import expr
from .schema import Args, BlockSpec, NodeSpec, SpecFile
from .cells import expand_cell
from .scope import (AliasSym, Builder, Call, DisabledSym, FailedSym, GroupSym, InstanceSym, NodeSym, Ref, Resolver,
                    Scope)


# A spec is untrusted input: `repeat: 1000000` is refused, not expanded.
# The zoo's largest graph (EfficientNet-B7) has 863 nodes.
MAX_EXPANDED = 10_000  # nodes, block instances and repeats one spec expands to


class Expander:
    def __init__(self, spec: SpecFile, variant: str | None, errors: Collector):
        self.spec = spec
        self.file = spec.file
        self.errors = errors
        self.resolver = Resolver(errors)
        self.variant = variant
        self.expanded = 0  # nodes and instances made so far, against MAX_EXPANDED

    # -- entry point -------------------------------------------------------

    def run(self) -> Graph:
        env = self._top_env()
        inputs = {name: TensorInfo(self._input_shape(name, i, env), i.dtype) for name, i in self.spec.inputs.items()}
        top = Scope(env, "", (), Builder())
        for name in inputs:
            top.symbols[name] = NodeSym(name)
        first_input = Ref(top, next(iter(inputs)), self.spec.value_loc("inputs"))
        self.expand_nodes(self.spec, top, first_input)

        if isinstance(self.spec.outputs, str):
            raw_outputs = {"output": self.spec.outputs}
            out_locs = {"output": self.spec.value_loc("outputs")}
        else:
            raw_outputs = self.spec.outputs
            out_locs = {k: self.spec.entry_loc("outputs", k) for k in raw_outputs}
        outputs, output_locs = {}, {}
        for out_name, text in raw_outputs.items():
            loc = out_locs[out_name]
            resolved = self.resolver.resolve(Ref(top, self.eval_ref(text, top.env, loc), loc))
            if resolved is not None:
                outputs[out_name] = resolved
                output_locs[out_name] = loc
        self.resolver.finish(top.builder)
        nodes = top.builder.nodes
        # A cell instance offers its outputs and final states; those nothing
        # reads are not nodes of the model.
        used = {src for n in nodes.values() for src in n.inputs} | set(outputs.values())
        for name in [n for n, node in nodes.items() if node.op == "tuple_item" and n not in used]:
            del nodes[name]
        graph = Graph(self.spec.name, self.variant, self.file, inputs, outputs, nodes,
                      input_locs={k: self.spec.entry_key_loc("inputs", k) for k in inputs},
                      output_locs=output_locs, instances=top.builder.instances)
        self.drop_broken(graph)
        return graph

    def drop_broken(self, graph: Graph) -> None:
        """Leave out the nodes whose expansion was reported, so a later check
        reports the rest of the spec without repeating their errors."""
        for name, node in list(graph.nodes.items()):
            if self.resolver.is_broken(node):
                del graph.nodes[name]
            elif node.body is not None:
                self.drop_broken(node.body)

    def _input_shape(self, name: str, spec, env: dict) -> tuple:
        """Dims may be expressions (`$size`); plain strings stay symbolic (N, T)."""
        loc = spec.value_loc("shape")
        dims = tuple(self.evaluate(d, env, loc) for d in spec.shape)
        for d in dims:
            if isinstance(d, bool) or not isinstance(d, (int, str)) or (isinstance(d, int) and d < 1):
                self.errors.error(f"input '{name}': each dimension must be a positive size or a symbol "
                                  f"such as N, got {d!r}", loc=loc)
        return dims

    def _top_env(self) -> dict[str, Any]:
        """Parameters in order, each taking the chosen variant's value where it
        sets one; a parameter derived from earlier ones (`t1: ${init // 2}`)
        therefore sees the variant's values, not the defaults."""
        spec = self.spec
        names = [str(k) for k in spec.variants]
        if self.variant is None and spec.variants:
            self.variant = str(spec.default_variant if spec.default_variant is not None else names[0])
        overrides: dict[str, Any] = {}
        override_key = None
        if self.variant is not None:
            if self.variant not in names:
                close = get_close_matches(self.variant, names, n=1)
                raise SpecError(Diagnostic(
                    f"unknown variant '{self.variant}'" + ("" if names else ": this spec has no variants"),
                    loc=spec.value_loc("variants") if spec.variants else spec.loc,
                    hint=(f"did you mean '{close[0]}'? " if close else "")
                    + (f"variants: {', '.join(names)}" if names else "drop --variant")))
            override_key = next(k for k in spec.variants if str(k) == self.variant)
            overrides = spec.variants[override_key] or {}
            written = spec.written("variants")[override_key]
            for name in overrides:
                if name not in spec.params:
                    close = get_close_matches(str(name), list(spec.params), n=1)
                    self.errors.error(
                        f"variant '{self.variant}' sets '{name}', which 'params' does not declare",
                        loc=written.key_locs.get(name, written.loc),
                        hint=f"did you mean '{close[0]}'?" if close else
                        f"declare '{name}' with its default under 'params'")
        env: dict[str, Any] = {"variant": self.variant}
        for key, value in spec.params.items():
            if key in overrides:
                env[key] = self.evaluate(overrides[key], env, spec.written("variants")[override_key].loc_of(key))
            else:
                env[key] = self.evaluate(value, env, spec.entry_loc("params", key))
        env["variant"] = self.variant
        self.errors.raise_if_any()
        return env

    # -- expansion ---------------------------------------------------------

    def expand_nodes(self, owner: SpecFile | BlockSpec, scope: Scope, prev: Ref) -> Ref:
        """Expand the nodes of the spec or a block into a scope, in order;
        return a Ref to the last one."""
        for local, body in owner.nodes.items():
            prev = self._expand_node(local, body, owner.entry_key_loc("nodes", local), scope, prev)
        return prev

    def _expand_node(self, local: str, body: NodeSpec, loc: Loc, scope: Scope, prev: Ref) -> Ref:
        repeat = self.evaluate(body.repeat, scope.env, body.value_loc("repeat")) if body.repeat is not None else None
        items: list[Any] | None = None
        if repeat is None:
            count = None
        elif isinstance(repeat, bool) or not isinstance(repeat, (int, list)):
            self.errors.error(f"repeat must be a count or a list, got {repeat!r}", loc=body.value_loc("repeat"),
                              node=scope.prefix + local)
            return prev
        elif isinstance(repeat, list):
            items, count = repeat, len(repeat)
        else:
            count = repeat
        if count == 0 and body.when is not None and self._switched_off(body, scope):
            # A node switched off may repeat an empty list (a variant without
            # those layers): it is absent, like any node whose `when` is false.
            scope.symbols[local] = DisabledSym(body.value_loc("when"), str(body.when))
            return prev
        if count is not None and count < 1:
            self.errors.error(f"repeat must be at least 1, got {count}", loc=body.value_loc("repeat"),
                              node=scope.prefix + local)
            return prev
        if local in scope.symbols:
            self.errors.error(f"duplicate name '{local}': it is already a block input or input name",
                              loc=loc, node=scope.prefix + local)
            return prev

        explicit = self.input_refs(body, scope)
        if count is None:
            sym, out = self._expand_one(local, body, loc, scope, explicit if explicit is not None else [prev], {}, None)
            scope.symbols[local] = sym
            return out if out is not None else prev

        reps: list[Any] = []
        chain_in = explicit if explicit is not None else [prev]
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

    def _switched_off(self, body: NodeSpec, scope: Scope) -> bool:
        try:
            return not expr.evaluate(body.when, scope.env)
        except RuleError:  # the condition needs $i or $item: the repeat count must stand
            return False

    def _expand_one(self, name: str, body: NodeSpec, loc: Loc, scope: Scope, inputs: list[Ref],
                    extra_env: dict, rep: int | None) -> tuple[Any, Ref | None]:
        env = {**scope.env, **extra_env}
        full = scope.prefix + name
        self.expanded += 1
        if self.expanded > MAX_EXPANDED:
            raise SpecError(Diagnostic(
                f"the spec expands to more than {MAX_EXPANDED:,} nodes and block instances", loc=loc, node=full,
                trace=scope.trace, hint="check the repeat counts: a model this large is not what a spec is for"))
        if body.when is not None:
            cond = self.evaluate(body.when, env, body.value_loc("when"))
            if not cond:
                return DisabledSym(body.value_loc("when"), str(body.when)), None
        reported = len(self.errors.errors)
        args, arg_locs = self._arguments(body, env, rep)
        if body.op is not None:
            node = self._make_op(full, body, loc, scope, inputs, args, arg_locs)
            if node is not None and (len(self.errors.errors) > reported or scope.tainted):
                self.resolver.mark_broken(node)  # an expression of it, or an argument of its block, failed
            return NodeSym(full), Ref(scope, name, loc)
        return self._instantiate(full, name, body, loc, scope, inputs, args, arg_locs, rep)

    def _arguments(self, body: NodeSpec, env: dict, rep: int | None) -> tuple[dict, dict]:
        args, locs = {}, {}
        self._take(body, env, args, locs)
        if rep is not None and body.overrides is not None:
            count = self._rep_count(body, env)
            for key, override in body.overrides.items():
                if not -count <= key < count:
                    if rep == 0:  # report once per node, not once per repeat
                        self.errors.error(f"override {key} is out of range: the node repeats {count} times",
                                          loc=body.entry_key_loc("overrides", key),
                                          hint=f"use 0 to {count - 1}, or -1 for the last")
                    continue
                if key % count == rep:
                    self._take(override, env, args, locs)
        elif body.overrides is not None and rep is None:
            self.errors.error("'overrides' applies to the repeats of a node, but this node has no 'repeat'",
                              loc=body.value_loc("overrides"))
        return args, locs

    def _take(self, given: Args, env: dict, args: dict, locs: dict) -> None:
        for key, value in given.args.items():
            args[key] = self.evaluate(value, env, given.value_loc(key))
            locs[key] = given.key_loc(key)

    def _rep_count(self, body: NodeSpec, env: dict) -> int:
        repeat = self.evaluate(body.repeat, env, body.value_loc("repeat"))
        return len(repeat) if isinstance(repeat, list) else int(repeat)

    def _make_op(self, full, body, loc, scope, inputs, args, arg_locs) -> Node | None:
        # Like a block, the op may be chosen by an expression (`op: $act`), so
        # a block can take its activation as a parameter (MobileNet v3, EfficientNet).
        op = self.evaluate(body.op, scope.env, body.value_loc("op"))
        if not isinstance(op, str):
            self.errors.error(f"'op' must name an op, got {op!r}", loc=body.value_loc("op"), node=full,
                              trace=scope.trace)
            op = str(op)
        if full in scope.builder.nodes:
            self.errors.error(f"duplicate node name '{full}'", loc=loc, node=full, trace=scope.trace,
                              hint=f"'{full}' is first defined at line {scope.builder.nodes[full].loc.line}")
            return None
        node = Node(full, op, args, [], loc, {**arg_locs, "op": body.value_loc("op")}, scope.trace)
        scope.builder.add(node, inputs)
        return node

    def _instantiate(self, full, name, body, loc, scope, inputs, args, arg_locs, rep):
        # The block may be chosen by an expression (`block: $unit`), so one
        # spec can switch between block kinds (basic or bottleneck) by a parameter.
        block_name = self.evaluate(body.block, scope.env, body.value_loc("block"))
        blocks = self.spec.blocks
        if not isinstance(block_name, str):
            self.errors.error(f"'block' must name a block, got {block_name!r}", loc=body.value_loc("block"),
                              node=full, trace=scope.trace)
            return FailedSym("unknown block"), None
        if block_name not in blocks:
            close = get_close_matches(block_name, list(blocks), n=1)
            self.errors.error(f"unknown block '{block_name}'", loc=body.value_loc("block"), node=full,
                              trace=scope.trace,
                              hint=f"did you mean '{close[0]}'?" if close else
                              f"blocks defined in this file: {', '.join(blocks) or 'none'}")
            return FailedSym("unknown block"), None
        if any(f.block == block_name for f in scope.trace):
            self.errors.error(f"block '{block_name}' instantiates itself", loc=body.value_loc("block"),
                              node=full, trace=scope.trace, hint="blocks cannot be recursive")
            return FailedSym("recursive block"), None
        block = blocks[block_name]
        frame = Frame(block_name, self.spec.entry_loc("blocks", block_name), full, loc, rep)
        reported = len(self.errors.errors)
        env = self._bind(block_name, block, args, arg_locs, scope, full, loc)
        call = Call(full, name, block_name, block, env, scope.trace + (frame,), loc, scope, inputs,
                    body.value_loc("in") if body.has("in") else loc,
                    tainted=scope.tainted or len(self.errors.errors) > reported, given=tuple(args))
        if block.state:
            made = expand_cell(self, call)
            return made if made is not None else (FailedSym("bad cell"), None)
        return self._expand_block(call)

    def _bind(self, block_name: str, block: BlockSpec, args: dict, arg_locs: dict, scope: Scope, full: str,
              loc: Loc) -> dict[str, Any]:
        """The environment of a block instance: the caller's parameters, then
        the block's own from the arguments or their defaults."""
        declared = block.params
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
                env[key] = self.evaluate(default, env, block.entry_loc("params", key))
        return env

    def _expand_block(self, call: Call):
        block = call.block
        if len(call.inputs) != len(block.inputs):
            self.errors.error(
                f"block '{call.block_name}' takes {len(block.inputs)} input(s) ({', '.join(block.inputs)}), "
                f"got {len(call.inputs)}", loc=call.inputs_loc, node=call.full,
                trace=call.scope.trace, hint="list them in order under 'in:'")
            return FailedSym("bad inputs"), None
        builder = call.scope.builder
        instance = Instance(call.full, call.block_name, {k: call.env[k] for k in block.params}, {},
                            frozenset(call.given))
        builder.instances[call.full] = instance
        inner = Scope(call.env, call.full + ".", call.trace, builder, tainted=call.tainted)
        for input_name, ref in zip(block.inputs, call.inputs):
            inner.symbols[input_name] = AliasSym(ref)
            builder.instance_inputs.append((instance, input_name, ref))
        last = self.expand_nodes(block, inner, Ref(inner, block.inputs[0], call.loc))
        outputs, default = self.block_outputs(block, inner, last, "")
        sym = InstanceSym(inner, outputs, default)
        out_ref = Ref(call.scope, call.name, call.loc) if default is not None else None
        return sym, out_ref

    def block_outputs(self, block: BlockSpec, inner: Scope, last: Ref, single: str) -> tuple[dict[str, Ref], str | None]:
        """A block's outputs as references in its scope, and the one an
        instance stands for (None if it has several); `single` names the only
        output of a block that declares no mapping."""
        if block.outputs is None:
            return {single: last}, single
        if isinstance(block.outputs, str):
            loc = block.value_loc("outputs")
            return {single: Ref(inner, self.eval_ref(block.outputs, inner.env, loc), loc)}, single
        outputs = {k: Ref(inner, self.eval_ref(v, inner.env, block.entry_loc("outputs", k)),
                          block.entry_loc("outputs", k)) for k, v in block.outputs.items()}
        return outputs, next(iter(outputs)) if len(outputs) == 1 else None

    # -- references --------------------------------------------------------

    def input_refs(self, body: NodeSpec, scope: Scope) -> list[Ref] | None:
        raw = body.inputs
        if raw is None:
            return None
        if isinstance(raw, list):
            return [Ref(scope, self.eval_ref(v, scope.env, body.entry_loc("in", i)), body.entry_loc("in", i))
                    for i, v in enumerate(raw)]
        return [Ref(scope, self.eval_ref(raw, scope.env, body.value_loc("in")), body.value_loc("in"))]

    def eval_ref(self, text, env, loc) -> str:
        value = self.evaluate(text, env, loc)
        if not isinstance(value, str):
            self.errors.error(f"a reference must be a node name, got {value!r}", loc=loc)
            return "?"
        return value

    # -- values ------------------------------------------------------------

    def evaluate(self, value, env, loc):
        """The value of a parameter expression, or None (reported at `loc`)."""
        try:
            return expr.evaluate(value, env)
        except RuleError as e:
            self.errors.error(e.message, loc=loc, hint=e.hint)
            return None


def expand(spec: SpecFile, variant: str | None = None, errors: Collector | None = None) -> Graph:
    """The graph of `spec` in `variant`.  Problems are raised together, or,
    with `errors`, added to it; the nodes they concern are then left out, so
    a later check can report the rest of the spec without repeating them."""
    collect = errors if errors is not None else Collector()
    with expr.work_limit():  # one budget for all of the spec's expressions
        graph = Expander(spec, variant, collect).run()
    if errors is None:
        collect.raise_if_any()
    return graph
