"""Compare an exported model with the compiled module it came from, on the
same inputs: ONNX under onnxruntime, TorchScript under torch.jit.load.

The difference is relative to the output's scale, as `netspec verify`
reports it: max |exported - compiled| / max |compiled|, the worst over the
outputs and the sizes tried. Sizes vary every symbolic dimension (the batch
N, a sequence's time T), so a dimension that the export fixed fails here.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .inputs import example_inputs

# float32 outputs of a different kernel order agree to about 1e-6 of their
# scale; 1e-4 leaves room for deep networks without hiding a wrong op.
TOLERANCE = 1e-4
SIZES = ({"N": 1, "T": 3}, {"N": 3, "T": 7})
TOKENS = 2  # integer inputs (token ids) in [0, 2): valid for any embedding of two rows or more


def calibrate(model, batch: int = 8) -> None:
    """Rescale the weights so that activations keep their scale, in one
    forward pass of random inputs (as LSUV initialisation does): each
    convolution and linear layer is divided by the deviation of its first
    output, and batch norms take the statistics they then see. Freshly
    initialised, deep networks (MobileNet, EfficientNet, SqueezeNet) shrink
    their activations layer by layer until the output is the last bias, the
    same for every input, and a comparison would test nothing."""
    module = model.module
    layers = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)
    hooks = {}

    def rescale(layer, inputs, output):
        if not inputs[0].std().item() > 0:
            return None  # a cell's state at step 0 (zeros): wait for an input that varies
        hooks.pop(layer).remove()  # a layer inside a cell runs once per step: rescale it once
        std = output.std().item()
        if not std > 0:
            return None
        layer.weight.div_(std)
        if layer.bias is not None:
            layer.bias.div_(std)
        return output / std  # what the rescaled layer computes

    for m in module.modules():
        if isinstance(m, layers):
            hooks[m] = m.register_forward_hook(rescale)
        elif isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the pass
    module.train()
    try:
        with torch.no_grad():
            module(*example_inputs(model, {"N": batch}, TOKENS))
    finally:
        for hook in hooks.values():
            hook.remove()
        module.eval()


def input_dependence(model) -> float:
    """max |y[n] - y[0]| / max |y| over the samples of a random batch of
    three: near 0 for a model whose output ignores its input."""
    outputs = _compiled(model, example_inputs(model, {"N": 3}, TOKENS))
    return max((y - y[:1]).abs().max().item() / (y.abs().max().item() or 1.0) for y in outputs)


def relative_difference(expected: list[torch.Tensor], got: list[torch.Tensor]) -> float:
    worst = 0.0
    for e, g in zip(expected, got, strict=True):
        e, g = e.detach().double(), torch.as_tensor(g).double()
        if e.shape != g.shape:
            return float("inf")
        scale = e.abs().max().item() or 1.0
        worst = max(worst, (e - g).abs().max().item() / scale)
    return worst


def _compiled(model, args) -> list[torch.Tensor]:
    with torch.inference_mode():
        result = model.module.eval()(*args)
    return list(result) if isinstance(result, tuple) else [result]


def onnx_difference(model, folder: Path, sizes=SIZES) -> float:
    """The worst relative difference of onnxruntime running folder/model.onnx."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(Path(folder) / "model.onnx"), providers=["CPUExecutionProvider"])
    worst = 0.0
    for size in sizes:
        args = example_inputs(model, size, TOKENS)
        got = session.run(list(model.outputs), {name: x.numpy() for name, x in zip(model.inputs, args)})
        worst = max(worst, relative_difference(_compiled(model, args), [torch.from_numpy(g) for g in got]))
    return worst


def float32_error(model, sizes=SIZES) -> float:
    """The compiled module's own rounding error: its worst relative
    difference from the same module in float64, on the inputs the checks
    use. A deep network's float32 error grows with its depth (ResNet-101
    calibrated: 1.1e-4), and no exported file can be held closer to the
    float32 module than the float32 module is to the exact result."""
    import copy

    exact = copy.deepcopy(model.module).double().eval()
    worst = 0.0
    for size in sizes:
        args = example_inputs(model, size, TOKENS)
        with torch.inference_mode():
            result = exact(*(a.double() if a.is_floating_point() else a for a in args))
        wide = list(result) if isinstance(result, tuple) else [result]
        worst = max(worst, relative_difference(wide, _compiled(model, args)))
    return worst


def allowed_difference(model, sizes=SIZES) -> float:
    """TOLERANCE, or twice the module's own float32 error where that is
    larger: a file that runs the same arithmetic in another order differs by
    about as much as float32 rounding does."""
    return max(TOLERANCE, 2 * float32_error(model, sizes))


def accepts(model, difference: float) -> tuple[bool, float]:
    """Whether `difference` is within what is allowed, and what is: the
    module's float64 run (a copy, and seconds for a deep network) only for a
    difference past TOLERANCE."""
    if difference <= TOLERANCE:
        return True, TOLERANCE
    allowed = allowed_difference(model)
    return difference <= allowed, allowed


def torchscript_difference(model, folder: Path, sizes=SIZES) -> float:
    """The worst relative difference of torch.jit.load(folder/model.pt)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation: Triton's backend needs it
        loaded = torch.jit.load(str(Path(folder) / "model.pt"))
    worst = 0.0
    for size in sizes:
        args = example_inputs(model, size, TOKENS)
        with torch.inference_mode():
            result = loaded(*args)
        got = list(result) if isinstance(result, tuple) else [result]
        worst = max(worst, relative_difference(_compiled(model, args), got))
    return worst
