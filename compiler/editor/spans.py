"""Where a located value ends in the text.

The compiler's positions (`Loc`) mark where a key or value starts; an editor
underlines the whole of it.  `value_end` reads the extent from the text
itself: a quoted string to its closing quote, a flow mapping or list to its
matching bracket (across lines), a plain word to the `: `, `,`, bracket or
comment that ends it.  Lines and columns here are 0-based.
"""
from __future__ import annotations

import re

# The characters a name in a reference or a key is made of ("layer1.0.conv").
WORD = re.compile(r"[A-Za-z0-9_.$\-]+")
MAX_SCANNED_LINES = 400  # an unclosed '{' while typing: give up, underline to the end of the line


def value_end(lines: list[str], line: int, col: int) -> tuple[int, int]:
    """The position just after the value starting at (line, col)."""
    if not 0 <= line < len(lines):
        return line, col
    text = lines[line]
    if col >= len(text):
        return line, len(text)
    first = text[col]
    if first in "\"'":
        end = _quote_end(text, col)
        return line, end if end is not None else len(text.rstrip())
    if first in "[{":
        return _bracket_end(lines, line, col)
    return line, _plain_end(text, col)


def _quote_end(text: str, col: int) -> int | None:
    quote, i = text[col], col + 1
    while i < len(text):
        c = text[i]
        if quote == '"' and c == "\\":
            i += 2
            continue
        if c == quote:
            if quote == "'" and text[i + 1:i + 2] == "'":  # '' is an escaped quote in single quotes
                i += 2
                continue
            return i + 1
        i += 1
    return None


def _bracket_end(lines: list[str], line: int, col: int) -> tuple[int, int]:
    depth, row, i = 0, line, col
    last = min(len(lines), line + MAX_SCANNED_LINES)
    while row < last:
        text = lines[row]
        while i < len(text):
            c = text[i]
            if c in "\"'":
                end = _quote_end(text, i)
                i = end if end is not None else len(text)
                continue
            if c == "#" and (i == 0 or text[i - 1] in " \t"):
                break  # a comment runs to the end of the line
            if c in "[{":
                depth += 1
            elif c in "]}":
                depth -= 1
                if depth == 0:
                    return row, i + 1
            i += 1
        row, i = row + 1, 0
    return line, len(lines[line].rstrip())


def _plain_end(text: str, col: int) -> int:
    in_flow = _depth(text[:col]) > 0
    i = col
    while i < len(text):
        c = text[i]
        if c == ":" and (i + 1 == len(text) or text[i + 1] in " \t"):
            break
        if c == "#" and text[i - 1] in " \t":
            break
        if in_flow and c in ",]}":
            break
        i += 1
    return len(text[:i].rstrip()) if i > col else i


def _depth(text: str) -> int:
    depth, i = 0, 0
    while i < len(text):
        c = text[i]
        if c in "\"'":
            end = _quote_end(text, i)
            if end is None:
                return depth
            i = end
            continue
        depth += (c in "[{") - (c in "]}")
        i += 1
    return depth


def word_at(text: str, col: int) -> tuple[str, int, int] | None:
    """The name under the cursor on a line, with its start and end."""
    for m in WORD.finditer(text):
        if m.start() <= col <= m.end():
            return m.group(), m.start(), m.end()
    return None
