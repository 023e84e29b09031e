"""One spec being edited: its text analysed by the compiler's own check path
(`api.analyze_tree`, no torch), and the last analysis that succeeded.

Every request of the language server reads a `Document`: diagnostics come
from the latest text; hovers, hints and completions fall back on the last
good analysis while the text does not check (mid-word, a YAML error), so
what the editor shows does not vanish while typing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..api import analyze_tree
from ..errors import Diagnostic, InternalError, Loc, SpecError
from ..frontend.load import Map
from ..ir import Graph
from .outline import Outline
from .sections import SectionLoader


@dataclass
class Analysis:
    text: str
    variant: str | None  # the variant analysed (None: the spec's default)
    tree: Map | None  # None: the text is not a YAML mapping
    graph: Graph | None  # None: the spec has errors
    diagnostics: list[Diagnostic] = field(default_factory=list)
    _outline: Outline | None = None

    @property
    def outline(self) -> Outline | None:
        """Where each node, block and input is written (built when first asked)."""
        if self._outline is None and self.tree is not None:
            self._outline = Outline(self.tree, self.text)
        return self._outline


class Document:
    def __init__(self, file: str):
        self.file = file
        self.loader = SectionLoader(file)
        self.current: Analysis | None = None
        self.good: Analysis | None = None  # the last analysis with a graph

    def analyze(self, text: str, variant: str | None = None) -> Analysis:
        """The analysis of `text`; the same text and variant are analysed once."""
        if self.current is not None and self.current.text == text and self.current.variant == variant:
            return self.current
        self.current = analyze(text, self.file, variant, self.loader)
        if self.current.graph is not None:
            self.good = self.current
        return self.current

    @property
    def shown(self) -> Analysis | None:
        """What hovers and hints show: the latest analysis if it checked, else the last good one."""
        return self.good if self.current is None or self.current.graph is None else self.current


def analyze(text: str, file: str, variant: str | None, loader: SectionLoader | None = None) -> Analysis:
    """Every error and warning of a spec's text, and its graph if it has no errors."""
    try:
        tree = (loader or SectionLoader(file)).load(text)
    except SpecError as e:
        return Analysis(text, variant, None, None, list(e.diagnostics))
    notes, chosen = _choose_variant(tree, variant, file)
    try:
        graph = analyze_tree(tree, chosen)
    except SpecError as e:
        return Analysis(text, variant, tree, None, notes + list(e.diagnostics))
    except InternalError as e:  # a bug in netspec: said where it happened, the editor keeps running
        return Analysis(text, variant, tree, None, notes + [Diagnostic(
            f"internal error: {e.message} (a bug in netspec, not in your spec)", loc=e.loc, node=e.node, op=e.op)])
    return Analysis(text, variant, tree, graph, notes + list(graph.warnings))


def _choose_variant(tree: Map, wanted: str | None, file: str) -> tuple[list[Diagnostic], str | None]:
    """The editor's variant setting applies to every spec open: one without
    that variant is shown in its default, with a note saying so."""
    variants = tree.get("variants")
    if wanted is None or not isinstance(variants, dict):
        return [], None
    names = [str(k) for k in variants]
    if wanted in names:
        return [], wanted
    where = tree.key_locs.get("variants", Loc(file, 1, 1))
    return [Diagnostic(f"this spec has no variant '{wanted}' (the editor's netspec.variant setting): "
                       "shown in its default variant", loc=where, severity="information",
                       hint=f"its variants: {', '.join(names)}")], None


def display_value(value: Any) -> str:
    """A parameter value as a spec would write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(display_value(v) for v in value) + "]"
    return str(value)
