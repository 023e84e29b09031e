"""Loading a spec being edited, one entry at a time.

Reading YAML is most of what checking a spec costs (on resnet.yaml about
half: PyYAML's parser is pure Python), and a keystroke changes one entry of
one section (a node under `nodes:`, a block under `blocks:`).
`SectionLoader` splits the text into its top-level sections, and an entry
`key:` holding a block mapping into its entries, down to a block's nodes; it
keeps each piece's loaded tree by its text and first line, reloads only the
pieces that changed, and joins them into the tree `load_text` would have
given, positions included (tests/test_lsp.py compares the two on every spec
of the zoo, and on texts made to trip the split).

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
MAX_LEVELS = 4  # `blocks:` > `bottleneck:` > `nodes:` > a node: deeper entries are read whole


def sections(text: str) -> list[tuple[int, str]] | None:
    """The top-level sections as (first line, text), each a key and what is
    indented under it (comments before the first key go with it); None when
    the text is not a plain mapping of keys that can be read apart."""
    if ANCHOR.search(text) or "\t" in text:
        return None
    lines = text.split("\n")
    starts = _starts(lines, 0, len(lines))
    if not starts:
        return None
    return [(a, "\n".join(lines[a:b])) for a, b in zip(starts, starts[1:] + [len(lines)])]


def _starts(lines: list[str], start: int, end: int) -> list[int] | None:
    """The first line of each entry of lines[start:end], all at the
    indentation of the first (comment lines before it go with the first);
    None if a line is less indented, or an entry is not a plain `key:`."""
    starts, indent = [], None
    for i in range(start, end):
        line = lines[i]
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        width = len(line) - len(stripped)
        indent = width if indent is None else indent
        if width < indent:
            return None
        if width == indent:
            if stripped.startswith(NOT_A_KEY) or not TOP_KEY.match(stripped):
                return None  # '- item', '{...}', '---', '%YAML', a quoted or numbered key, no colon
            starts.append(i)
    if starts:
        starts[0] = start
    return starts or None


class _Fallback(Exception):
    """The text cannot be read in pieces (a YAML error, a key given twice): load it whole."""


class _Whole(Exception):
    """This entry cannot be split (its value is not a mapping of plain keys): read it whole."""


class SectionLoader:
    """`load_text` for successive versions of one document."""

    def __init__(self, file: str):
        self.file = file
        self.cache: dict[tuple, Map] = {}
        self.reloaded = 0  # pieces parsed by the last load (-1: the text was loaded whole)

    def load(self, text: str) -> Map:
        self.kept, self.cache, self.reloaded = self.cache, {}, 0
        lines = text.split("\n")
        try:
            if sections(text) is None:
                raise _Fallback
            return self._mapping(lines, 0, len(lines), ())
        except (_Fallback, _Whole):
            self.reloaded = -1
            return load_text(text, self.file)  # which says what is wrong with it

    def _mapping(self, lines: list[str], start: int, end: int, headers: tuple) -> Map:
        """The mapping of the entries written in lines[start:end], which lie
        under the keys `headers` ((line text, key) from the top)."""
        starts = _starts(lines, start, end)
        if starts is None:
            raise _Whole
        return self._join([self._entry(lines, a, b, headers) for a, b in zip(starts, starts[1:] + [end])])

    def _entry(self, lines: list[str], start: int, end: int, headers: tuple) -> Map:
        """One entry, as a mapping of its one key: split into its own entries
        where its value is a block mapping, else read whole."""
        at = next(i for i in range(start, end) if lines[i].strip()[:1] not in ("", "#"))
        match = HEADER.match(lines[at].strip())
        if match and len(headers) < MAX_LEVELS - 1 and any(lines[i].strip()[:1] not in ("", "#")
                                                            for i in range(at + 1, end)):
            key = match.group(1)
            try:
                inner = self._mapping(lines, at + 1, end, headers + ((lines[at].rstrip(), key),))
            except _Whole:
                inner = None
            if inner is not None:
                entry = Map()
                entry[key] = inner
                entry.loc = key_loc = Loc(self.file, at + 1, len(lines[at]) - len(lines[at].lstrip()) + 1)
                entry.key_locs, entry.value_locs = {key: key_loc}, {key: inner.loc}
                return entry
        return self._piece(lines, start, end, headers)

    def _piece(self, lines: list[str], start: int, end: int, headers: tuple) -> Map:
        chunk = "\n".join(lines[start:end])
        cache_key = (tuple(h for h, _ in headers), start, chunk)
        tree = self.kept.get(cache_key)
        if tree is None:
            # Blank lines, then the keys above it, put the piece where it is in the whole text.
            text = "\n" * (start - len(headers)) + "".join(h + "\n" for h, _ in headers) + chunk
            try:
                tree = load_text(text, self.file)
            except SpecError:
                raise _Fallback from None
            for _, key in headers:
                tree = tree.get(key)
                if not isinstance(tree, Map):
                    raise _Whole  # e.g. a list, or nothing: the entry above is read whole
            self.reloaded += 1
        self.cache[cache_key] = tree
        return tree

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
