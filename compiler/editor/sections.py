"""Loading a spec being edited, one top-level section at a time.

Reading YAML is most of what checking a spec costs (on resnet.yaml about
half: PyYAML's parser is pure Python), and a keystroke changes one section
(`nodes:`, `blocks:`, ...).  `SectionLoader` keeps each section's loaded tree
by its text and first line, reloads only the sections that changed, and
joins them into the tree `load_text` would have given, positions included
(tests/test_lsp.py compares the two on every spec of the zoo).

Whatever the join could get wrong goes to `load_text` whole: YAML anchors
(an alias may reach across sections), directives and document markers, a
top-level line that is not a plain key, a section that does not load, and
keys given twice.  An error is therefore always the one `load_text` reports.
"""
from __future__ import annotations

import re

from ..errors import SpecError
from ..frontend.load import Map, load_text

TOP_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\s*:(\s|$)")
ANCHOR = re.compile(r"(^|[\s\[{,:])&[^\s]")


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
    bounds = starts + [len(lines)]
    return [(bounds[k], "\n".join(lines[bounds[k]:bounds[k + 1]])) for k in range(len(starts))]


class SectionLoader:
    """`load_text` for successive versions of one document."""

    def __init__(self, file: str):
        self.file = file
        self.cache: dict[tuple[int, str], Map] = {}
        self.reloaded = 0  # sections parsed by the last load (for the bench)

    def load(self, text: str) -> Map:
        parts = sections(text)
        if parts is None:
            self.reloaded = -1
            return load_text(text, self.file)
        cache, self.cache, self.reloaded = self.cache, {}, 0
        trees = []
        for first, chunk in parts:
            tree = cache.get((first, chunk))
            if tree is None:
                try:
                    # Blank lines in front keep every position where it is in the whole text.
                    tree = load_text("\n" * first + chunk, self.file)
                except SpecError:
                    self.reloaded = -1
                    return load_text(text, self.file)
                self.reloaded += 1
            self.cache[(first, chunk)] = tree
            trees.append(tree)
        return self._join(trees, text)

    def _join(self, trees: list[Map], text: str) -> Map:
        root = Map()
        root.loc, root.key_locs, root.value_locs = trees[0].loc, {}, {}
        for tree in trees:
            if len(tree) != 1 or any(key in root for key in tree):
                self.reloaded = -1
                return load_text(text, self.file)  # which says what is wrong with it
            root.update(tree)
            root.key_locs.update(tree.key_locs)
            root.value_locs.update(tree.value_locs)
        return root
