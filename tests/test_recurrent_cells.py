"""Cells written from their gate equations (specs/lstm_cell.yaml,
specs/gru_cell.yaml) against torch.nn.LSTM and torch.nn.GRU with the same
weights; the shape proof of cell states; cycles; variable lengths."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from compiler.api import compile_file, compile_text
from compiler.errors import SpecError

from common import SPECS


def lstm_weights(ref: nn.LSTM) -> dict:
    return {"cell.xw.weight": ref.weight_ih_l0, "cell.xw.bias": ref.bias_ih_l0,
            "cell.hw.weight": ref.weight_hh_l0, "cell.hw.bias": ref.bias_hh_l0}


def gru_weights(ref: nn.GRU) -> dict:
    h = ref.hidden_size
    return {"cell.xw.weight": ref.weight_ih_l0, "cell.xw.bias": ref.bias_ih_l0,
            "cell.hrz.weight": ref.weight_hh_l0[:2 * h], "cell.hrz.bias": ref.bias_hh_l0[:2 * h],
            "cell.hn.weight": ref.weight_hh_l0[2 * h:], "cell.hn.bias": ref.bias_hh_l0[2 * h:]}


def _scan_and_reference(kind: str):
    """The spec's scan module with torch.nn's weights loaded, and torch.nn's module."""
    torch.manual_seed(0)
    if kind == "lstm":
        model = compile_file(SPECS / "lstm_cell.yaml")
        ref = nn.LSTM(128, 256, batch_first=True)
        weights = lstm_weights(ref)
    else:
        model = compile_file(SPECS / "gru_cell.yaml", "torch")
        ref = nn.GRU(128, 256, batch_first=True)
        weights = gru_weights(ref)
    scan = model.module.encoder
    scan.load_state_dict({k: v.detach().clone() for k, v in weights.items()})
    return model, scan.eval(), ref.eval()


def _close(got: torch.Tensor, want: torch.Tensor) -> float:
    rel = ((got - want).abs().max() / want.abs().max()).item()
    assert rel <= 1e-5, rel
    return rel


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("steps", [1, 7, 100])
@pytest.mark.parametrize("batch", [1, 16])
def test_cell_equals_torch(kind, steps, batch):
    _, scan, ref = _scan_and_reference(kind)
    x = torch.randn(batch, steps, 128)
    with torch.no_grad():
        got = scan(x)
        seq, state = ref(x)
    _close(got[0], seq)
    if kind == "lstm":
        _close(got[1], state[0][0])
        _close(got[2], state[1][0])
    else:
        _close(got[1], state[0])


def test_cell_parameter_counts_equal_torch():
    for kind, cls in (("lstm", nn.LSTM), ("gru", nn.GRU)):
        model, _, _ = _scan_and_reference(kind)
        assert model.graph.nodes["encoder"].n_params == sum(p.numel() for p in cls(128, 256).parameters())


def test_gru_notes_form_differs_from_torch():
    """The notes' GRU (reset before the hidden projection) is a different
    function: with torch.nn.GRU's weights it does not equal torch.nn.GRU."""
    torch.manual_seed(0)
    model = compile_file(SPECS / "gru_cell.yaml", "notes")
    ref = nn.GRU(128, 256, batch_first=True)
    w = gru_weights(ref)
    model.module.encoder.load_state_dict({
        "cell.xw.weight": w["cell.xw.weight"], "cell.xw.bias": w["cell.xw.bias"],
        "cell.hrz.weight": w["cell.hrz.weight"], "cell.hrz.bias": w["cell.hrz.bias"],
        "cell.rhw.weight": w["cell.hn.weight"]})
    x = torch.randn(4, 9, 128)
    with torch.no_grad():
        got = model.module.encoder(x)[0]
        want = ref(x)[0]
    assert (got - want).abs().max() > 1e-3

BAD_CELL = """
name: bad
inputs:
  x: {shape: [N, T, 8]}
blocks:
  cell:
    inputs: [x]
    state:
      h: {shape: [16], next: h_next}
    nodes:
      xh: {op: concat, in: [x, h]}
      h_next: {op: linear, in: xh, out_features: 32}
nodes:
  run: {block: cell, in: x}
outputs: {y: run}
"""


def test_state_that_changes_shape_is_an_error():
    with pytest.raises(SpecError) as e:
        compile_text(BAD_CELL, file="bad.yaml")
    text = str(e.value)
    assert "state 'h' changes shape from one step to the next: [N, 16] at step t-1, [N, 32] from 'h_next'" in text
    assert "bad.yaml:9:" in text  # the state's `next`

CYCLE_IN_CELL = """
name: cyc
inputs:
  x: {shape: [N, T, 8]}
blocks:
  cell:
    inputs: [x]
    state:
      h: {shape: [8], next: b}
    nodes:
      a: {op: add, in: [x, b]}
      b: {op: add, in: [a, h]}
nodes:
  run: {block: cell, in: x}
outputs: {y: run}
"""


