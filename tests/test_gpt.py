"""specs/gpt.yaml against a GPT written by hand in torch as minGPT writes it
(explicit masked softmax attention, nn.Embedding positions indexed by
arange(T), the head's weight assigned the embedding's): with the
reference's weights copied in, the logits agree at several lengths from
one compiled module, the tied variant's embedding receives the gradients
of both of its uses, the standalone model.py computes the same, and the
multiply-adds at a stated length are what torch's flop counter counts."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from compiler.api import analyze_file, compile_file, dim_bounds
from compiler.backend.emit import class_name
from compiler.backend.standalone import source

SPEC = Path(__file__).resolve().parent.parent / "specs" / "gpt.yaml"
VOCABULARY, WIDTH, HEADS, LAYERS, BLOCK_SIZE = 512, 64, 4, 2, 64  # the spec's params


class CausalSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(WIDTH, 3 * WIDTH)
        self.c_proj = nn.Linear(WIDTH, WIDTH)
        mask = torch.tril(torch.ones(BLOCK_SIZE, BLOCK_SIZE)).view(1, 1, BLOCK_SIZE, BLOCK_SIZE)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (y.view(b, t, HEADS, c // HEADS).transpose(1, 2) for y in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc = nn.Linear(WIDTH, 4 * WIDTH)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * WIDTH, WIDTH)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(WIDTH), CausalSelfAttention()
        self.ln_2, self.mlp = nn.LayerNorm(WIDTH), MLP()

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, tied: bool):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(VOCABULARY, WIDTH), wpe=nn.Embedding(BLOCK_SIZE, WIDTH),
            h=nn.ModuleList(Block() for _ in range(LAYERS)), ln_f=nn.LayerNorm(WIDTH)))
        self.lm_head = nn.Linear(WIDTH, VOCABULARY, bias=False)
        if tied:
            self.lm_head.weight = self.transformer.wte.weight
        with torch.no_grad():  # norms away from the identity, so a misplaced one shows
            for m in self.modules():
                if isinstance(m, nn.LayerNorm):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.1)

    def forward(self, idx):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def reference_key(ours: str) -> str:
    return ours if ours.startswith("lm_head.") else f"transformer.{ours}"


def load_reference(ours: nn.Module, reference: GPT) -> None:
    state = reference.state_dict()
    ours.load_state_dict({k: state[reference_key(k)] for k in ours.state_dict()})


@pytest.mark.parametrize("variant", ["tied", "untied"])
def test_gpt_equals_the_hand_written_module(variant, tmp_path):
    model = compile_file(SPEC, variant, seed=0)
    torch.manual_seed(0)
    reference = GPT(tied=variant == "tied").eval()
    ours = model.module.eval()
    load_reference(ours, reference)
    assert sum(n.n_params for n in model.graph.nodes.values()) == sum(p.numel() for p in reference.parameters())
    assert ("lm_head.weight" in ours.state_dict()) == (variant == "untied")

    path = tmp_path / "model.py"
    path.write_text(source(model.graph))
    spec = importlib.util.spec_from_file_location("standalone_gpt", path)
    standalone_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standalone_module)
    standalone = getattr(standalone_module, class_name(model.graph.name))().eval()
    standalone.load_state_dict(ours.state_dict())

    for length in (1, 5, BLOCK_SIZE):  # one compiled module, every length up to the block size
        tokens = torch.randint(0, VOCABULARY, (2, length), generator=torch.Generator().manual_seed(length))
        with torch.no_grad():
            expected = reference(tokens)
            assert expected.shape == (2, length, VOCABULARY)
            torch.testing.assert_close(ours(tokens), expected, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(standalone(tokens), expected, rtol=1e-5, atol=1e-5)


def test_tied_embedding_learns_from_both_uses():
    model = compile_file(SPEC, "tied", seed=0)
    torch.manual_seed(1)
    reference = GPT(tied=True).eval()
    ours = model.module.eval()
    load_reference(ours, reference)
    tokens = torch.randint(0, VOCABULARY, (2, 9), generator=torch.Generator().manual_seed(3))
    targets = torch.randint(0, VOCABULARY, (2, 9), generator=torch.Generator().manual_seed(4))
    for module in (ours, reference):
        F.cross_entropy(module(tokens).flatten(0, 1), targets.flatten()).backward()
    grad = ours.get_submodule("wte").weight.grad
    torch.testing.assert_close(grad, reference.transformer.wte.weight.grad, rtol=1e-5, atol=1e-6)
    # Rows of tokens never read get gradient from the head alone: nonzero, as tying gives.
    unread = sorted(set(range(VOCABULARY)) - set(tokens.flatten().tolist()))[0]
    assert grad[unread].abs().sum() > 0


def test_length_is_bounded_by_the_position_table():
    model = compile_file(SPEC, "tied", seed=0)
    (bound,) = dim_bounds(model.graph).items()
    assert bound[0] == "T" and bound[1].size == BLOCK_SIZE and bound[1].node == "pos_emb"
    with pytest.raises(RuntimeError):  # past the table, torch itself refuses
        model.module(torch.zeros(1, BLOCK_SIZE + 1, dtype=torch.int64))


@pytest.mark.parametrize("variant", ["tied", "untied"])
def test_multiply_adds_at_a_length_equal_torch_flop_count(variant):
    # The reference's attention is explicit matmuls, which the flop counter sees
    # (q k^T and weights @ v: T^2 E each per layer, besides the linears).
    graph = analyze_file(SPEC, variant, dims={"T": BLOCK_SIZE})
    reference = GPT(tied=variant == "tied").eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        reference(torch.zeros(1, BLOCK_SIZE, dtype=torch.int64))
    assert sum(n.macs for n in graph.nodes.values()) == counter.get_total_flops() // 2
