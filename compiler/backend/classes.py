"""Which block instances share one class in model.py, and what that class
takes as constructor arguments, as torchvision writes `Bottleneck` once.

Every instance of a block is first described as it computes: its items in
order (a module with its constructor values, a function, a child instance,
a chain of repeats), what each reads, and what it returns.  Instances of
one block whose descriptions agree but for constructor values share a
class; so do instances where an item is present in some and absent in
others, when whatever reads it reads one other value in its absence (a
projection shortcut: `downsample(x) if present else x`).  Each constructor
value becomes an expression in the class's arguments: a constant, the
input's channel count (`in_channels`), a block parameter (`channels`), a
multiple of one (`4 * channels`), or else an argument of its own.
"""
from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..ir import Graph, Node, TensorInfo
from ..ops import BODY, ModuleCall
from . import resolve, tree
from .emit import class_name
from .lower import Lowerer

NO_DEFAULT = object()
MISSING = object()  # a constructor value an instance does not have (the rest of a chain of one)


class Code(str):
    """Source text that prints as is where a value is expected (`LstmStep()`)."""

    def __repr__(self) -> str:
        return str(self)


def literal(value) -> str:
    if isinstance(value, list):
        value = tuple(value)
    return repr(value)


# -- what one instance computes --------------------------------------------

Ref = tuple  # ("arg", name) | ("entry", path) | ("entry", path, index)


@dataclass
class Entry:
    path: str
    kind: str  # "module" | "function" | "child" | "chain"
    detail: str  # what must agree for two instances to share a class
    refs: tuple[Ref, ...]
    ctor: list[tuple[str, Any]] = field(default_factory=list)  # constructor (label, value)
    positional: int = 0  # how many of ctor are passed positionally
    call: Any = None  # the lowering (module or function) or the child ClassDef(s)
    node: Node | None = None
    out: TensorInfo | None = None  # its value, for the shape comment
    outputs: int = 1  # values a child returns


@dataclass
class View:
    """One instance (or the model itself) as it computes."""

    scope: tree.Scope
    args: list[str]
    entries: list[Entry]
    outputs: tuple[Ref, ...]
    inputs: dict[str, TensorInfo]  # argument -> its value

    @property
    def key(self) -> tuple:
        return (tuple(self.args), tuple((e.path, e.kind, e.detail, e.refs) for e in self.entries), self.outputs)


def _signature_labels(cls) -> list[tuple[str, Any]]:
    """Constructor parameters of a torch module class, with their defaults."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return []
    return [(p.name, p.default) for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in ("device", "dtype")]


def module_defaults(cls_name: str) -> dict[str, Any]:
    """The defaults of a torch module class's constructor parameters."""
    return {n: d for n, d in _signature_labels(resolve.module_class(cls_name)) if d is not inspect.Parameter.empty}


def module_ctor(call: ModuleCall, body: Code | None) -> tuple[list[tuple[str, Any]], int]:
    """A ModuleCall's constructor as (label, value) pairs with every known
    parameter filled in, and how many of them are positional."""
    labels = _signature_labels(resolve.module_class(call.cls))
    args = [body if a is BODY else a for a in call.args]
    names = [n for n, _ in labels]
    pairs = []
    for i, value in enumerate(args):
        pairs.append((names[i] if i < len(names) else f"arg{i}", value))
    given = dict(call.kwargs)
    for name, default in labels[len(args):]:
        if name in given:
            pairs.append((name, given.pop(name)))
        elif default is not inspect.Parameter.empty:
            pairs.append((name, default))
    pairs += list(given.items())
    return pairs, len(args)


# -- classes ---------------------------------------------------------------

@dataclass
class Param:
    name: str
    default: Any = NO_DEFAULT


