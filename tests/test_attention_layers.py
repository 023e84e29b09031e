"""A Transformer encoder layer written with the attention, norm and
arithmetic ops equals torch.nn.TransformerEncoderLayer (post-norm and
pre-norm) on its weights, for any sequence length (a symbolic T), and its
standalone model.py computes the same."""
from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from compiler.api import compile_text
from compiler.backend.emit import class_name
from compiler.backend.standalone import source

WIDTH, HEADS, HIDDEN = 16, 4, 32


def encoder_layer_spec(norm_first: bool) -> str:
    attn = "{op: multi_head_attention, heads: %d, in: %s}" % (HEADS, "norm1" if norm_first else "x")
    if norm_first:
        nodes = f"""
  norm1: {{op: layer_norm, in: x}}
  attn: {attn}
  res1: {{op: add, in: [x, attn]}}
  norm2: {{op: layer_norm}}
  linear1: {{op: linear, out_features: {HIDDEN}}}
  act: {{op: relu}}
  linear2: {{op: linear, out_features: {WIDTH}}}
  out: {{op: add, in: [res1, linear2]}}"""
    else:
        nodes = f"""
  attn: {attn}
  res1: {{op: add, in: [x, attn]}}
  norm1: {{op: layer_norm}}
  linear1: {{op: linear, out_features: {HIDDEN}}}
  act: {{op: relu}}
  linear2: {{op: linear, out_features: {WIDTH}}}
  res2: {{op: add, in: [norm1, linear2]}}
  out: {{op: layer_norm}}"""
    return f"name: encoder_layer\ninputs:\n  x: {{shape: [N, T, {WIDTH}]}}\nnodes:{nodes}\noutputs: {{y: out}}\n"


# Our node paths -> torch.nn.TransformerEncoderLayer's module names.
NAMES = {"attn": "self_attn", "linear1": "linear1", "linear2": "linear2"}


def load_reference_weights(ours: nn.Module, reference: nn.Module, norm_first: bool) -> None:
    norms = {"norm1": "norm1", "norm2": "norm2"} if norm_first else {"norm1": "norm1", "out": "norm2"}
    state = reference.state_dict()
    names = {**NAMES, **norms}
    mine = {}
    for key in ours.state_dict():
        node, _, rest = key.partition(".")
        mine[key] = state[f"{names[node]}.{rest}"]
    ours.load_state_dict(mine)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
def test_encoder_layer_equals_torch_nn(norm_first, tmp_path):
    model = compile_text(encoder_layer_spec(norm_first))
    assert model.graph.nodes["attn"].out.shape == ("N", "T", WIDTH)
    reference = nn.TransformerEncoderLayer(WIDTH, HEADS, HIDDEN, dropout=0.0, batch_first=True,
                                           norm_first=norm_first).eval()
    ours = model.module.eval()
    load_reference_weights(ours, reference, norm_first)
    assert sum(n.n_params for n in model.graph.nodes.values()) == sum(p.numel() for p in reference.parameters())

    path = tmp_path / "model.py"
    path.write_text(source(model.graph))
    spec = importlib.util.spec_from_file_location("standalone_encoder_layer", path)
    standalone_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standalone_module)
    standalone = getattr(standalone_module, class_name(model.graph.name))().eval()
    standalone.load_state_dict(ours.state_dict())

    for length in (3, 7):  # one compiled module, any length
        x = torch.randn(2, length, WIDTH, generator=torch.Generator().manual_seed(length))
        with torch.no_grad():
            expected = reference(x)
            torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(standalone(x), expected, rtol=1e-5, atol=1e-5)
