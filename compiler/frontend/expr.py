"""Parameter expressions: `$width * 4`, `${'proj' if stride > 1 else 'x'}`.

A string that starts with `$` is an expression and evaluates to a value of any
type (`$layers[1]`, `$c * 4`).  A string holding `${...}` is a template and
evaluates to a string (`"inception${name}"`).  Other strings are literals.
Expressions are a small, safe subset of Python: literals, names of parameters,
arithmetic, comparisons, `a if c else b`, indexing, list comprehensions
(`[ceil(n * depth) for n in layers]`), and the functions below.

`shape(x)` is the shape of a node or input, named as `in:` names it (`x`,
`stem.conv`): a list of sizes and symbols (`[N, 64, 56, 56]`).  Its argument
is a reference, not a parameter; the expansion supplies the shapes
(`reading_shapes`), inferred up to that node as it builds the graph.
"""
from __future__ import annotations

import ast
import contextlib
import contextvars
import functools
import math
import operator
import re
from difflib import get_close_matches
from typing import Any, Mapping

from ..errors import RuleError


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of `divisor`, never dropping more
    than 10% (the rule MobileNet and EfficientNet use for width multipliers)."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return int(new)


# A spec is untrusted input: no expression may build a value so large that
# checking the spec hangs or runs out of memory (`9**9**9`, `range(10**10)`).
MAX_ITEMS = 100_000  # elements of a list or characters of a string an expression makes
MAX_BITS = 4096  # bits of an integer a power makes
# Work: one unit per syntax node evaluated and per item of every list or
# string an expression makes or reads. Bounded items alone still let
# `[sum(range(10**5)) for j in range(10**5)]` run for hours. The zoo's
# specs spend at most about 10,000 units in all (EfficientNet-B7).
MAX_WORK = 500_000
MAX_SOURCE = 1_000  # characters of one expression; the zoo's longest has 95
# Levels of nesting evaluated (the zoo's deepest has fewer than 10): a limit of
# its own, so that the answer does not depend on the interpreter's recursion
# limit, which a library loaded in the same process may have raised.
MAX_NESTING = 200


class _Work:
    """What is left of an evaluation budget, shared by the expressions of one
    spec inside work_limit(), else one per expression."""

    def __init__(self, units: int):
        self.limit = self.left = units

    def spend(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            raise RuleError(f"expressions take more than {self.limit:,} steps of work",
                            hint="an expression computes a parameter; long loops and large lists do not belong in a spec")


_budget: contextvars.ContextVar[_Work | None] = contextvars.ContextVar("netspec_expression_work", default=None)


@contextlib.contextmanager
def work_limit(units: int = MAX_WORK):
    """Every expression evaluated inside shares one budget of `units`."""
    token = _budget.set(_Work(units))
    try:
        yield
    finally:
        _budget.reset(token)


class SymbolicDim:
    """A dimension of `shape(x)` known only when the model runs (N, T): it
    may be passed on as it is (a reshape's shape), never computed with."""

    def __init__(self, name: str, ref: str, index: int):
        self.name, self.ref, self.index = name, ref, index

    def __str__(self) -> str:
        return self.name

    __repr__ = __str__

    def __eq__(self, other) -> bool:
        return isinstance(other, (SymbolicDim, str)) and str(other) == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def _refuse(self, *args):
        raise RuleError(f"dimension {self.index} of '{self.ref}' is the symbol {self.name}, "
                        "known only when the model runs, not a number",
                        hint=f"compute with the dimensions that are numbers (shape({self.ref})[1] is an image's "
                             "channels), or pass a size as a parameter")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _refuse
    __pow__ = __rpow__ = __neg__ = __pos__ = __abs__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = __int__ = __float__ = __index__ = __round__ = _refuse


# What `shape(name)` calls: set by the expansion, which knows the names in
# scope and infers their shapes; None outside a node or block.
_shapes: contextvars.ContextVar[Any] = contextvars.ContextVar("netspec_shape_reader", default=None)


@contextlib.contextmanager
def reading_shapes(reader):
    """Inside, `shape(name)` is `reader(name)`: a tuple of ints and symbols."""
    token = _shapes.set(reader)
    try:
        yield
    finally:
        _shapes.reset(token)


class _Shape(list):
    """What shape(x) gives: a list whose out-of-range index says the shape."""

    def __init__(self, dims, ref: str):
        super().__init__(dims)
        self.ref = ref

    def __getitem__(self, index):
        try:
            return super().__getitem__(index)
        except IndexError:
            raise RuleError(f"shape({self.ref}) is {format_dims(self)}: it has no dimension {index}",
                            hint=f"dimensions count from 0 to {len(self) - 1}, or from -1 for the last") from None


def format_dims(dims) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def _plain(value: Any) -> Any:
    """A result as a parameter holds it: a symbolic dimension as its name."""
    if isinstance(value, SymbolicDim):
        return value.name
    if isinstance(value, list):
        return [_plain(v) for v in value]  # a plain list: shape(x) as a parameter's value
    return value


def _range(*args) -> list:
    r = range(*args)
    if len(r) > MAX_ITEMS:
        raise ValueError(f"range of {len(r):,} numbers is too long (at most {MAX_ITEMS:,})")
    return list(r)


def _power(base, exponent):
    if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1 and exponent > 0 \
            and exponent * (abs(base).bit_length() - 1) > MAX_BITS:
        raise ValueError(f"{base} ** {exponent} is too large")
    return operator.pow(base, exponent)


def _times(a, b):
    count, seq = (b, a) if isinstance(a, (str, list, tuple)) else (a, b)
    if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and len(seq) * count > MAX_ITEMS:
        raise ValueError(f"repeating {len(seq)} items {count:,} times is too long (at most {MAX_ITEMS:,})")
    return operator.mul(a, b)


FUNCTIONS = {
    "min": min, "max": max, "abs": abs, "round": round, "int": int, "float": float,
    "len": len, "sum": sum, "range": _range, "str": str,
    "ceil": math.ceil, "floor": math.floor, "sqrt": math.sqrt,
    "make_divisible": make_divisible,
}
SHAPE = "shape"  # shape(x): read by the evaluator itself, its argument being a reference

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: _times,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: _power,
}
_CMPOPS = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_TEMPLATE = re.compile(r"\$\{([^}]*)\}")
_DOLLAR_NAME = re.compile(r"\$([A-Za-z_]\w*)")


