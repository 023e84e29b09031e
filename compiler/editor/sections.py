"""Loading a spec being edited, one entry at a time.

Reading YAML is most of what checking a spec costs (on resnet.yaml about
half: PyYAML's parser is pure Python), and a keystroke changes one entry of
one section (a node under `nodes:`, a block under `blocks:`).
`SectionLoader` splits the text into its top-level sections, and a section
`key:` holding a mapping into its entries; it keeps each piece's loaded tree
by its text and first line, reloads only the pieces that changed, and joins
them into the tree `load_text` would have given, positions included
(tests/test_lsp.py compares the two on every spec of the zoo).

Whatever the join could get wrong goes to `load_text` whole: YAML anchors
(an alias may reach across pieces), tabs, directives and document markers, a
top-level line that is not a plain key, a piece that does not load, and keys
given twice.  An error is therefore always the one `load_text` reports.
"""
from __future__ import annotations

import re

from ..errors import Loc, SpecError
from ..frontend.load import Map, load_text

TOP_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\s*:(\s|$)")
HEADER = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*)\s*:\s*(#.*)?$")  # `nodes:` with nothing after it
ANCHOR = re.compile(r"(^|[\s\[{,:])&[^\s]")
NOT_A_KEY = tuple("-?&*!{[|>%@`")  # an entry line starting so is not a plain `key: value`


def sections(text: str) -> list[tuple[int, str]] | None:
    """The top-level sections as (first line, text), each a key and what is
    indented under it (comments before the first key go with it); None when
    the text is not a plain mapping of keys that can be read apart."""
    if ANCHOR.search(text) or "\t" in text:
        return None
    lines = text.split("\n")
    starts = []
    for i, line in enumerate(lines):
        if not line or line[0] in " #":
            continue
        if not TOP_KEY.match(line):  # '---', '%YAML', '- item', '{...}', 'key without colon'
            return None
        starts.append(i)
    if not starts:
        return None
    starts[0] = 0
    return _pieces(lines, starts, 0)


def entries(first: int, section: str) -> tuple[str, int, list[tuple[int, str]]] | None:
    """A section `key:` whose value is a block mapping, as its key, the line
    of the key, and its entries as (first line, text); None for any other
    section (`name: resnet`, a list, a flow mapping)."""
    lines = section.split("\n")
    header = next((i for i, line in enumerate(lines) if line.strip()[:1] not in ("", "#")), None)
    match = HEADER.match(lines[header]) if header is not None else None
    if match is None:
        return None
    starts, indent = [], None
    for i in range(header + 1, len(lines)):
        line = lines[i]
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        width = len(line) - len(stripped)
        indent = width if indent is None else indent
        if width < indent or (width == indent and stripped.startswith(NOT_A_KEY)):
            return None
        if width == indent:
            starts.append(i)
    if not starts:
        return None
    starts[0] = header + 1  # comments between the key and its first entry go with that entry
    return match.group(1), first + header, _pieces(lines, starts, first)


def _pieces(lines: list[str], starts: list[int], offset: int) -> list[tuple[int, str]]:
    bounds = starts + [len(lines)]
    return [(offset + bounds[k], "\n".join(lines[bounds[k]:bounds[k + 1]])) for k in range(len(starts))]


class _Fallback(Exception):
    """The pieces cannot be joined: load the text whole."""


class SectionLoader:
    """`load_text` for successive versions of one document."""

    def __init__(self, file: str):
        self.file = file
        self.cache: dict[tuple, Map] = {}
        self.reloaded = 0  # pieces parsed by the last load (-1: the text was loaded whole)

    def load(self, text: str) -> Map:
        parts = sections(text)
        if parts is None:
            self.reloaded = -1
            return load_text(text, self.file)
        self.kept, self.cache, self.reloaded = self.cache, {}, 0
        try:
            return self._join([self._section(first, chunk) for first, chunk in parts])
        except _Fallback:
            self.reloaded = -1
            return load_text(text, self.file)  # which says what is wrong with it

    def _piece(self, key: tuple, text: str) -> Map:
        tree = self.kept.get(key)
        if tree is None:
            try:
                tree = load_text(text, self.file)
            except SpecError:
                raise _Fallback from None
            self.reloaded += 1
        self.cache[key] = tree
        return tree

    def _section(self, first: int, chunk: str) -> Map:
        split = entries(first, chunk)
        if split is None:
            # Blank lines in front keep every position where it is in the whole text.
            tree = self._piece((first, chunk), "\n" * first + chunk)
            if len(tree) != 1:
                raise _Fallback
            return tree
        key, line, pieces = split
        trees = []
        for start, piece in pieces:
            # The section's key on the line before the entry, so that the entry loads where it is.
            tree = self._piece((key, start, piece), "\n" * (start - 1) + f"{key}:\n" + piece)
            if not isinstance(tree.get(key), Map):
                raise _Fallback
            trees.append(tree[key])
        section = Map()
        section.loc = section_key = Loc(self.file, line + 1, 1)
        section[key] = self._join(trees)
        section.key_locs, section.value_locs = {key: section_key}, {key: section[key].loc}
        return section

    def _join(self, trees: list[Map]) -> Map:
        joined = Map()
        joined.loc, joined.key_locs, joined.value_locs = trees[0].loc, {}, {}
        for tree in trees:
            if any(key in joined for key in tree):
                raise _Fallback  # a key given twice
            joined.update(tree)
            joined.key_locs.update(tree.key_locs)
            joined.value_locs.update(tree.value_locs)
        return joined
