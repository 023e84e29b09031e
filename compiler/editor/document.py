"""One spec being edited: its text analysed by the compiler's own check path
(`api.analyze_tree`, no torch), and the last analysis that succeeded.

Every request of the language server reads a `Document`: diagnostics come
from the latest text; hovers, hints and completions fall back on the last
good analysis while the text does not check (mid-word, a YAML error), so
what the editor shows does not vanish while typing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ..api import analyze_tree
from ..errors import Diagnostic, InternalError, Loc, SpecError
from ..frontend.load import Map, Seq
from ..ir import Graph
from .outline import GraphIndex, Outline
from .sections import SectionLoader

BUG = "a bug in netspec, not in your spec; please report it"
log = logging.getLogger(__name__)


@dataclass
class Analysis:
    text: str
    variant: str | None  # the variant analysed (None: the spec's default)
    tree: Map | None  # None: the text is not a YAML mapping
    graph: Graph | None  # None: the spec has errors
    diagnostics: list[Diagnostic] = field(default_factory=list)
    _outline: Outline | None = None
    _index: GraphIndex | None = None

    @property
    def outline(self) -> Outline | None:
        """Where each node, block and input is written (built when first asked)."""
        if self._outline is None and self.tree is not None:
            self._outline = Outline(self.tree, self.text)
        return self._outline

    @property
    def index(self) -> GraphIndex | None:
        """What each entry became in the graph (built when first asked)."""
        if self._index is None and self.graph is not None:
            self._index = GraphIndex(self.graph)
        return self._index


class Document:
    def __init__(self, file: str):
        self.file = file
        self.loader = SectionLoader(file)
        self.current: Analysis | None = None
        self.good: Analysis | None = None  # the last analysis with a graph

    def analyze(self, text: str, variant: str | None = None) -> Analysis:
        """The analysis of `text`; the same text and variant are analysed
        once, and a text that loads to the same tree at the same positions (a
        comment or a space typed) takes the last analysis's results."""
        last = self.current
        if last is not None and last.text == text and last.variant == variant:
            return last
        try:
            tree = self.loader.load(text)
        except SpecError as e:
            result = Analysis(text, variant, None, None, list(e.diagnostics))
        else:
            if last is not None and last.tree is not None and last.variant == variant and same_tree(tree, last.tree):
                result = Analysis(text, variant, tree, last.graph, last.diagnostics, _index=last._index)
            else:
                result = analyze_loaded(text, tree, variant, self.file)
        self.current = result
        if result.graph is not None:
            self.good = result
        return result

    @property
    def shown(self) -> Analysis | None:
        """What hovers and hints show: the latest analysis if it checked, else the last good one."""
        return self.good if self.current is None or self.current.graph is None else self.current


def analyze(text: str, file: str, variant: str | None = None) -> Analysis:
    """Every error and warning of a spec's text, and its graph if it has no errors."""
    try:
        tree = SectionLoader(file).load(text)
    except SpecError as e:
        return Analysis(text, variant, None, None, list(e.diagnostics))
    return analyze_loaded(text, tree, variant, file)


def analyze_loaded(text: str, tree: Map, variant: str | None, file: str) -> Analysis:
    notes, chosen = _choose_variant(tree, variant, file)
    try:
        graph = analyze_tree(tree, chosen)
    except SpecError as e:
        return Analysis(text, variant, tree, None, notes + list(e.diagnostics))
    except InternalError as e:  # a bug in netspec: said where it happened, the editor keeps running
        return Analysis(text, variant, tree, None, notes + [Diagnostic(
            f"internal error: {e.message} ({BUG})", loc=e.loc, node=e.node, op=e.op)])
    except Exception as e:  # a bug with no node to name: said once, its traceback in the server's log
        log.exception("analysing %s", file)
        return Analysis(text, variant, tree, None, notes + [Diagnostic(
            f"internal error: {type(e).__name__}: {e} ({BUG})", loc=tree.loc)])
    return Analysis(text, variant, tree, graph, notes + list(graph.warnings))


def same_tree(a: Any, b: Any) -> bool:
    """Whether two loaded trees hold the same values at the same positions
    (sections the loader kept are the same objects, and compare at once)."""
    if a is b:
        return True
    if isinstance(a, Map):
        return (isinstance(b, Map) and a.loc == b.loc and list(a) == list(b) and a.key_locs == b.key_locs
                and a.value_locs == b.value_locs and all(same_tree(a[k], b[k]) for k in a))
    if isinstance(a, Seq):
        return (isinstance(b, Seq) and a.loc == b.loc and a.item_locs == b.item_locs and len(a) == len(b)
                and all(same_tree(x, y) for x, y in zip(a, b)))
    return type(a) is type(b) and a == b


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
