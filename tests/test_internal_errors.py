"""A bug in netspec is said as one: an exception inside a shape rule or a
lowering becomes an internal error that names the node, exit code 3, with
the traceback only under --debug; a spec's mistake never looks like one."""
from __future__ import annotations

import pytest

from common import SPECS
from compiler.api import analyze_text, compile_text
from compiler.errors import InternalError, SpecError
from compiler.ops import OPS

SPEC = """
name: tiny
inputs: {x: {shape: [N, 3, 8, 8]}}
nodes:
  conv: {op: conv2d, out_channels: 4, kernel: 3}
  act: {op: relu}
outputs: act
"""


def broken(*args, **kwargs):
    return 1 // 0


def test_a_rule_that_raises_names_the_node(monkeypatch):
    monkeypatch.setattr(type(OPS["conv2d"]), "infer", broken)
    with pytest.raises(InternalError) as caught:
        analyze_text(SPEC, file="tiny.yaml")
    error = caught.value
    assert (error.node, error.op, error.loc.line) == ("conv", "conv2d", 5)
    assert "ZeroDivisionError" in str(error) and "[N, 3, 8, 8]" in str(error)
    assert isinstance(error.__cause__, ZeroDivisionError)  # the traceback is kept


def test_a_lowering_that_raises_names_the_node(monkeypatch):
    monkeypatch.setattr(type(OPS["relu"]), "lower", broken)
    with pytest.raises(InternalError) as caught:
        compile_text(SPEC, file="tiny.yaml")
    assert caught.value.node == "act" and isinstance(caught.value.__cause__, ZeroDivisionError)


def test_the_command_line_says_bug_and_shows_the_trace_under_debug(cli, monkeypatch, tmp_path):
    monkeypatch.setattr(type(OPS["conv2d"]), "infer", broken)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    run = cli("check", spec)
    assert run.code == 3
    assert "internal error: node 'conv' (conv2d)" in run.err and "Traceback" not in run.err
    assert "--debug" in run.err
    run = cli("--debug", "check", spec)
    assert run.code == 3 and "Traceback" in run.err and "ZeroDivisionError" in run.err


@pytest.mark.parametrize("op", ["scan", "tuple_item"])
def test_internal_ops_cannot_be_written(op):
    with pytest.raises(SpecError) as caught:
        analyze_text(SPEC.replace("op: relu", f"op: {op}"), file="tiny.yaml")
    (diag,) = caught.value.diagnostics
    assert diag.message == f"unknown op '{op}'" and diag.node == "act" and diag.loc.line == 6


def test_internal_ops_are_not_listed(cli):
    listed = {line.split()[0] for line in cli("ops").out.splitlines()[2:] if line.strip()}
    assert "scan" not in listed and "tuple_item" not in listed and "conv2d" in listed


def test_a_command_package_that_cannot_load_is_said(cli, monkeypatch):

    class Broken:
        name, value = "service", "service.cli:add_commands"

        def load(self):
            raise ImportError("No module named 'grpc'")

    import importlib.metadata
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [Broken()])
    # Asking for a command the broken package would add says why it is missing.
    run = cli("serve", "--repository", "models")
    assert run.code == 2
    assert "the commands of 'service' (service.cli:add_commands) cannot be loaded" in run.err
    assert "No module named 'grpc'" in run.err
    # The compiler's own commands do not look other packages up at all.
    run = cli("check", SPECS / "lenet.yaml")
    assert run.code == 0 and "cannot be loaded" not in run.err


def test_serve_and_infer_are_commands(cli):
    run = cli("--help")
    assert "serve" in run.out and "infer" in run.out
