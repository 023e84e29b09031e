"""The values that flow along the graph's edges: tensors with shapes whose
dimensions are sizes or symbols, and tuples of them."""
from __future__ import annotations

from dataclasses import dataclass

Dim = int | str  # a str dimension is symbolic: "N" (batch), "T" (time)
Shape = tuple[Dim, ...]


@dataclass(frozen=True)
class TensorInfo:
    shape: Shape
    dtype: str = "float32"

    def __str__(self) -> str:
        return format_shape(self.shape)


@dataclass(frozen=True)
class TupleInfo(TensorInfo):
    """A value that is a tuple of tensors (a scan's per-step outputs as
    sequences, then its final states; a split's parts); `shape` and `dtype`
    are the first's.  `names` name the items where a spec reads them by
    name (`qkv.q` is item 'q' of split node `qkv`)."""

    items: tuple[TensorInfo, ...] = ()
    names: tuple[str, ...] = ()


def format_shape(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"