def test_declared_recurrence_is_not_a_cycle_but_a_real_one_is():
    # b -> h is declared (`next: b`): fine; a <-> b is an accidental cycle.
    with pytest.raises(SpecError) as e:
        compile_text(CYCLE_IN_CELL, file="cyc.yaml")
    assert "the graph has a cycle: a -> b -> a" in str(e.value)
    assert "instance 'run'" in str(e.value)
    ok = CYCLE_IN_CELL.replace("in: [x, b]", "in: [x, h]")
    model = compile_text(ok)
    assert model.outputs["y"].shape == ("N", "T", 8)


def test_cell_cannot_reach_outside():
    text = BAD_CELL.replace("in: [x, h]", "in: [x, h, run]")
    with pytest.raises(SpecError, match="unknown input 'run'"):
        compile_text(text)


def test_variable_lengths_equal_each_sequence_alone():
    spec = (SPECS / "lstm_cell.yaml").read_text()
    spec = spec.replace("  x: {shape: [N, T, $features]}",
                        "  x: {shape: [N, T, $features]}\n  lengths: {shape: [N], dtype: int64}")
    spec = spec.replace("{block: lstm, in: x,", "{block: lstm, in: [x, lengths],")
    model = compile_text(spec)
    torch.manual_seed(3)
    scan = model.module.encoder.eval()
    lengths = torch.tensor([5, 1, 9, 3])
    x = torch.randn(4, 9, 128)
    with torch.no_grad():
        seq, h, c = scan(x, lengths)
        for n, length in enumerate(lengths.tolist()):
            alone = scan(x[n:n + 1, :length])
            torch.testing.assert_close(seq[n, :length], alone[0][0], rtol=1e-5, atol=1e-6)
            if length < 9:  # outputs after a sequence's end are zero
                assert seq[n, length:].abs().max().item() == 0
            torch.testing.assert_close(h[n], alone[1][0], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(c[n], alone[2][0], rtol=1e-5, atol=1e-6)
        logits = model.module.eval()(x, lengths)
    assert logits.shape == (4, 10)


@pytest.mark.parametrize("spec", ["lstm_cell.yaml", "gru_cell.yaml"])
def test_standalone_model_py_runs_the_cell(spec, tmp_path):
    """model.py carries the step and Scan classes and imports only torch."""
    import importlib.util
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "compiler.cli", "compile", str(SPECS / spec), "--repository",
                    str(tmp_path), "--quiet"], check=True, cwd=SPECS.parent)
    folder = tmp_path / spec.removesuffix(".yaml") / "1"
    text = (folder / "model.py").read_text()
    assert "import compiler" not in text and "netspec" not in text.split('"""', 2)[2]
    module_spec = importlib.util.spec_from_file_location("standalone_cell", folder / "model.py")
    standalone = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(standalone)
    ours = standalone.load(str(folder / "weights.safetensors"))
    compiled = compile_file(SPECS / spec).module.eval()
    x = torch.randn(3, 6, 128)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), compiled(x))


@pytest.mark.parametrize("spec,variant,against", [
    ("lstm_cell.yaml", None, "torch.nn:LSTM"), ("gru_cell.yaml", "torch", "torch.nn:GRU"),
    ("rnn.yaml", "lstm", "torch.nn:LSTM"), ("rnn.yaml", "gru", "torch.nn:GRU"), ("rnn.yaml", "rnn", "torch.nn:RNN")])
def test_verify_against_torch_nn(spec, variant, against):
    from compiler.tools.verify import verify
    result = verify(compile_file(SPECS / spec, variant), against)
    assert result.ok, result.as_dict()


def test_verify_reports_a_cell_that_does_not_map():
    from compiler.tools.verify import verify
    with pytest.raises(SpecError, match="linear 'rhw' takes 'rh'"):
        verify(compile_file(SPECS / "gru_cell.yaml", "notes"), "torch.nn:GRU")
    with pytest.raises(SpecError, match="weight_ih_l0 has 1024"):
        verify(compile_file(SPECS / "gru_cell.yaml", "torch"), "torch.nn:LSTM")


def test_stored_version_of_a_cell_reloads(tmp_path):
    """The expanded spec of a stored version keeps a cell as a block; the
    server recompiles it from there."""
    import subprocess
    import sys

    from compiler.tools.artifact import load_version
    subprocess.run([sys.executable, "-m", "compiler.cli", "compile", str(SPECS / "gru_cell.yaml"), "--repository",
                    str(tmp_path), "--quiet"], check=True, cwd=SPECS.parent)
    stored = load_version(tmp_path / "gru_cell" / "1")
    x = torch.randn(2, 5, 128)
    with torch.no_grad():
        torch.testing.assert_close(stored.module(x), compile_file(SPECS / "gru_cell.yaml").module.eval()(x))
