"""The compiler's diagnostics as LSP diagnostics: each at the range of the
key or value it points at, with the block expansions that made its node as
related information.

A node inside a block is made once per instance, and a problem of what is
written there is found once per instance too: those found at the same place
with the same words are one diagnostic, naming the first nodes and counting
the rest, with every instance among the related information.
"""
from __future__ import annotations

from lsprotocol import types as lsp

from ..errors import Diagnostic, Loc
from .spans import value_end

SEVERITY = {"error": lsp.DiagnosticSeverity.Error, "warning": lsp.DiagnosticSeverity.Warning,
            "information": lsp.DiagnosticSeverity.Information}
NAMED = 2  # nodes named in a merged message; the rest are counted


def to_range(loc: Loc | None, lines: list[str]) -> lsp.Range:
    if loc is None:
        return lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    line, col = loc.line - 1, loc.col - 1
    end_line, end_col = value_end(lines, line, col)
    if (end_line, end_col) <= (line, col):  # nothing to underline (the end of the file): one character
        end_line, end_col = line, col + 1
    return lsp.Range(lsp.Position(line, col), lsp.Position(end_line, end_col))


def to_lsp(found: list[Diagnostic], lines: list[str], uri: str, file: str,
           blocks: dict[str, Loc]) -> list[lsp.Diagnostic]:
    """`blocks`: where each block's name is written (a frame points at the
    block's body, which is a less useful place to jump to)."""
    groups: dict[tuple, list[Diagnostic]] = {}
    for d in found:
        group = groups.setdefault((d.loc, d.severity, d.op, d.message, d.hint), [])
        group.append(d)
        # the compiler already merged the other instances into `also`: one member each here
        group += [Diagnostic(d.message, d.loc, node, d.op, trace, d.hint, d.severity)
                  for node, trace in zip(d.also, d.also_traces)]
    return [_one(group, lines, uri, file, blocks) for group in groups.values()]


def _one(group: list[Diagnostic], lines: list[str], uri: str, file: str, blocks: dict[str, Loc]) -> lsp.Diagnostic:
    d = group[0]
    nodes = [g.node for g in group if g.node]
    who = ""
    if len(nodes) == 1:
        who = f"node '{nodes[0]}'"
    elif nodes:
        more = len(nodes) - NAMED
        who = "nodes " + ", ".join(f"'{n}'" for n in nodes[:NAMED]) + (f" and {more} more" if more > 0 else "")
    if who:
        who += (f" ({d.op})" if d.op else "") + ": "
    message = who + d.message + (f"\nhint: {d.hint}" if d.hint else "")
    related, seen = [], set()

    def relate(loc: Loc | None, text: str) -> None:
        if loc is not None and loc.file == file and (loc, text) not in seen:
            seen.add((loc, text))
            related.append(lsp.DiagnosticRelatedInformation(lsp.Location(uri, to_range(loc, lines)), text))

    for g in group:
        for frame in reversed(g.trace):  # the innermost block first, as the command line prints them
            repeat = f"repeat {frame.repeat} of " if frame.repeat is not None else ""
            relate(frame.instance_loc, f"{repeat}instance '{frame.instance}' of block '{frame.block}'")
            relate(blocks.get(frame.block, frame.block_loc), f"block '{frame.block}' is defined here")
    return lsp.Diagnostic(range=to_range(d.loc, lines), message=message, severity=SEVERITY.get(d.severity),
                          source="netspec", related_information=related or None)
