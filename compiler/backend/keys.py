"""Hashable keys of what emit builds from: module arguments (backend.init)
and fx graphs' nodes (backend.shared_code). Each value goes with its type,
since values that compare equal can build differently: Dropout(0) and
Dropout(0.0) print differently, and so does the code for `x * 1` and `x * 1.0`."""
from __future__ import annotations

from typing import Any, Callable

import torch

# Values compared by what they are, and so safe in a key.
PLAIN = (type(None), bool, int, float, complex, str, torch.dtype, torch.device)


def typed(value: Any, other: Callable[[Any], Any] | None = None) -> Any:
    """`value` as a key: plain values with their types, tuples, lists and
    dicts by their items; any other value through `other`, or TypeError."""
    if isinstance(value, (tuple, list)):  # fx's immutable_list among them
        return type(value), tuple(typed(x, other) for x in value)
    if isinstance(value, dict):
        return type(value), tuple((k, typed(v, other)) for k, v in value.items())
    if isinstance(value, PLAIN):
        return type(value), value
    if other is None:
        raise TypeError(value)
    return other(value)
