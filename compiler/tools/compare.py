"""Comparing a compiled module with a reference implementation: copy the
reference's weights into ours, run both in eval mode on the same random
input, and compare the outputs.

Weights are matched by name when both state_dicts have the same keys, and
otherwise by order: the i-th tensor of ours takes the i-th of the
reference, and every pair must agree in shape (the first that does not is
reported). Order matching works because both sides register layers in the
order they compute them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..api import Model
from ..errors import Diagnostic, SpecError


@dataclass
class Result:
    reference: str
    matched_by: str
    tensors: int
    max_abs: float
    max_rel: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_rel <= self.tolerance

    def as_dict(self) -> dict:
        return {"reference": self.reference, "matched_by": self.matched_by, "tensors": self.tensors,
                "max_abs_diff": self.max_abs, "max_rel_diff": self.max_rel, "tolerance": self.tolerance,
                "ok": self.ok}


def copy_weights(reference: torch.nn.Module, ours: torch.nn.Module) -> str:
    """Copy reference tensors into ours; return how they were matched."""
    theirs, mine = reference.state_dict(), ours.state_dict()
    if set(theirs) == set(mine) and all(theirs[k].shape == mine[k].shape for k in mine):
        ours.load_state_dict(theirs)
        return "name"
    if len(theirs) != len(mine):
        raise SpecError(Diagnostic(
            f"the reference has {len(theirs)} tensors and the spec {len(mine)}: they cannot be matched",
            hint="the spec and the reference differ in layers (compare 'netspec summary' with the reference); "
                 "a spec with extra heads compares with only its main output kept: --outputs logits"))
    new = {}
    for (tk, tv), (mk, mv) in zip(theirs.items(), mine.items()):
        if tv.shape != mv.shape:
            raise SpecError(Diagnostic(
                f"tensor shapes differ in order matching: reference '{tk}' {list(tv.shape)} vs ours "
                f"'{mk}' {list(mv.shape)}", hint="the layers differ at this point"))
        new[mk] = tv
    ours.load_state_dict(new)
    return "order"


def sample_inputs(model: Model, batch: int = 2, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    tensors = []
    for info in model.inputs.values():
        shape = [batch if d == "N" else 7 if isinstance(d, str) else d for d in info.shape]
        dtype = getattr(torch, info.dtype)
        if dtype.is_floating_point:
            tensors.append(torch.randn(shape, generator=gen).to(dtype))
        else:
            tensors.append(torch.randint(0, 2, shape, generator=gen).to(dtype))
    return tensors


def first_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    return out[0]


def randomize_norms(module: torch.nn.Module, seed: int = 0) -> None:
    """Give batch norms random statistics and affine weights, and every
    tensor initialised to one value (a layer norm's scale and shift, a class
    token of zeros, ConvNeXt's layer scale of 1e-6, ViT's zero head) random
    values.  Freshly built, a norm is the identity in eval mode (mean 0,
    variance 1, scale 1, shift 0), and a residual branch scaled by 1e-6 all
    but vanishes, so a spec that misplaced or left out either would still
    compare equal."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
        for p in module.parameters():
            if p.numel() > 1 and bool((p == p.flatten()[0]).all()):
                # around the value it had (a scale stays near 1; zeros become +-0.1)
                p.copy_(p + torch.randn(p.shape, generator=gen) * 0.2 * p.abs().max().clamp(min=0.5))


def compare(model: Model, reference: torch.nn.Module, against: str, tolerance: float) -> Result:
    """Load the reference's weights into the model and compare first outputs."""
    reference.eval()
    model.module.eval()
    how = copy_weights(reference, model.module)
    inputs = sample_inputs(model)
    with torch.no_grad():
        ours = first_tensor(model.module(*inputs)).double()
        theirs = first_tensor(reference(*inputs)).double()
    if ours.shape != theirs.shape:
        raise SpecError(Diagnostic(f"output shapes differ: ours {list(ours.shape)} vs reference {list(theirs.shape)}"))
    diff = (ours - theirs).abs().max().item()
    scale = theirs.abs().max().item() or 1.0
    return Result(against, how, len(reference.state_dict()), diff, diff / scale, tolerance)
