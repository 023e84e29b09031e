"""What can go wrong, in three kinds, each its own class.

- A **user error** (`UserError`) is something the person running netspec can
  fix: a problem in their spec (`SpecError`, located at the file, line and
  column, with the chain of block expansions that produced the node), or in
  their environment (`ResourceError`: a missing file, unreadable weights, an
  uninstalled reference package).  Its text is meant for people; the command
  line prints it and exits 2, never with a traceback.
- An **internal error** (`InternalError`) is a bug in netspec: a shape rule or
  a lowering that raised.  It names the node it happened at and is always
  chained to the exception that caused it, so `--debug` can show the trace.

Rules (op shape rules, expression evaluation) raise the small, location-free
`RuleError`; the stage that calls them adds the node, the source position and
the chain of block expansions, and collects everything it finds before
raising once (`Collector`).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Loc:
    """A position in a spec file; line and column are 1-based."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Frame:
    """One step of block expansion: instance `instance` of block `block`."""

    block: str
    block_loc: Loc | None
    instance: str
    instance_loc: Loc | None
    repeat: int | None = None

    def __str__(self) -> str:
        where = f" ({_short(self.block_loc)})" if self.block_loc else ""
        inst = f"'{self.instance}'"
        if self.instance_loc:
            inst += f" ({_short(self.instance_loc)})"
        rep = f"repeat {self.repeat} of " if self.repeat is not None else ""
        return f"in block '{self.block}'{where}, {rep}instance {inst}"


def _short(loc: Loc) -> str:
    return f"{loc.file}:{loc.line}"


@dataclass
class Diagnostic:
    message: str
    loc: Loc | None = None
    node: str | None = None
    op: str | None = None
    trace: tuple[Frame, ...] = ()
    hint: str | None = None
    severity: str = "error"
    # The same problem at the same place in other instances of a block (or
    # other repeats of a node), reported once: the full names of the nodes,
    # and the expansion chain of each (an editor relates every instance).
    also: tuple[str, ...] = ()
    also_traces: tuple[tuple[Frame, ...], ...] = ()

    def format(self) -> str:
        head = f"{self.loc}: " if self.loc else ""
        who = ""
        if self.node:
            who = f"node '{self.node}'" + (f" ({self.op})" if self.op else "") + ": "
        lines = [f"{head}{self.severity}: {who}{self.message}{self._instances()}"]
        lines += [f"  {frame}" for frame in reversed(self.trace)]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def _instances(self) -> str:
        if not self.also:
            return ""
        n = len(self.also) + 1
        if self.trace:
            first = self.trace[-1]
            return f" (in {n} instances of block '{first.block}': first at '{first.instance}')"
        return f" (in {n} repeats: first at '{self.node}')"

    def key(self) -> tuple:
        """What makes two diagnostics the same problem at the same place."""
        return (self.severity, self.message, self.loc, self.op, self.hint)


def group_instances(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """One diagnostic per problem and place: an error written once in a
    block is found in every instance of it (87 times in a block repeated 87
    times), and is shown once with the count; the first instance's stands."""
    firsts: dict[tuple, Diagnostic] = {}
    others: dict[tuple, dict[str, tuple[Frame, ...]]] = {}
    for d in diagnostics:
        key = d.key()
        if key not in firsts:
            firsts[key], others[key] = d, dict(zip(d.also, d.also_traces or [()] * len(d.also)))
        elif d.node and d.node != firsts[key].node:
            others[key].setdefault(d.node, d.trace)
            others[key].update((n, t) for n, t in zip(d.also, d.also_traces or [()] * len(d.also)))
    out = []
    for key, d in firsts.items():
        also = tuple(others[key])
        out.append(d if also == d.also else Diagnostic(d.message, d.loc, d.node, d.op, d.trace, d.hint,
                                                        d.severity, also, tuple(others[key].values())))
    return out


class UserError(Exception):
    """Something the user can fix; `format()` is the text to show them."""

    def format(self) -> str:
        return str(self)


class SpecError(UserError):
    """One or more problems in a user's spec, each at its position."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = group_instances(list(diagnostics))
        super().__init__(self.format())

    def format(self) -> str:
        text = "\n".join(d.format() for d in self.diagnostics)
        n = len(self.diagnostics)
        if n > 1:
            text += f"\n{n} errors"
        return text


class ResourceError(UserError):
    """A file, folder or package netspec needs is missing or unusable: the
    spec may be fine, the environment is not."""

    def __init__(self, message: str, hint: str | None = None):
        self.message, self.hint = message, hint
        super().__init__(self.format())

    def format(self) -> str:
        return f"error: {self.message}" + (f"\n  hint: {self.hint}" if self.hint else "")


class RuleError(Exception):
    """Raised by a location-free rule (an op's shape rule, an expression);
    the caller turns it into a Diagnostic with the node and position.  `at`
    names the parameter whose position fits better than the node's."""

    def __init__(self, message: str, hint: str | None = None, at: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.at = at


class InternalError(Exception):
    """A bug in netspec itself, never the user's fault. Always chained to the
    exception that revealed it; names the node when one was being handled."""

    def __init__(self, message: str, node: str | None = None, op: str | None = None, loc: Loc | None = None):
        self.message, self.node, self.op, self.loc = message, node, op, loc
        super().__init__(self.format())

    def format(self) -> str:
        head = f"{self.loc}: " if self.loc else ""
        who = f"node '{self.node}'" + (f" ({self.op})" if self.op else "") + ": " if self.node else ""
        return f"{head}internal error: {who}{self.message}"


@dataclass
class Collector:
    """Gathers diagnostics across a stage and raises them together."""

    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    _seen: set = field(default_factory=set, repr=False)

    def error(self, message: str, **kw) -> None:
        self.add(Diagnostic(message, **kw))

    def add(self, diagnostic: Diagnostic) -> None:
        """Add an error unless the very same one is there: a node checked
        early (its shape read during expansion) is checked again later."""
        d = diagnostic
        identity = (d.key(), d.node, d.trace, d.also)
        if identity not in self._seen:
            self._seen.add(identity)
            self.errors.append(d)

    def extend(self, diagnostics: list[Diagnostic]) -> None:
        for d in diagnostics:
            self.add(d)

    def warn(self, message: str, **kw) -> None:
        self.warnings.append(Diagnostic(message, severity="warning", **kw))

    def raise_if_any(self) -> None:
        if self.errors:
            raise SpecError(self.errors)


# Words for pydantic's error types, shared by the validation of the spec and
# of each op's parameters.
EXPECTED = {
    "dict_type": "a mapping", "list_type": "a list", "string_type": "a string",
    "int_type": "an integer", "int_parsing": "an integer", "bool_type": "true or false",
    "bool_parsing": "true or false", "model_type": "a mapping", "model_attributes_type": "a mapping",
}


def describe(value) -> str:
    """A value as an error message names it: 'a list', "str 'eight'"."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"
