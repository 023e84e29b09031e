"""specs/transformer.yaml against torch.nn.TransformerEncoder: each variant
equals an embedding, the positions (a learned table, or the sinusoids as
PyTorch's nn.Transformer tutorial computes them), torch.nn's encoder
(batch first; post-norm, or pre-norm with its final norm), the mean over
positions and a linear head, on the same weights, at several lengths from
one compiled module.  `verify --against torch.nn:...` reads the encoder's
arguments from the spec, and finds a spec whose layer is wired wrongly."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from compiler.api import analyze_file, compile_file, compile_text, dim_bounds
from compiler.errors import SpecError
from compiler.tools.verify import copy_weights, verify

SPEC = Path(__file__).resolve().parent.parent / "specs" / "transformer.yaml"
VOCABULARY, WIDTH, HEADS, HIDDEN, LAYERS, MAX_LENGTH, CLASSES = 1000, 64, 4, 256, 2, 128, 4  # the spec's params


def tutorial_positions(length: int, width: int) -> torch.Tensor:
    """PositionalEncoding of PyTorch's "Language Modeling with nn.Transformer" tutorial."""
    position = torch.arange(length).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, width, 2) * (-math.log(10000.0) / width))
    pe = torch.zeros(length, width)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


class EncoderClassifier(nn.Module):
    def __init__(self, norm_first: bool, learned: bool):
        super().__init__()
        self.embed = nn.Embedding(VOCABULARY, WIDTH)
        self.learned = learned
        if learned:
            self.positions = nn.Parameter(torch.randn(MAX_LENGTH, WIDTH) * 0.02)
        else:
            self.register_buffer("positions", tutorial_positions(MAX_LENGTH, WIDTH))
        layer = nn.TransformerEncoderLayer(WIDTH, HEADS, HIDDEN, dropout=0.1, batch_first=True, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, LAYERS, norm=nn.LayerNorm(WIDTH) if norm_first else None,
                                             enable_nested_tensor=False)
        self.head = nn.Linear(WIDTH, CLASSES)
        with torch.no_grad():  # norms away from the identity, so a misplaced one shows
            for m in self.modules():
                if isinstance(m, nn.LayerNorm):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.1)

    def forward(self, tokens):
        x = self.embed(tokens)
        if not self.learned:
            x = x * math.sqrt(WIDTH)
        x = x + self.positions[:tokens.shape[1]]
        return self.head(self.encoder(x).mean(1))


def reference_key(ours: str) -> str:
    ours = re.sub(r"^encoder\.(\d+)\.", r"encoder.layers.\1.", ours)
    return {"learned_positions.weight": "positions"}.get(ours, re.sub(r"^norm\.", "encoder.norm.", ours))


VARIANTS = {"post_norm": (False, True), "pre_norm": (True, True), "sinusoidal": (False, False)}


@pytest.mark.parametrize("variant", VARIANTS)
def test_transformer_equals_torch_nn_encoder(variant):
    norm_first, learned = VARIANTS[variant]
    model = compile_file(SPEC, variant, seed=0)
    torch.manual_seed(0)
    reference = EncoderClassifier(norm_first, learned).eval()
    ours = model.module.eval()
    state = reference.state_dict()
    ours.load_state_dict({k: state[reference_key(k)] for k in ours.state_dict()})
    assert sum(n.n_params for n in model.graph.nodes.values()) == sum(p.numel() for p in reference.parameters())
    for length in (1, 9, MAX_LENGTH):
        tokens = torch.randint(0, VOCABULARY, (3, length), generator=torch.Generator().manual_seed(length))
        with torch.no_grad():
            torch.testing.assert_close(ours(tokens), reference(tokens), rtol=1e-5, atol=1e-5)
    assert dim_bounds(model.graph)["T"].size == MAX_LENGTH


@pytest.mark.parametrize("against", ["torch.nn:TransformerEncoder", "torch.nn:TransformerEncoderLayer",
                                     "torch.nn:MultiheadAttention"])
@pytest.mark.parametrize("variant", ["post_norm", "pre_norm"])
def test_verify_reads_the_reference_from_the_spec(variant, against):
    result = verify(compile_file(SPEC, variant, seed=0), against)
    assert result.ok, result.as_dict()
    if against != "torch.nn:MultiheadAttention":
        assert ("norm_first" in result.reference) == (variant == "pre_norm")
        assert f"d_model {WIDTH}, nhead {HEADS}, dim_feedforward {HIDDEN}" in result.reference
    assert (f"{LAYERS} layer(s)" in result.reference) == (against == "torch.nn:TransformerEncoder")


def test_verify_finds_a_miswired_layer():
    # The second residual taken from the layer's input rather than after norm1:
    # the weights still load by role, and the outputs differ.
    text = SPEC.read_text().replace("res2: {op: add, in: [norm1, dropout2]}", "res2: {op: add, in: [x, dropout2]}")
    assert text != SPEC.read_text()
    result = verify(compile_text(text, "post_norm"), "torch.nn:TransformerEncoder")
    assert not result.ok and result.max_rel > 1e-2


def test_verify_names_what_torch_nn_lacks():
    text = SPEC.read_text().replace("      act: {op: $activation}\n", "      act: {op: $activation}\n"
                                    "      extra: {op: linear, out_features: $hidden}\n", 1)
    with pytest.raises(SpecError, match=r"layer 'encoder.0' has 3 linear node\(s\) with weights, "
                                        r"torch.nn.TransformerEncoderLayer 2"):
        verify(compile_text(text, "post_norm"), "torch.nn:TransformerEncoder")


def test_sinusoidal_table_is_not_learned_or_stored():
    model = compile_file(SPEC, "sinusoidal", seed=0)
    assert not any("sinusoids" in k for k in model.module.state_dict())
    assert analyze_file(SPEC, "sinusoidal").nodes["sinusoids"].n_params == 0


def test_a_tensor_count_mismatch_names_the_first_difference():
    model = compile_text("name: two\ninputs: {x: {shape: [N, 8]}}\nnodes:\n  a: {op: linear, out_features: 4}\n"
                         "  b: {op: linear, out_features: 3}\noutputs: b\n")
    reference = nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 3), nn.Linear(3, 2))
    with pytest.raises(SpecError, match=re.escape("the reference has 6 tensors and the spec 4: they cannot be matched; "
                                                  "the first to differ in order: reference '2.weight' [2, 3] vs "
                                                  "ours none left (tensor 4)")):
        copy_weights(reference, model.module)


@pytest.mark.parametrize("against", ["torch.nn:TransformerEncoder", "torch.nn:MultiheadAttention"])
def test_verify_a_causal_encoder(against):
    # A causal self-attention: the reference gets the square subsequent mask.
    attention = "self_attn: {op: multi_head_attention, heads: $heads, dropout: $dropout}"
    text = SPEC.read_text().replace(attention, attention[:-1] + ", causal: true}")
    assert text.count("causal: true") == 2
    result = verify(compile_text(text, "pre_norm"), against)
    assert result.ok, result.as_dict()