_NOT_A_NAME = object()


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and "$" in value


def evaluate(value: Any, env: Mapping[str, Any]) -> Any:
    """Evaluate `value` if it is an expression or template; recurse into
    lists and dicts; return anything else unchanged."""
    if isinstance(value, str):
        if "${" in value:
            if value.startswith("${") and value.endswith("}") and value.count("${") == 1:
                return _plain(_eval_source(value[2:-1], env, value))
            return _TEMPLATE.sub(lambda m: str(_eval_source(m.group(1), env, value)), value)
        if value.startswith("$"):
            found = env.get(value[1:], _NOT_A_NAME) if value[1:].isidentifier() else _NOT_A_NAME
            if found is not _NOT_A_NAME and not isinstance(found, (list, tuple, dict)):
                return _plain(found)  # a parameter's name alone, the most common expression: no parse, no walk
            return _plain(_eval_source(value, env, value))
        return value
    if isinstance(value, list):
        return [evaluate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: evaluate(v, env) for k, v in value.items()}
    return value


def _eval_source(source: str, env: Mapping[str, Any], original: str) -> Any:
    # `$` goes with each name: a source over twice the limit is over it without them too (and not cached)
    source = _python(source) if len(source) <= 2 * MAX_SOURCE else source
    if len(original) > 80:  # messages quote the expression: a short one whole, a long one cut
        original = original[:60] + f"... ({len(original):,} characters)"
    if len(source) > MAX_SOURCE:
        raise RuleError(f"expression '{original}' is longer than {MAX_SOURCE:,} characters",
                        hint="split it into parameters that build on each other")
    try:
        tree = _parse(source)
    except (SyntaxError, MemoryError, RecursionError):  # Python's parser gives up on deep nesting with the last two
        raise RuleError(f"cannot parse expression '{original}'",
                        hint="expressions use Python syntax, e.g. '$width * 4' or "
                             "'${a if stride == 1 else b}'") from None
    try:
        return _Eval(env, original, _budget.get() or _Work(MAX_WORK)).visit(tree.body)
    except RuleError:
        raise
    except RecursionError:
        raise RuleError(f"expression '{original}' is nested too deeply to evaluate",
                        hint="split it into parameters that build on each other") from None
    except (ArithmeticError, TypeError, ValueError, IndexError, KeyError) as e:
        raise RuleError(f"expression '{original}' failed: {type(e).__name__}: {e}") from None


@functools.lru_cache(maxsize=4096)
def _python(source: str) -> str:
    """An expression as Python reads it: `$width * 4` -> `width * 4`."""
    return _DOLLAR_NAME.sub(r"\1", source).strip()


@functools.lru_cache(maxsize=4096)
def _parse(source: str) -> ast.Expression:
    """An expression's syntax tree, parsed once: a block's expressions are
    evaluated once per instance (ResNet-152: 50 instances), and an editor
    analyses the same spec at every keystroke.  Evaluation never changes it."""
    return ast.parse(source, mode="eval")