@dataclass(eq=False)
class ClassDef:
    name: str
    block: str | None
    views: list[View]
    order: list[str] = field(default_factory=list)  # entry paths in forward order
    entries: dict[str, list[Entry | None]] = field(default_factory=dict)  # path -> per view
    fallback: dict[str, Ref] = field(default_factory=dict)  # optional entry -> what stands for it when absent
    params: list[Param] = field(default_factory=list)
    values: list[dict[str, Any]] = field(default_factory=list)  # per view: param -> value
    exprs: dict[tuple[str, str], str] = field(default_factory=dict)  # (path, label) -> expression
    guards: dict[str, str] = field(default_factory=dict)  # optional entry -> the param that switches it
    refs: dict[str, tuple[Ref, ...]] = field(default_factory=dict)  # path -> what it reads (optional entries' names)
    outputs: tuple[Ref, ...] = ()  # what forward returns

    def present(self, path: str) -> bool:
        return all(e is not None for e in self.entries[path])

    def call_values(self, scope: tree.Scope) -> list[tuple[str, Any]]:
        index = next(i for i, v in enumerate(self.views) if v.scope is scope)
        return [(p.name, self.values[index][p.name]) for p in self.params]


def merge(views: list[View]) -> ClassDef | None:
    """One class for all `views` (of one block), or None if they differ
    other than by constructor values and optional items."""
    if len({tuple(v.args) for v in views}) != 1 or len({len(v.outputs) for v in views}) != 1:
        return None
    order = _union_order(views)
    table = {p: [next((e for e in v.entries if e.path == p), None) for v in views] for p in order}
    for column in table.values():
        if len({(e.kind, e.detail, e.outputs) for e in column if e is not None}) != 1:
            return None
    cls = ClassDef("", None, views, order, table)
    refs = {p: list(next(e for e in table[p] if e is not None).refs) for p in order}
    outputs = list(views[0].outputs)
    slots = [(refs[p], j, [e.refs[j] if e is not None else None for e in table[p]])
             for p in order for j in range(len(refs[p]))]
    slots += [(outputs, j, [v.outputs[j] for v in views]) for j in range(len(outputs))]
    for owner, j, slot in slots:
        seen = {r for r in slot if r is not None}
        if len(seen) > 2 or (len(seen) == 2 and not _fallback(cls, seen, slot)):
            return None
        if len(seen) == 2:  # the class reads the optional entry; its absence reads the fallback
            owner[j] = next(r for r in seen if r[1] in cls.fallback and r[0] == "entry")
    cls.refs = {p: tuple(r) for p, r in refs.items()}
    cls.outputs = tuple(outputs)
    return cls


def _union_order(views: list[View]) -> list[str]:
    """The entries of all views in one order that keeps each view's."""
    order: list[str] = []
    for v in views:
        prev = -1
        for e in v.entries:
            if e.path not in order:
                order.insert(prev + 1, e.path)
            prev = order.index(e.path)
    return order


def _fallback(cls: ClassDef, seen: set[Ref], slot: list[Ref | None]) -> bool:
    """Whether a value read as `y` where optional entry y is present, and as
    one other value `z` wherever y is absent, may be written `y if present
    else z`; records z as y's fallback."""
    optional = [r for r in seen if r[0] == "entry" and not cls.present(r[1])]
    if len(optional) != 1:
        return False
    (y,) = optional
    (z,) = seen - {y}
    column = cls.entries[y[1]]
    if any(r is not None and (r == y) != (column[i] is not None) for i, r in enumerate(slot)):
        return False
    if z[0] == "entry" and cls.order.index(z[1]) > cls.order.index(y[1]):
        return False  # z must be computed before y's line
    return cls.fallback.setdefault(y[1], z) == z


def _candidates(view: View) -> dict[str, Any]:
    """Named values a constructor value may be: the inputs' sizes, then the block's parameters."""
    names: dict[str, Any] = {}
    for i, (arg, info) in enumerate(view.inputs.items()):
        if len(info.shape) == 4 and isinstance(info.shape[1], int):
            names["in_channels" if i == 0 else f"{arg}_channels"] = info.shape[1]
        elif len(info.shape) in (2, 3) and isinstance(info.shape[-1], int):
            names["in_features" if i == 0 else f"{arg}_features"] = info.shape[-1]
    if view.scope.instance is not None:
        for k, v in view.scope.instance.args.items():
            if isinstance(v, (int, float, str, bool, tuple)) and k.isidentifier() and k not in names:
                names[k] = v
    return names


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b


