"""Specs are read with libyaml's parser where PyYAML has it, and with
PyYAML's own otherwise (and for every spec libyaml refuses, so messages are
the same everywhere): both give the same tree and the same positions."""
from __future__ import annotations

import pytest

from common import ROOT, SPECS
from compiler.errors import SpecError
from compiler.frontend import load

pytestmark = pytest.mark.skipif(load._FastLoader is None, reason="this PyYAML is built without libyaml")


def dump(tree):
    if isinstance(tree, load.Map):
        return "map", tree.loc, tree.key_locs, tree.value_locs, {k: dump(v) for k, v in tree.items()}
    if isinstance(tree, load.Seq):
        return "seq", tree.loc, tree.item_locs, [dump(v) for v in tree]
    return tree


def read(text: str, file: str, fast: bool, monkeypatch):
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(load, "_FastLoader", None)
        try:
            return dump(load.load_text(text, file))
        except SpecError as e:
            return "error", e.format()


FILES = sorted(SPECS.glob("*.yaml")) + sorted((ROOT / "tests" / "golden").glob("*.yaml"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_both_loaders_read_every_spec_alike(path, monkeypatch):
    text = path.read_text()
    assert read(text, str(path), True, monkeypatch) == read(text, str(path), False, monkeypatch)


@pytest.mark.parametrize("text", [
    "name: x\nnodes: {a: {op: relu}\n",          # an unclosed flow mapping
    "name: x\n\tnodes: 1\n",                        # a tab
    "a: &x [*x]\n",                                 # an alias inside itself
    "a: " + "[" * 80 + "]" * 80 + "\n",             # deeper than the limit
])
def test_both_loaders_refuse_alike(text, monkeypatch):
    fast, python = read(text, "t.yaml", True, monkeypatch), read(text, "t.yaml", False, monkeypatch)
    assert fast == python and fast[0] == "error"
