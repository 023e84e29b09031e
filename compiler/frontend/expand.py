"""Expand blocks, repeats and variants into a graph of nodes.

Reads the typed tree `validate` returns.  Every node gets its dotted name
through the block instances that produced it (`layer2.0.conv1`), its
concrete parameter values, and the chain of expansions (`Frame`s) that
errors print; every block instance is recorded (`ir.Instance`), so the
backend can nest modules as the blocks nest.  A block with `state` expands
into a scan node whose body is the cell's per-step graph (frontend.cells).

Expressions may read the shape of a node or input (`${shape(x)[1]}`): the
nodes are expanded in the order they are written, so what an expression
names is already built, and its value is inferred then, up from the inputs
(`value_of`, memoised), by the function the caller hands in (`infer`: the
signature and shape passes for one node; the frontend knows no op).  A
shape is therefore read only from what comes before: a node defined later,
or one inside a cell's step, is a located error.
"""
from __future__ import annotations

from difflib import get_close_matches
from typing import Any, Callable

from ..errors import Collector, Diagnostic, Frame, Loc, RuleError, SpecError
from ..ir import Graph, Instance, Node, TensorInfo
from . import expr
from .schema import Args, BlockSpec, NodeSpec, SpecFile
from .cells import expand_cell
from .scope import (AliasSym, Builder, Call, DisabledSym, FailedSym, GroupSym, InstanceSym, NodeSym, Ref, Resolver,
                    Scope, lookup)


# A spec is untrusted input: `repeat: 1000000` is refused, not expanded.
# The zoo's largest graph (EfficientNet-B7) has 863 nodes.
MAX_EXPANDED = 10_000  # nodes, block instances and repeats one spec expands to

# The value of one node from its inputs' values, its problems added to the
# collector (None then): passes.shapes.node_value.
NodeValue = Callable[[Node, list[TensorInfo], Collector], TensorInfo | None]


class _Unknown(RuleError):
    """A shape that cannot be read because of a problem reported elsewhere
    (a node with an error of its own): the expression fails without a
    second message."""

    def __init__(self):
        super().__init__("")