class Resolver:
    """Expresses per-instance values in a class's arguments."""

    def __init__(self, cls: ClassDef):
        self.cls = cls
        self.names = [_candidates(v) for v in cls.views]
        self.used: dict[str, Any] = {}  # param -> default
        self.values: list[dict[str, Any]] = [{} for _ in cls.views]

    def _use(self, name: str, default=NO_DEFAULT) -> str:
        if name not in self.used:
            self.used[name] = default
            for i, names in enumerate(self.names):
                self.values[i][name] = names.get(name)
        return name

    def expression(self, values: list[tuple[int, Any]], fresh: str) -> str:
        """An expression for value values[k] in view index k (views where absent left out)."""
        first = values[0][1]
        if all(_same(v, first) for _, v in values):
            return literal(first)
        common = set.intersection(*(set(self.names[i]) for i, _ in values))
        for name in [n for n in self.names[values[0][0]] if n in common]:
            if all(_same(self.names[i][name], v) for i, v in values):
                return self._use(name, self._default(name))
        if all(isinstance(v, int) and not isinstance(v, bool) for _, v in values):
            for name in [n for n in self.names[values[0][0]] if n in common]:
                cands = [self.names[i][name] for i, _ in values]
                if not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in cands):
                    continue
                for k in (2, 3, 4):
                    if all(v == c // k for (_, v), c in zip(values, cands)):
                        return f"{self._use(name, self._default(name))} // {k}"
                ratios = {v / c for (_, v), c in zip(values, cands)}
                if len(ratios) == 1:
                    r = ratios.pop()
                    if r == int(r) and r > 1:
                        return f"{int(r)} * {self._use(name, self._default(name))}"
                    if r < 1 and (1 / r) == int(1 / r) and all(c % int(1 / r) == 0 for c in cands):
                        return f"{self._use(name, self._default(name))} // {int(1 / r)}"
        name = fresh
        while name in self.used or any(name in n for n in self.names):
            name += "_"
        self.used[name] = NO_DEFAULT
        for i, _ in enumerate(self.cls.views):
            self.values[i][name] = None
        for i, v in values:
            self.values[i][name] = v
        return name

    def guard(self, path: str) -> str:
        """The argument that says whether optional entry `path` is present."""
        presence = [self.cls.entries[path][i] is not None for i in range(len(self.cls.views))]
        common = set.intersection(*(set(n) for n in self.names))
        for name in [n for n in self.names[0] if n in common]:
            if all(_same(self.names[i][name], presence[i]) for i in range(len(presence))):
                return self._use(name, self._default(name))
        name = f"use_{path.replace('.', '_')}"
        self.used[name] = False if not presence[0] or Counter(presence)[False] >= Counter(presence)[True] else True
        for i, p in enumerate(presence):
            self.values[i][name] = p
        return name

    def _default(self, name: str):
        """A block parameter's default: its value where an instance did not set it."""
        values = [self.names[i][name] for i, v in enumerate(self.cls.views)
                  if v.scope.instance is not None and name in v.scope.instance.args
                  and name not in v.scope.instance.given and name in self.names[i]]
        if values and all(_same(x, values[0]) for x in values):
            return values[0]
        return NO_DEFAULT

    def finish(self) -> None:
        cls = self.cls
        inputs = [n for n in self.used if n in ("in_channels", "in_features") or n.endswith(("_channels", "_features"))
                  and n not in (cls.views[0].scope.instance.args if cls.views[0].scope.instance else {})]
        block = [n for n in (cls.views[0].scope.instance.args if cls.views[0].scope.instance else {}) if n in self.used]
        rest = [n for n in self.used if n not in inputs and n not in block]
        ordered = inputs + block + rest
        required = [n for n in ordered if self.used[n] is NO_DEFAULT]
        optional = [n for n in ordered if self.used[n] is not NO_DEFAULT]
        cls.params = [Param(n, self.used[n]) for n in required + optional]
        cls.values = self.values


def resolve_class(cls: ClassDef) -> None:
    """Fill in the class's parameters and the expression of every constructor value."""
    r = Resolver(cls)
    for path in cls.order:
        column = cls.entries[path]
        present = [(i, e) for i, e in enumerate(column) if e is not None]
        if not cls.present(path):
            cls.guards[path] = r.guard(path)
        for k, (label, _) in enumerate(present[0][1].ctor):
            values = [(i, e.ctor[k][1]) for i, e in present if e.ctor[k][1] is not MISSING]
            fresh = f"{path}_{label}".replace(".", "_").replace("first_", "").replace("rest_", "")
            cls.exprs[(path, label)] = r.expression(values, fresh) if values else None
    r.finish()


# -- building the classes of a model ---------------------------------------

class Classes:
    """Every class a model's source defines, children before parents."""

    def __init__(self, graph: Graph, top_name: str):
        self.defs: list[ClassDef] = []
        self.of: dict[int, ClassDef] = {}  # id(scope) -> its class
        self.taken: set[str] = set()
        self.bodies: dict[int, str] = {}  # id(node) -> the class of its body
        self.runtime: set[str] = set()  # runtime modules used
        self.top = self._model(graph, top_name)

    def unique(self, name: str) -> str:
        base, k = name, 2
        while name in self.taken:
            name, k = f"{base}{k}", k + 1
        self.taken.add(name)
        return name

    def _model(self, graph: Graph, name: str) -> ClassDef:
        """The classes of a graph's instances, then the graph's own class.
        A block's instances are classified together once every child of
        each is; should blocks nest both ways, the deepest instance goes alone."""
        root = tree.build(graph)
        lowerer = Lowerer(graph)
        pending = _instances(root)
        while pending:
            def ready(s: tree.Scope) -> bool:
                return all(id(c) in self.of for item in s.items for c in _children(item))
            blocks = {s.instance.block for s in pending}
            done = [b for b in blocks if all(ready(s) for s in pending if s.instance.block == b)]
            if done:
                for b in sorted(done):
                    self._form([self._view(s, graph, lowerer) for s in pending if s.instance.block == b], b)
            else:
                deepest = max(pending, key=lambda s: s.name.count("."))
                self._form([self._view(deepest, graph, lowerer)], deepest.instance.block)
            pending = [s for s in pending if id(s) not in self.of]
        top = ClassDef(self.unique(name), None, [self._view(root, graph, lowerer)])
        top.order = [e.path for e in top.views[0].entries]
        top.entries = {e.path: [e] for e in top.views[0].entries}
        top.refs = {e.path: e.refs for e in top.views[0].entries}
        top.outputs = top.views[0].outputs
        resolve_class(top)
        self.defs.append(top)
        self.of[id(root)] = top
        return top

    def _form(self, views: list[View], block: str) -> None:
        groups: dict[tuple, list[View]] = {}
        for v in views:
            groups.setdefault(v.key, []).append(v)
        merged: list[list[View]] = []
        for group in sorted(groups.values(), key=len, reverse=True):
            for current in merged:
                if merge(current + group) is not None:
                    current.extend(group)
                    break
            else:
                merged.append(list(group))
        for group in merged:
            cls = merge(group)
            cls.name, cls.block = self.unique(class_name(block)), block
            resolve_class(cls)
            self.defs.append(cls)
            for v in group:
                self.of[id(v.scope)] = cls

    def _view(self, scope: tree.Scope, graph: Graph, lowerer: Lowerer) -> View:
        refs: dict[str, Ref] = {src: ("arg", arg) for arg, src in scope.inputs.items()}
        entries: list[Entry] = []
        for item in scope.items:
            if isinstance(item, tree.Leaf):
                entry = self._leaf(item, scope, graph, lowerer, refs)
                if entry is not None:
                    entries.append(entry)
                continue
            members = [item.scope] if isinstance(item, tree.Call) else item.members
            classes = [self.of[id(m)] for m in members]
            kind, detail, ctor = _chain_ctor(members, classes) if isinstance(item, tree.Chain) else \
                ("child", repr(classes[0].name), classes[0].call_values(members[0]))
            outputs = len(members[-1].outputs)
            entries.append(Entry(item.path, kind, detail, tuple(refs[s] for s in members[0].inputs.values()),
                                 ctor, len(ctor), classes, out=graph.tensor(members[-1].outputs[0])
                                 if members[-1].outputs else None, outputs=outputs))
            for index, result in enumerate(members[-1].outputs):
                refs[result] = ("entry", item.path) if outputs == 1 else ("entry", item.path, index)
        outputs = tuple(refs[o] for o in scope.outputs)
        inputs = {arg: graph.tensor(src) for arg, src in scope.inputs.items()}
        return View(scope, list(scope.inputs), entries, outputs, inputs)

    def _leaf(self, leaf: tree.Leaf, scope: tree.Scope, graph: Graph, lowerer: Lowerer, refs) -> Entry | None:
        node = leaf.node
        lowering = lowerer.lower(node, scope.computes_itself)
        if lowering is None:  # identity: the input stands for it
            refs[node.name] = refs[node.inputs[0]]
            return None
        ins = tuple(refs[s] for s in node.inputs)
        refs[node.name] = ("entry", leaf.path)
        if isinstance(lowering, ModuleCall):
            body = None
            if BODY in lowering.args:
                body = Code(f"{self._body(node)}()")
            if lowering.cls in resolve.RUNTIME:
                self.runtime.add(lowering.cls)
            ctor, positional = module_ctor(lowering, body)
            return Entry(leaf.path, "module", repr((lowering.cls, [k for k, _ in ctor], lowering.select)), ins,
                         ctor, positional, lowering, node, node.out)
        return Entry(leaf.path, "function", repr((lowering.fn, lowering.args, sorted(lowering.kwargs.items()),
                                                  lowering.pack, lowering.fold)), ins, [], 0, lowering, node, node.out)

    def _body(self, node: Node) -> str:
        """The class of a cell's step, defined before the model's."""
        if id(node) not in self.bodies:
            self.bodies[id(node)] = self._model(node.body, class_name(node.body.name) + "Step").name
        return self.bodies[id(node)]


def _chain_ctor(members: list[tree.Scope], classes: list[ClassDef]):
    """A chain whose members after the first are all built alike is a loop
    (`First(...), *(Rest(...) for _ in range(count - 1))`), and chains of
    different lengths may share a class; any other chain lists its members."""
    values = [c.call_values(m) for m, c in zip(members, classes)]
    if all(c is classes[0] for c in classes) and all(v == values[-1] for v in values[1:]):
        rest = values[1] if len(values) > 1 else [(k, MISSING) for k, _ in values[0]]
        ctor = [("count", len(members))] + [(f"first.{k}", v) for k, v in values[0]] + \
            [(f"rest.{k}", v) for k, v in rest]
        return "loop", repr(classes[0].name), ctor
    return "chain", repr([c.name for c in classes]), [(f"{i}.{k}", v) for i, vs in enumerate(values) for k, v in vs]


def _children(item: tree.Item) -> list[tree.Scope]:
    if isinstance(item, tree.Call):
        return [item.scope]
    if isinstance(item, tree.Chain):
        return list(item.members)
    return []


def _instances(scope: tree.Scope) -> list[tree.Scope]:
    found = []
    for item in scope.items:
        for child in _children(item):
            found.append(child)
            found += _instances(child)
    return found
