"""Comparing a compiled module with a reference implementation: copy the
reference's weights into ours, run both in eval mode on the same random
input, and compare the outputs.

Weights are matched by name when both state_dicts have the same keys, and
otherwise by order: the i-th tensor of ours takes the i-th of the
reference, and every pair must agree in shape (the first that does not is
reported). Order matching works because both sides register layers in the
order they compute them; where they do not (a reference that registers its
auxiliary heads before the classifier its spec computes first), the
reference's top-level modules are put in the order of ours that share
their names ("order by module").

Every output of the spec is compared: with several, the reference's are
its named outputs (torchvision's GoogLeNetOutputs), matched by name.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..api import Model, dim_steps
from ..errors import Diagnostic, SpecError


@dataclass
class Result:
    reference: str
    matched_by: str
    tensors: int
    max_abs: float
    max_rel: float
    tolerance: float
    outputs: dict[str, float] = field(default_factory=dict)  # each output's max rel diff, when there are several

    @property
    def ok(self) -> bool:
        return self.max_rel <= self.tolerance

    def as_dict(self) -> dict:
        return {"reference": self.reference, "matched_by": self.matched_by, "tensors": self.tensors,
                "max_abs_diff": self.max_abs, "max_rel_diff": self.max_rel, "tolerance": self.tolerance,
                "ok": self.ok, **({"outputs": self.outputs} if self.outputs else {})}


def copy_weights(reference: torch.nn.Module, ours: torch.nn.Module) -> str:
    """Copy reference tensors into ours; return how they were matched."""
    theirs, mine = reference.state_dict(), ours.state_dict()
    if set(theirs) == set(mine) and all(theirs[k].shape == mine[k].shape for k in mine):
        ours.load_state_dict(theirs)
        return "name"
    if len(theirs) != len(mine):
        raise SpecError(Diagnostic(
            f"the reference has {len(theirs)} tensors and the spec {len(mine)}: they cannot be matched; "
            f"the first to differ in order: {_first_difference(theirs, mine)}",
            hint="the spec and the reference differ in layers (compare 'netspec summary' with the reference); "
                 "a spec with extra heads compares with only its main output kept: --outputs logits"))
    if _same_shapes(theirs, mine):
        ours.load_state_dict(dict(zip(mine, theirs.values())))
        return "order"
    by_module = _in_order_of(theirs, mine)
    if _same_shapes(by_module, mine):
        ours.load_state_dict(dict(zip(mine, by_module.values())))
        return "order by module"
    raise SpecError(Diagnostic(f"tensor shapes differ in order matching: {_first_difference(theirs, mine)}",
                               hint="the layers differ at this point"))


def _same_shapes(theirs: dict, mine: dict) -> bool:
    return all(tv.shape == mv.shape for tv, mv in zip(theirs.values(), mine.values()))


def _first_difference(theirs: dict, mine: dict) -> str:
    """The first pair, in order, whose shapes differ (or where one side ends)."""
    side = lambda items, i: f"'{items[i][0]}' {list(items[i][1].shape)}" if i < len(items) else "none left"  # noqa: E731
    t, m = list(theirs.items()), list(mine.items())
    i = next((i for i in range(max(len(t), len(m)))
              if i >= len(t) or i >= len(m) or t[i][1].shape != m[i][1].shape), min(len(t), len(m)))
    return f"reference {side(t, i)} vs ours {side(m, i)} (tensor {i})"


def _in_order_of(theirs: dict, mine: dict) -> dict:
    """The reference's tensors with its top-level modules in the order of
    ours of the same name; a module only the reference has stays after the
    one it follows there."""
    top = lambda key: key.split(".")[0]  # noqa: E731
    ours_at = {name: i for i, name in enumerate(dict.fromkeys(top(k) for k in mine))}
    groups: dict[str, list] = {}
    for key, value in theirs.items():
        groups.setdefault(top(key), []).append((key, value))
    rank, last = {}, -1.0
    for i, name in enumerate(groups):
        last = ours_at[name] if name in ours_at else last
        rank[name] = (last, i)
    return dict(item for name in sorted(groups, key=rank.__getitem__) for item in groups[name])


def sample_inputs(model: Model, batch: int = 2, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    steps = dim_steps(model.graph)
    tensors = []
    for info in model.inputs.values():
        # a symbolic size the model divides (H / 32) takes 7 of its multiple
        shape = [batch if d == "N" else 7 * steps.get(d, 1) if isinstance(d, str) else d for d in info.shape]
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


# Our names for the named outputs of a reference where they differ
# (torchvision's GoogLeNet and Inception v3 call their heads aux_logits*).
OUTPUT_NAMES = {"aux1": "aux_logits1", "aux2": "aux_logits2", "aux": "aux_logits"}


def compare(model: Model, reference: torch.nn.Module, against: str, tolerance: float,
            auxiliary: bool = False) -> Result:
    """Load the reference's weights into the model and compare the outputs:
    the first, or with several every one.  `auxiliary`: the reference
    returns its auxiliary outputs only when training, so its own module is
    put in training mode and every layer in it stays in eval mode."""
    reference.eval()
    model.module.eval()
    several = len(model.outputs) > 1
    if several and auxiliary:
        reference.training = True
    how = copy_weights(reference, model.module)
    inputs = sample_inputs(model)
    with torch.no_grad():
        ours_out = model.module(*inputs)
        theirs_out = reference(*inputs)
    if several:
        pairs = _output_pairs(list(model.outputs), ours_out, theirs_out)
    else:
        pairs = {next(iter(model.outputs), "output"): (first_tensor(ours_out), first_tensor(theirs_out))}
    diffs, max_abs = {}, 0.0
    for name, (ours, theirs) in pairs.items():
        ours, theirs = ours.double(), theirs.double()
        if ours.shape != theirs.shape:
            raise SpecError(Diagnostic(f"output shapes differ{f' at {name!r}' if several else ''}: ours "
                                       f"{list(ours.shape)} vs reference {list(theirs.shape)}"))
        diff = (ours - theirs).abs().max().item()
        diffs[name] = diff / (theirs.abs().max().item() or 1.0)
        max_abs = max(max_abs, diff)
    return Result(against, how, len(reference.state_dict()), max_abs, max(diffs.values()), tolerance,
                  diffs if several else {})


def _output_pairs(names: list[str], ours, theirs) -> dict[str, tuple]:
    """Each output of ours with the reference's of the same name."""
    if isinstance(theirs, torch.Tensor) or not hasattr(theirs, "_asdict"):
        raise SpecError(Diagnostic(
            f"the spec has {len(names)} outputs ({', '.join(names)}) and the reference returns "
            f"{'one tensor' if isinstance(theirs, torch.Tensor) else type(theirs).__name__}, not named outputs",
            hint=f"compare the main output alone: --outputs {names[0]}"))
    named = theirs._asdict()
    pairs = {}
    for name, tensor in zip(names, ours):
        key = name if name in named else OUTPUT_NAMES.get(name)
        if key not in named:
            raise SpecError(Diagnostic(f"the reference has no output for '{name}': its outputs are "
                                       f"{', '.join(named)}", hint="name the spec's outputs as the reference's, "
                                       f"or leave it out: --outputs {names[0]}"))
        pairs[name] = (tensor, named[key])
    return pairs
