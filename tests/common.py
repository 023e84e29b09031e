"""What many test files share: where things are, and the tensor types of
the protocol as numpy names them (from compiler.protocol.datatypes, the one table)."""
from __future__ import annotations

from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
GOLDEN = ROOT / "tests" / "golden"


@cache
def _numpy_types() -> dict:
    """KServe datatype name -> numpy scalar type: 'FP32' -> np.float32."""
    import torch

    from compiler.protocol import datatypes

    table = {}
    for d in datatypes.BY_KSERVE.values():
        try:
            table[d.kserve] = torch.empty(0, dtype=d.torch).numpy().dtype.type
        except TypeError:  # bfloat16: numpy has none; it travels as raw bytes
            continue
    return table


def __getattr__(name: str):
    # NP_TYPES is built on first use: the files that want only the paths
    # import neither torch nor the service.
    if name == "NP_TYPES":
        return _numpy_types()
    raise AttributeError(name)


def datatype_of(array) -> str:
    """The KServe datatype name of a numpy array: 'FP32'."""
    return next(name for name, t in _numpy_types().items() if array.dtype.type is t)
