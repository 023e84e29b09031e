"""The built-in recurrent ops and specs/rnn.yaml against torch.nn.RNN/LSTM/GRU
with the same weights."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from compiler.api import compile_file, compile_text
from compiler.errors import SpecError

from common import SPECS

SPEC = SPECS / "rnn.yaml"
REFERENCE = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _spec(op: str, output: str = "sequence", extra: str = "") -> str:
    return f"""
name: seq
inputs:
  x: {{shape: [N, T, 12]}}
nodes:
  r: {{op: {op}, hidden_size: 9, num_layers: 2, output: {output}{extra}}}
outputs: {{y: r}}
"""


@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_builtin_matches_torch(op, bidirectional):
    extra = ", bidirectional: true" if bidirectional else ""
    outputs = ["sequence", "hidden"] + (["cell"] if op == "lstm" else [])
    torch.manual_seed(1)
    ref = REFERENCE[op](12, 9, num_layers=2, batch_first=True, bidirectional=bidirectional).eval()
    x = torch.randn(3, 7, 12)
    with torch.no_grad():
        seq, state = ref(x)
    expected = {"sequence": seq, "hidden": state[0] if op == "lstm" else state}
    if op == "lstm":
        expected["cell"] = state[1]
    for output in outputs:
        model = compile_text(_spec(op, output, extra))
        d = 2 if bidirectional else 1
        assert model.outputs["y"].shape == (("N", "T", d * 9) if output == "sequence" else (2 * d, "N", 9))
        model.module.load_state_dict({f"r.{k}": v for k, v in ref.state_dict().items()})
        with torch.no_grad():
            got = model.module.eval()(x)
        torch.testing.assert_close(got, expected[output], rtol=1e-5, atol=1e-6)


def test_param_count_matches_torch():
    for op, cls in REFERENCE.items():
        model = compile_text(_spec(op, extra=", bidirectional: true"))
        ref = cls(12, 9, num_layers=2, bidirectional=True)
        assert model.graph.nodes["r"].n_params == sum(p.numel() for p in ref.parameters())


def test_cell_of_gru_is_an_error():
    with pytest.raises(SpecError, match="no cell state"):
        compile_text(_spec("gru", "cell"))


@pytest.mark.parametrize("variant", ["rnn", "lstm", "gru"])
def test_rnn_spec_against_torch(variant):
    """The spec's classifier equals embedding -> torch.nn.<cell> -> h_n[-1] -> linear."""
    model = compile_file(SPEC, variant)
    assert model.inputs["tokens"].shape == ("N", "T") and model.inputs["tokens"].dtype == "int64"
    emb, fc = nn.Embedding(10000, 128), nn.Linear(256, 10)
    rec = REFERENCE[variant](128, 256, num_layers=2, dropout=0.2, batch_first=True)
    ours = model.module.eval()
    ours.embed.load_state_dict(emb.state_dict())
    ours.encoder.load_state_dict(rec.state_dict())
    ours.fc.load_state_dict(fc.state_dict())
    rec.eval()
    tokens = torch.randint(0, 10000, (4, 11))
    with torch.no_grad():
        _, state = rec(emb(tokens))
        h = state[0] if variant == "lstm" else state
        expected = fc(h[-1])
        got = ours(tokens)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    n_ref = sum(p.numel() for m in (emb, rec, fc) for p in m.parameters())
    assert sum(p.numel() for p in ours.parameters()) == n_ref
    assert sum(n.n_params for n in model.graph.nodes.values()) == n_ref


def test_embedding_needs_integer_tokens():
    with pytest.raises(SpecError, match="integer token ids"):
        compile_text("""
name: e
inputs: {x: {shape: [N, T]}}
nodes: {e: {op: embedding, num_embeddings: 10, embedding_dim: 4}}
outputs: {y: e}
""")


@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
def test_lengths_equal_each_sequence_alone(op, tmp_path):
    """With a lengths input the built-ins run packed sequences: each sequence's
    output and final state equal running it alone; model.py does the same."""
    import importlib.util
    import subprocess
    import sys

    text = f"""
name: packed
inputs:
  x: {{shape: [N, T, 6]}}
  lengths: {{shape: [N], dtype: int64}}
nodes:
  seq: {{op: {op}, in: [x, lengths], hidden_size: 5, num_layers: 2}}
  top: {{op: {op}, in: [x, lengths], hidden_size: 5, output: hidden}}
outputs: {{seq: seq, h: top}}
"""
    model = compile_text(text)
    m = model.module.eval()
    x, lengths = torch.randn(4, 9, 6), torch.tensor([5, 1, 9, 3])
    with torch.no_grad():
        seq, h = m(x, lengths)
        for n, length in enumerate(lengths.tolist()):
            alone_seq, alone_h = m(x[n:n + 1, :length], torch.tensor([length]))
            torch.testing.assert_close(seq[n, :length], alone_seq[0], rtol=1e-5, atol=1e-6)
            assert seq[n, length:].abs().sum().item() == 0
            torch.testing.assert_close(h[:, n], alone_h[:, 0], rtol=1e-5, atol=1e-6)
    spec = tmp_path / "packed.yaml"
    spec.write_text(text)
    subprocess.run([sys.executable, "-m", "compiler.cli", "compile", str(spec), "--repository",
                    str(tmp_path / "repo"), "--quiet"], check=True)
    folder = tmp_path / "repo" / "packed" / "1"
    module_spec = importlib.util.spec_from_file_location("standalone_packed", folder / "model.py")
    standalone = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(standalone)
    ours = standalone.load(str(folder / "weights.safetensors"))
    with torch.no_grad():
        torch.testing.assert_close(ours(x, lengths), m(x, lengths))
