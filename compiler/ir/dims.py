"""Symbolic sizes that scale: a symbol times a fraction.

An image of symbolic height H keeps H through a convolution that keeps its
size, halves it to H/2 through one of stride 2, and doubles it back to H
through an upsampling: sizes are written `H`, `H/2`, `3*H/4`, `2*H`, always
in lowest terms, so that two paths that reach the same size spell it the same
and a concatenation or an addition sees them agree.  A fraction's
denominator is what the symbol must be a multiple of for the size to be
whole (H/32 needs H a multiple of 32); a server checks that before it runs a
request.

Other symbolic sizes ('T+1', a class token before T positions) are opaque:
they cannot be scaled.
"""
from __future__ import annotations

import re
from fractions import Fraction

_SCALED = re.compile(r"(?:(\d+)\*)?([A-Za-z_]\w*)(?:/(\d+))?")


def parse(dim: str) -> tuple[str, Fraction] | None:
    """(symbol, factor) of a scaled symbol ('3*H/4' -> ('H', 3/4)); None for any other spelling."""
    m = _SCALED.fullmatch(dim)
    if not m:
        return None
    numerator, symbol, denominator = m.groups()
    return symbol, Fraction(int(numerator or 1), int(denominator or 1))


def spell(symbol: str, factor: Fraction) -> str:
    """The canonical spelling of symbol * factor: 'H', 'H/2', '2*H', '3*H/4'."""
    text = symbol if factor.numerator == 1 else f"{factor.numerator}*{symbol}"
    return text if factor.denominator == 1 else f"{text}/{factor.denominator}"


def scale(dim: str, factor: Fraction) -> str | None:
    """dim * factor as a scaled symbol, or None when dim is not one ('T+1')."""
    parsed = parse(dim)
    if parsed is None:
        return None
    symbol, own = parsed
    return spell(symbol, own * factor)


def needed_multiple(dim: str) -> tuple[str, int] | None:
    """(symbol, k): the symbol must be a multiple of k for dim to be a whole size (None: any size)."""
    parsed = parse(dim)
    if parsed is None or parsed[1].denominator == 1:
        return None
    return parsed[0], parsed[1].denominator
