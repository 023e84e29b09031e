"""Diagnostics: every user error carries where it came from and how to fix it.

Rules (op shape rules, expression evaluation) raise small location-free errors;
the stage that calls them adds the node, the source position and the chain of
block expansions, and collects everything it finds before raising once.
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

    def format(self) -> str:
        head = f"{self.loc}: " if self.loc else ""
        who = ""
        if self.node:
            who = f"node '{self.node}'" + (f" ({self.op})" if self.op else "") + ": "
        lines = [f"{head}{self.severity}: {who}{self.message}"]
        lines += [f"  {frame}" for frame in reversed(self.trace)]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class SpecError(Exception):
    """One or more problems in a user's spec. Its text is meant for people."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)
        super().__init__(self.format())

    def format(self) -> str:
        text = "\n".join(d.format() for d in self.diagnostics)
        n = len(self.diagnostics)
        if n > 1:
            text += f"\n{n} errors"
        return text


class RuleError(Exception):
    """Raised by a location-free rule (an op's shape rule, an expression);
    the caller turns it into a Diagnostic with the node and position."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class InternalError(Exception):
    """A bug in netspec itself, never the user's fault. Always chained."""


@dataclass
class Collector:
    """Gathers diagnostics across a stage and raises them together."""

    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)

    def error(self, message: str, **kw) -> None:
        self.errors.append(Diagnostic(message, **kw))

    def warn(self, message: str, **kw) -> None:
        self.warnings.append(Diagnostic(message, severity="warning", **kw))

    def raise_if_any(self) -> None:
        if self.errors:
            raise SpecError(self.errors)