class Expander:
    def __init__(self, spec: SpecFile, variant: str | None, errors: Collector, infer: NodeValue | None = None):
        self.spec = spec
        self.file = spec.file
        self.errors = errors
        self.resolver = Resolver(errors)
        self.variant = variant
        self.expanded = 0  # nodes and instances made so far, against MAX_EXPANDED
        self.failures = 0  # expressions that failed, reported or not
        self.infer = infer
        self.scope: Scope | None = None  # where `shape(name)` looks names up; None outside the nodes
        self.top: Scope | None = None
        self.inputs: dict[str, TensorInfo] = {}
        self.values: dict[str, TensorInfo | None] = {}  # inferred so far; None: failed

    # -- entry point -------------------------------------------------------

    def run(self) -> Graph:
        with expr.reading_shapes(self.read_shape):
            return self._run()

    def _run(self) -> Graph:
        env = self._top_env()
        inputs = {name: TensorInfo(self._input_shape(name, i, env), i.dtype) for name, i in self.spec.inputs.items()}
        self.inputs = inputs
        top = self.top = Scope(env, "", (), Builder())
        for name in inputs:
            top.symbols[name] = NodeSym(name)
        first_input = Ref(top, next(iter(inputs)), self.spec.value_loc("inputs"))
        self.expand_nodes(self.spec, top, first_input)
        self.scope = top

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
        outer, self.scope = self.scope, scope
        try:
            for local, body in owner.nodes.items():
                prev = self._expand_node(local, body, owner.entry_key_loc("nodes", local), scope, prev)
                self.scope = scope
        finally:
            self.scope = outer
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

        if count is None:
            explicit = self.input_refs(body, body.inputs, scope, scope.env)
            sym, out = self._expand_one(local, body, loc, scope, explicit if explicit is not None else [prev], {}, None)
            scope.symbols[local] = sym
            return out if out is not None else prev

        if self.expanded + count > MAX_EXPANDED:  # before evaluating 'in:' for every repeat
            self._too_large(loc, f"{scope.prefix}{local}.{MAX_EXPANDED - self.expanded}", scope)
        reps: list[Any] = []
        # Registered before the repeats are made, so one repeat's expressions
        # can read the shape of the one before it.
        scope.symbols[local] = GroupSym(reps)
        envs = [{**scope.env, "i": r, **({"item": items[r]} if items is not None else {})} for r in range(count)]
        written = [self.input_refs(body, body.inputs, scope, env) for env in envs]
        overridden = [self._override_inputs(body, scope, env, r, count) for r, env in enumerate(envs)]
        # Each repeat after the first reads the one before it, unless 'in:'
        # chooses its inputs per repeat ($i, $item) or an override does.
        per_repeat = body.inputs is not None and len({tuple(ref.text for ref in refs or ()) for refs in written}) > 1
        if not per_repeat and written[0] is not None and len(written[0]) > 1 \
                and any(o is None for o in overridden[1:]):
            self._ambiguous_chain(local, body, scope, written[0])
            per_repeat = True  # read as written, so the error is not followed by others
        chain_in = written[0] if written[0] is not None else [prev]
        last_out = None
        for r in range(count):
            extra = {k: envs[r][k] for k in ("i", "item") if k in envs[r]}
            if overridden[r] is not None:
                inputs = overridden[r]
            elif per_repeat:
                inputs = written[r]
            else:
                inputs = chain_in
            sym, out = self._expand_one(f"{local}.{r}", body, loc, scope, inputs, extra, r)
            reps.append(sym)
            if out is not None:  # the next repeat takes this one's output
                chain_in = [out]
                last_out = out
        return Ref(scope, local, loc) if last_out is not None else prev

    def _too_large(self, loc: Loc, full: str, scope: Scope):
        raise SpecError(Diagnostic(
            f"the spec expands to more than {MAX_EXPANDED:,} nodes and block instances", loc=loc, node=full,
            trace=scope.trace, hint="check the repeat counts: a model this large is not what a spec is for"))

    def _ambiguous_chain(self, local: str, body: NodeSpec, scope: Scope, refs: list[Ref]) -> None:
        names = [ref.text for ref in refs]
        rest = ", ".join(names[1:])
        self.errors.error(
            f"it repeats with {len(refs)} inputs ({', '.join(names)}) but does not say what the repeats after "
            "the first read", loc=body.value_loc("in"), node=scope.prefix + local, trace=scope.trace,
            hint=f"choose them per repeat with $i: to chain the first and keep the others, write "
                 f"in: [\"${{'{names[0]}' if i == 0 else '{local}.' + str(i - 1)}}\", {rest}]; "
                 "or set a repeat's inputs under 'overrides'")

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
            self._too_large(loc, full, scope)
        if body.when is not None:
            cond = self.evaluate(body.when, env, body.value_loc("when"))
            if not cond:
                return DisabledSym(body.value_loc("when"), str(body.when)), None
        reported = self._problems()
        args, arg_locs = self._arguments(body, env, rep)
        if body.op is not None:
            node = self._make_op(full, body, loc, scope, inputs, args, arg_locs)
            if node is not None and (self._problems() > reported or scope.tainted):
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
            if key == "in":  # an override's inputs: _override_inputs
                continue
            args[key] = self.evaluate(value, env, given.value_loc(key))
            locs[key] = given.key_loc(key)

    def _override_inputs(self, body: NodeSpec, scope: Scope, env: dict, rep: int, count: int) -> list[Ref] | None:
        """The inputs an override sets for repeat `rep` (the last one that
        matches), or None."""
        refs = None
        for key, override in (body.overrides or {}).items():
            if -count <= key < count and key % count == rep and "in" in override.args:
                refs = self.input_refs(override, override.args["in"], scope, env)
        return refs

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
        reported = self._problems()
        # The instance's scope: its inputs are known before its parameters'
        # defaults are evaluated, so a default may read their shapes.
        inner = Scope({}, full + ".", scope.trace + (frame,), scope.builder)
        for input_name, ref in zip(block.inputs, inputs):
            inner.symbols[input_name] = AliasSym(ref)
        outer, self.scope = self.scope, inner
        try:
            env = self._bind(block_name, block, args, arg_locs, scope, full, loc)
        finally:
            self.scope = outer
        inner.env = env
        inner.tainted = scope.tainted or self._problems() > reported
        call = Call(full, name, block_name, block, env, inner.trace, loc, scope, inputs,
                    body.value_loc("in") if body.has("in") else loc,
                    tainted=inner.tainted, given=tuple(args), inner=inner)
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
        inner = call.inner
        for input_name, ref in zip(block.inputs, call.inputs):
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
        outer, self.scope = self.scope, inner
        try:
            return self._block_outputs(block, inner, last, single)
        finally:
            self.scope = outer

    def _block_outputs(self, block: BlockSpec, inner: Scope, last: Ref, single: str):
        if block.outputs is None:
            return {single: last}, single
        if isinstance(block.outputs, str):
            loc = block.value_loc("outputs")
            return {single: Ref(inner, self.eval_ref(block.outputs, inner.env, loc), loc)}, single
        outputs = {k: Ref(inner, self.eval_ref(v, inner.env, block.entry_loc("outputs", k)),
                          block.entry_loc("outputs", k)) for k, v in block.outputs.items()}
        return outputs, next(iter(outputs)) if len(outputs) == 1 else None

    # -- references --------------------------------------------------------

    def input_refs(self, where: Args, raw, scope: Scope, env: dict) -> list[Ref] | None:
        """The references `raw` (a node's or an override's 'in:') makes in `env`."""
        if raw is None:
            return None
        if isinstance(raw, list):
            return [Ref(scope, self.eval_ref(v, env, where.entry_loc("in", i)), where.entry_loc("in", i))
                    for i, v in enumerate(raw)]
        return [Ref(scope, self.eval_ref(raw, env, where.value_loc("in")), where.value_loc("in"))]

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
        except _Unknown:
            self.failures += 1
            return None
        except RuleError as e:
            self.failures += 1
            self.errors.error(e.message, loc=loc, hint=e.hint)
            return None

    def _problems(self) -> int:
        return len(self.errors.errors) + self.failures

    # -- shapes ------------------------------------------------------------

    def read_shape(self, text: str) -> tuple:
        """`shape(text)` in the scope being expanded: the shape of the node or
        input it names, inferred now (expr.reading_shapes calls this)."""
        scope = self.scope
        if scope is None:
            raise RuleError(f"shape({text}) reads the shape of a node or input, which is known only inside "
                            "'nodes' and blocks, not in 'params', 'variants' or input shapes",
                            hint="use it in a node's parameters or a block's")
        if scope.builder is not self.top.builder:
            raise RuleError(f"shape({text}): shapes are not known inside a cell (a block with 'state'): its "
                            "step's values are known only when the sequence is scanned",
                            hint="pass the size to the cell as a parameter")
        if self.infer is None:
            raise RuleError(f"shape({text}) needs shape inference, which this expansion was not given")
        if lookup(scope, text)[0] is None:
            names = list(scope.symbols)
            close = get_close_matches(text, names, n=1)
            raise RuleError(f"shape({text}): no node or input '{text}' here",
                            hint=(f"did you mean '{close[0]}'? " if close else "") +
                            "shape() reads an input of the block, or a node defined before this one")
        probe = Collector()
        full = Resolver(probe).resolve(Ref(scope, text, None))
        if full is None:
            if probe.errors:
                raise RuleError(f"shape({text}): {probe.errors[0].message}", hint=probe.errors[0].hint)
            raise _Unknown()
        value = self.value_of(full, text)
        return value.shape

    def value_of(self, full: str, text: str) -> TensorInfo:
        """The value of node or input `full`, inferring those it depends on
        first (iteratively: a chain of hundreds of nodes is no recursion)."""
        builder, values = self.top.builder, self.values
        stack, open_ = [full], set()
        while stack:
            name = stack[-1]
            if name in values:
                stack.pop()
                continue
            if name in self.inputs:
                values[name] = self.inputs[name]
                continue
            node = builder.nodes.get(name)
            if node is None or self.resolver.is_broken(node):
                values[name] = None
                continue
            refs = builder.inputs_of.get(name)
            sources = [] if refs is not None else list(node.inputs)  # a cell's results are made resolved
            for ref in refs or ():
                source = self.resolver.resolve(ref, report=False)
                if source is None:
                    if isinstance(lookup(ref.scope, ref.text)[0], FailedSym):
                        raise _Unknown()
                    raise RuleError(f"shape({text}) is not known here: '{name}' reads '{ref.text}', which is "
                                    "not defined before this node",
                                    hint="shapes are read in the order nodes are written: define it earlier, "
                                         "or give the size as a parameter")
                sources.append(source)
            waiting = [src for src in sources if src not in values]
            if waiting:
                if name in open_ or any(src in open_ for src in waiting):
                    values[name] = None  # a cycle: the structure check names it
                    continue
                open_.add(name)
                stack.extend(waiting)
                continue
            stack.pop()
            open_.discard(name)
            ins = [values[src] for src in sources]
            node.inputs = sources
            values[name] = None if any(v is None for v in ins) else self.infer(node, ins, self.errors)
        if values[full] is None:
            raise _Unknown()
        return values[full]


def expand(spec: SpecFile, variant: str | None = None, errors: Collector | None = None,
           infer: NodeValue | None = None) -> Graph:
    """The graph of `spec` in `variant`.  Problems are raised together, or,
    with `errors`, added to it; the nodes they concern are then left out, so
    a later check can report the rest of the spec without repeating them.
    `infer` gives one node's value from its inputs' (passes.shapes.node_value):
    without it, an expression that reads a shape (`shape(x)`) is an error."""
    collect = errors if errors is not None else Collector()
    with expr.work_limit():  # one budget for all of the spec's expressions
        graph = Expander(spec, variant, collect, infer).run()
    if errors is None:
        collect.raise_if_any()
    return graph