class _Eval(ast.NodeVisitor):
    def __init__(self, env: Mapping[str, Any], original: str, work: _Work):
        self.env, self.original, self.work = env, original, work
        self.depth = 0

    def visit(self, node):
        self.work.spend(1)
        if self.depth >= MAX_NESTING:
            raise RecursionError  # reported as nesting too deep, as Python's own limit is
        self.depth += 1
        try:
            value = super().visit(node)
        finally:
            self.depth -= 1
        if isinstance(value, (list, tuple, str, dict)):
            self.work.spend(len(value))
        return value

    def generic_visit(self, node):
        raise RuleError(f"'{ast.unparse(node)}' is not allowed in expression '{self.original}'",
                        hint="use arithmetic, comparisons, 'a if c else b', indexing and "
                             f"the functions {', '.join(sorted(FUNCTIONS))}")

    def visit_Constant(self, node):
        return node.value

    def visit_Name(self, node):
        if node.id in self.env:
            return self.env[node.id]
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        close = get_close_matches(node.id, list(self.env), n=1)
        hint = f"did you mean '${close[0]}'?" if close else (
            "parameters come from 'params', the variant, the block's 'params' and its arguments"
            + (f"; known here: {', '.join(sorted(self.env))}" if self.env else ""))
        raise RuleError(f"unknown parameter '{node.id}' in expression '{self.original}'", hint=hint)

    def visit_BinOp(self, node):
        op = _BINOPS.get(type(node.op))
        if op is None:
            return self.generic_visit(node)
        return op(self.visit(node.left), self.visit(node.right))

    def visit_UnaryOp(self, node):
        value = self.visit(node.operand)
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return +value
        if isinstance(node.op, ast.Not):
            return not value
        return self.generic_visit(node)

    def visit_BoolOp(self, node):
        if isinstance(node.op, ast.And):
            result = True
            for v in node.values:
                result = self.visit(v)
                if not result:
                    return result
            return result
        result = False
        for v in node.values:
            result = self.visit(v)
            if result:
                return result
        return result

    def visit_Compare(self, node):
        left = self.visit(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            right = self.visit(right_node)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True

    def visit_IfExp(self, node):
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def visit_Subscript(self, node):
        return self.visit(node.value)[self.visit(node.slice)]

    def visit_Slice(self, node):
        part = lambda n: None if n is None else self.visit(n)  # noqa: E731
        return slice(part(node.lower), part(node.upper), part(node.step))

    def visit_List(self, node):
        return [self.visit(e) for e in node.elts]

    visit_Tuple = visit_List

    def visit_ListComp(self, node):
        # `[ceil(n * depth) for n in layers]`: one `for` over a list, with
        # optional `if`s; the loop name is local to the comprehension.
        if len(node.generators) != 1 or node.generators[0].is_async \
                or not isinstance(node.generators[0].target, ast.Name):
            return self.generic_visit(node)
        gen = node.generators[0]
        name, out = gen.target.id, []
        inner = _Eval(dict(self.env), self.original, self.work)
        for value in self.visit(gen.iter):
            inner.env[name] = value
            if all(inner.visit(cond) for cond in gen.ifs):
                out.append(inner.visit(node.elt))
        return out

    def visit_Dict(self, node):
        return {self.visit(k): self.visit(v) for k, v in zip(node.keys, node.values)}

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name) and node.func.id == SHAPE:
            return self._shape(node)
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = ast.unparse(node.func)
            close = get_close_matches(name, [*FUNCTIONS, SHAPE], n=1)
            raise RuleError(f"unknown function '{name}' in expression '{self.original}'",
                            hint=f"did you mean '{close[0]}'?" if close else
                            f"available functions: {', '.join(sorted([*FUNCTIONS, SHAPE]))}")
        args = [self.visit(a) for a in node.args]
        kwargs = {k.arg: self.visit(k.value) for k in node.keywords}
        return FUNCTIONS[node.func.id](*args, **kwargs)

    def _shape(self, node: ast.Call) -> list:
        """shape(x): the argument is a name as `in:` writes it (x, stem.conv,
        layer.2), or a string expression that makes one."""
        if len(node.args) != 1 or node.keywords:
            raise RuleError(f"shape() takes one node or input name, in expression '{self.original}'",
                            hint="e.g. shape(x)[1], the channels of the block's input x")
        arg = node.args[0]
        ref = _dotted(arg)
        if ref is None:
            ref = self.visit(arg)
            if not isinstance(ref, str):
                raise RuleError(f"shape() needs the name of a node or input, got {ref!r} in expression "
                                f"'{self.original}'", hint="write the name as 'in:' does: shape(x), shape(stem.conv)")
        reader = _shapes.get()
        if reader is None:
            raise RuleError(f"shape({ref}) reads the shape of a node or input, which is known only inside "
                            "'nodes' and blocks", hint="use it in a node's parameters or a block's")
        dims = reader(ref)
        return _Shape([SymbolicDim(d, ref, i) if isinstance(d, str) else d for i, d in enumerate(dims)], ref)


def _dotted(node: ast.AST) -> str | None:
    """`stem.conv` written as a reference: Python reads it as an attribute."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None
