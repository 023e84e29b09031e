"""Read YAML, keeping the line and column of every key and value.

Mappings become `Map` (a dict) and sequences `Seq` (a list); both remember the
position of themselves and of each entry, so later stages can point at the
exact value that is wrong.  Scalars stay plain Python values.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import Diagnostic, Loc, ResourceError, SpecError


class Map(dict):
    loc: Loc
    key_locs: dict
    value_locs: dict

    def loc_of(self, key) -> Loc:
        return self.value_locs.get(key, self.loc)


class Seq(list):
    loc: Loc
    item_locs: list

    def loc_of(self, index: int) -> Loc:
        return self.item_locs[index] if 0 <= index < len(self.item_locs) else self.loc


# A spec is untrusted input (a model repository is read by a server): these
# bound what reading one may cost. The zoo's largest spec holds 723 values,
# 8 levels deep; an expanded spec written by `netspec compile` a few thousand.
MAX_SPEC_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64  # levels of nested mappings and lists
MAX_VALUES = 150_000  # keys, values and items once YAML aliases (*name) are expanded; an expanded
# spec holds about 10 per node, so this admits the 10,000 nodes expand allows


def _loc(file: str, mark) -> Loc:
    return Loc(file, mark.line + 1, mark.column + 1)


def _too_deep(file: str, mark) -> SpecError:
    return SpecError(Diagnostic(f"the spec nests mappings and lists more than {MAX_DEPTH} levels deep",
                                loc=_loc(file, mark), hint="a spec needs a handful of levels; flatten this value"))


class _Bounded:
    """PyYAML's composer recurses once per level: past Python's recursion
    limit it fails inside the library, so depth is refused before that."""

    def __init__(self, stream, file: str):
        super().__init__(stream)
        self.file, self.depth = file, 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _too_deep(self.file, self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _PythonLoader(_Bounded, yaml.SafeLoader):
    pass


if getattr(yaml, "__with_libyaml__", False):
    class _FastLoader(_Bounded, yaml.composer.Composer, yaml.resolver.Resolver, yaml.cyaml.CParser):
        """libyaml's scanner and parser (a fifth of the time of PyYAML's own
        on resnet.yaml) under PyYAML's composer, so depth is bounded the
        same way and marks are the same; a spec it refuses is read again
        by the Python loader, whose messages the errors quote."""

        def __init__(self, stream, file: str):
            yaml.cyaml.CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self.file, self.depth = file, 0

        get_single_node = yaml.composer.Composer.get_single_node
        compose_document = yaml.composer.Composer.compose_document
else:  # a PyYAML built without libyaml
    _FastLoader = None


def _compose(text: str, file: str) -> yaml.Node | None:
    for loader_class in (_FastLoader, _PythonLoader):
        if loader_class is None:
            continue
        loader = loader_class(text, file)
        try:
            return loader.get_single_node()
        except yaml.YAMLError:
            if loader_class is _PythonLoader:
                raise
        finally:
            loader.dispose()
    raise AssertionError("unreachable")


class _Builder:
    def __init__(self, file: str):
        self.file = file
        self.scalar_loader = yaml.SafeLoader("")
        self.problems: list[Diagnostic] = []
        # An alias is one node of the composed document but is built once per
        # use: nested aliases ("billion laughs") or one inside itself (&a [*a])
        # would build without end. Count what is built, and how deep.
        self.values, self.depth = 0, 0

    def build(self, node: yaml.Node) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise SpecError(Diagnostic(
                f"the spec holds more than {MAX_VALUES:,} values once its YAML aliases are expanded",
                loc=_loc(self.file, node.start_mark),
                hint="an alias (*name) repeats everything its anchor (&name) holds; nested aliases multiply"))
        if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            return self.scalar_loader.construct_object(node, deep=True)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _too_deep(self.file, node.start_mark)
            return self._build_collection(node)
        finally:
            self.depth -= 1

    def _build_collection(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            self.scalar_loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
            out = Map()
            out.loc, out.key_locs, out.value_locs = _loc(self.file, node.start_mark), {}, {}
            for key_node, value_node in node.value:
                key = self.build(key_node)
                if isinstance(key, (Map, Seq)):
                    self.problems.append(Diagnostic(
                        "a mapping key must be a plain name, not a mapping or list",
                        loc=_loc(self.file, key_node.start_mark)))
                    continue
                if key in out:
                    first = out.key_locs[key]
                    self.problems.append(Diagnostic(
                        f"duplicate key '{key}' (first defined at line {first.line})",
                        loc=_loc(self.file, key_node.start_mark),
                        hint="each name may appear once in a mapping: rename or remove one of them"))
                    continue
                out[key] = self.build(value_node)
                out.key_locs[key] = _loc(self.file, key_node.start_mark)
                out.value_locs[key] = _loc(self.file, value_node.start_mark)
            return out
        if isinstance(node, yaml.SequenceNode):
            out = Seq(self.build(item) for item in node.value)
            out.loc = _loc(self.file, node.start_mark)
            out.item_locs = [_loc(self.file, item.start_mark) for item in node.value]
            return out


def _yaml_hint(text: str, loc: Loc) -> str:
    lines = text.splitlines()
    line = lines[loc.line - 1] if 0 < loc.line <= len(lines) else ""
    if "$" in line and any(c in line for c in "[]{},"):
        return ("quote expressions that hold [ ] { } or ',' inside a {...} mapping, "
                "e.g. out_channels: \"$widths[0]\"")
    return "check the indentation and the ':' after each key near this line"


def load_text(text: str, file: str = "<string>") -> Map:
    """Parse spec text into a located tree; raise SpecError for anything that
    is not a YAML mapping."""
    try:
        root = _compose(text, file)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = _loc(file, mark) if mark else Loc(file, 1, 1)
        # The problem first; the construct it interrupted, with where that
        # began, after it: an unclosed '{' is reported where parsing stopped.
        what = e.problem or e.context or "unreadable"
        if e.context and e.problem:
            began = e.context_mark
            what += f" ({e.context}" + (f" started at line {began.line + 1}, column {began.column + 1}"
                                        if began and began.line != mark.line else "") + ")"
        raise SpecError(Diagnostic(f"not valid YAML: {what}", loc=loc, hint=_yaml_hint(text, loc))) from None
    except yaml.YAMLError as e:  # unmarked errors, e.g. bad characters
        raise SpecError(Diagnostic(f"not valid YAML: {e}", loc=Loc(file, 1, 1))) from None
    if root is None:
        raise SpecError(Diagnostic(
            "the spec is empty", loc=Loc(file, 1, 1),
            hint="a spec is a mapping with at least 'name', 'inputs', 'nodes' and 'outputs'"))
    builder = _Builder(file)
    try:
        tree = builder.build(root)
    except yaml.MarkedYAMLError as e:  # e.g. an unknown !tag
        mark = e.problem_mark or e.context_mark
        raise SpecError(Diagnostic(f"not valid YAML: {e.problem}",
                                   loc=_loc(file, mark) if mark else Loc(file, 1, 1))) from None
    if builder.problems:
        raise SpecError(builder.problems)
    if not isinstance(tree, Map):
        kind = "a list" if isinstance(tree, Seq) else f"a single value ({tree!r})"
        raise SpecError(Diagnostic(
            f"the spec must be a mapping of keys, but it is {kind}", loc=Loc(file, 1, 1),
            hint="start the file with 'name: my_model' followed by 'inputs:', 'nodes:' and 'outputs:'"))
    return tree


def load_file(path: str | Path) -> Map:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(Diagnostic(f"{path} is larger than {MAX_SPEC_BYTES // (1024 * 1024)} MiB, "
                                       "too large for a spec", hint="is this the spec file?"))
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResourceError(f"no such spec file: {path}") from None
    except IsADirectoryError:
        raise ResourceError(f"{path} is a directory, not a spec file") from None
    except UnicodeDecodeError as e:
        raise SpecError(Diagnostic(f"{path} is not UTF-8 text (byte {e.start})",
                                   loc=Loc(str(path), 1, 1))) from None
    except OSError as e:
        raise ResourceError(f"cannot read {path}: {e.strerror}") from None
    return load_text(text, str(path))


def locate(tree: Any, path: tuple) -> Loc | None:
    """The position of the value at `path` (keys and indices), or the nearest
    enclosing position when the exact one is not known."""
    best = getattr(tree, "loc", None)
    node = tree
    for step in path:
        if isinstance(node, Map) and step in node:
            best, node = node.loc_of(step), node[step]
        elif isinstance(node, Seq) and isinstance(step, int) and 0 <= step < len(node):
            best, node = node.loc_of(step), node[step]
        else:
            break
    return best
