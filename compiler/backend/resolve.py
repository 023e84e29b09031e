"""The torch objects that lowerings name: `nn.Conv2d`, `torch.relu`,
`F.relu6` (torch.nn.functional), `operator.add`, and the runtime modules."""
from __future__ import annotations

import operator
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InternalError
from .runtime import RUNTIME

_NAMESPACES = {"torch": torch, "F": F, "operator": operator, "nn": nn}


def _lookup(name: str):
    head, _, rest = name.partition(".")
    obj = _NAMESPACES.get(head)
    try:
        if obj is None or not rest:
            raise AttributeError(head)
        for part in rest.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise InternalError(f"a lowering names '{name}', which is not in torch") from None
    return obj


def function(name: str) -> Callable:
    """'torch.relu' -> torch.relu"""
    return _lookup(name)


def module_class(name: str) -> type[nn.Module]:
    """'nn.Conv2d' -> torch.nn.Conv2d; 'Scan' -> the runtime's Scan."""
    if name in RUNTIME:
        return RUNTIME[name]
    return _lookup(name)
