"""`netspec verify`: a compiled spec against a reference implementation.

The references, by source: `torchvision:NAME` and `timm:NAME` (built
without pretrained weights; their batch norms get random statistics), and
`torch.nn:LSTM|GRU|RNN`, built with the sizes of the spec's first
recurrent layer (tools.recurrent_reference).  A new source is one entry
in SOURCES.  A spec with several outputs is compared on each (an auxiliary
head against the reference built with it).
"""
from __future__ import annotations

from typing import Callable

import torch

from ..api import Model
from ..errors import Diagnostic, ResourceError, SpecError
from .compare import Result, compare, copy_weights, first_tensor, randomize_norms, sample_inputs
from .recurrent_reference import verify_torch_nn

# Constructor arguments that make a reference model comparable with a spec:
# no pretrained download, and the plain eval-mode path.
REFERENCE_KWARGS: dict[str, dict] = {
    "googlenet": {"aux_logits": False, "init_weights": False, "transform_input": False},
    "inception_v3": {"aux_logits": False, "init_weights": False, "transform_input": False},
}
# For a spec with several outputs: the references built with their auxiliary
# heads, which they return only in training mode (compare(auxiliary=True)).
AUXILIARY_KWARGS: dict[str, dict] = {"googlenet": {"aux_logits": True}, "inception_v3": {"aux_logits": True}}


def _torchvision(name: str, auxiliary: bool = False) -> torch.nn.Module:
    try:
        import torchvision
    except ImportError as e:
        raise ResourceError(f"torchvision is not importable: {e}",
                            hint="pip install torchvision (matching your torch)") from None
    try:
        kwargs = {**REFERENCE_KWARGS.get(name, {}), **(AUXILIARY_KWARGS.get(name, {}) if auxiliary else {})}
        return torchvision.models.get_model(name, weights=None, **kwargs)
    except ValueError:
        raise SpecError(Diagnostic(f"torchvision has no model '{name}'",
                                   hint="see torchvision.models.list_models()")) from None


def _timm(name: str, auxiliary: bool = False) -> torch.nn.Module:
    try:
        import timm
    except ImportError:
        raise ResourceError("timm is not installed", hint="pip install timm") from None
    try:
        return timm.create_model(name, pretrained=False)
    except RuntimeError as e:
        raise SpecError(Diagnostic(f"timm cannot build '{name}': {e}")) from None


# Sources whose reference is built from its name alone.
SOURCES: dict[str, Callable[..., torch.nn.Module]] = {"torchvision": _torchvision, "timm": _timm}


def build_reference(against: str, auxiliary: bool = False) -> torch.nn.Module:
    """The reference model; `auxiliary`: with its auxiliary heads, where it
    has them (AUXILIARY_KWARGS), for a spec with several outputs."""
    source, _, name = against.partition(":")
    if not name:
        raise SpecError(Diagnostic(f"--against needs SOURCE:NAME, got '{against}'",
                                   hint="e.g. --against torchvision:resnet50"))
    if source == "torch.nn":
        raise SpecError(Diagnostic(f"reference '{against}' needs sizes from a recurrent spec",
                                   hint="verify against torch.nn is provided for recurrent specs"))
    if source not in SOURCES:
        raise SpecError(Diagnostic(f"unknown reference source '{source}'",
                                   hint="use torchvision:NAME or timm:NAME"))
    return SOURCES[source](name, auxiliary)


def verify(model: Model, against: str, tolerance: float = 1e-5, reference: torch.nn.Module | None = None) -> Result:
    if reference is None and against.startswith("torch.nn:"):
        return verify_torch_nn(model, against, tolerance)  # built with the sizes taken from the spec
    several = len(model.outputs) > 1
    if reference is None:
        reference = build_reference(against, auxiliary=several)
        randomize_norms(reference)
    name = against.partition(":")[2]
    return compare(model, reference, against, tolerance, auxiliary=several and name in AUXILIARY_KWARGS)


__all__ = ["Result", "build_reference", "compare", "copy_weights", "first_tensor", "randomize_norms",
           "sample_inputs", "verify"]
