"""Error messages as a user sees them: golden files.

Each tests/golden/NAME.yaml is a broken spec and NAME.txt what
`netspec check tests/golden/NAME.yaml` prints on stderr, run from the
repository root.  A first line `# args: ...` adds command-line arguments.
After a deliberate change of wording, regenerate the .txt files with

    NETSPEC_UPDATE_GOLDEN=1 python -m pytest tests/test_errors.py

and read the diff before committing it: the goldens are the review copy of
every message.  MUST_SAY below pins what each message has to contain, so a
regenerated golden that lost the point fails anyway.
"""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from common import GOLDEN, ROOT

UPDATE = os.environ.get("NETSPEC_UPDATE_GOLDEN") == "1"
CASES = sorted(p.stem for p in GOLDEN.glob("*.yaml"))

# What each message must say, whatever its exact wording.
MUST_SAY = {
    "yaml_syntax": ["not valid YAML", "line 4"],
    "empty": ["empty"],
    "top_level_list": ["a list"],
    "unknown_key": ["'dtyp'", "did you mean 'dtype'?"],
    "unknown_key_top": ["'nodse'", "did you mean 'nodes'?"],
    "unknown_op_param": ["'kernal'", "did you mean 'kernel'?", "'in_features'", "inferred"],
    "wrong_type": ["out_channels", "integer", "'eight'"],
    "wrong_type_schema": ["shape", "list", "224"],
    "unknown_op": ["unknown op 'max_pool'", "did you mean 'max_pool2d'?"],
    "unknown_input": ["unknown input 'conv'", "did you mean 'conv1'?"],
    "unknown_output": ["'relu'", "did you mean 'relu1'?"],
    "cycle": ["conv -> relu -> add -> conv"],
    "split_parts": ["3 equal parts do not divide dimension 2 (size 100)", "in block 'attention'",
                    "'key' is not one of the node's outputs: q, k, v", "input 'parts' has several outputs"],
    "concat_mismatch": ["[N, 8, 32, 32] from 'mix.b1'", "[N, 8, 16, 16] from 'mix.b3'", "in block 'mixed'"],
    "kernel_too_large": ["features.2.conv", "kernel 3x3", "[N, 32, 2, 2]", "repeat 2 of instance 'features.2'"],
    "duplicate_key": ["duplicate key 'conv'", "line 5"],
    "duplicate_name": ["duplicate node name 'stem.conv'", "duplicate name 'image'", "2 errors"],
    "missing_block_arg": ["block 'unit' needs the argument 'channels'"],
    "unknown_block_arg": ["'kernels'", "did you mean 'kernel'?"],
    "unknown_block": ["unknown block 'botleneck'", "did you mean 'bottleneck'?"],
    "unknown_variant": ["unknown variant 'larg'", "did you mean 'large'?"],
    "unknown_parameter": ["'widht'", "did you mean '$width'?"],
    "many_errors": ["padding 'same' needs stride 1", "still has spatial dimensions", "2 errors"],
    "shape_unknown_name": ["shape(y): no node or input 'y' here", "an input of the block"],
    "shape_symbolic": ["dimension 0 of 'image' is the symbol N", "not a number"],
    "repeat_several_inputs": ["repeats with 2 inputs (x, skip)", "'fused.' + str(i - 1)"],
    "error_in_every_instance": ["unknown op 'rleu'", "(in 87 instances of block 'unit': first at 'stage.0')"],
}

# The problems every release must keep covered by a golden file.
REQUIRED = {"yaml_syntax", "empty", "top_level_list", "unknown_key", "wrong_type", "unknown_op",
            "unknown_input", "cycle", "concat_mismatch", "kernel_too_large", "duplicate_key",
            "duplicate_name", "missing_block_arg", "unknown_variant"}

LOCATED = re.compile(r"^(?P<file>[^:\s]+):(?P<line>\d+):(?P<col>\d+): error: ")


def extra_args(spec: Path) -> list[str]:
    for line in spec.read_text().splitlines()[:3]:
        if line.startswith("# args:"):
            return shlex.split(line.removeprefix("# args:"))
    return []


def check_args(name: str) -> list[str]:
    relative = f"tests/golden/{name}.yaml"
    return ["check", relative, *extra_args(GOLDEN / f"{name}.yaml")]


def test_required_problems_are_covered():
    assert REQUIRED <= set(CASES)
    assert set(MUST_SAY) == set(CASES), "every golden spec says what its message must contain"
    stale = {p.stem for p in GOLDEN.glob("*.txt")} - set(CASES)
    assert not stale, f"golden messages without a spec: {stale}"


@pytest.mark.parametrize("name", CASES)
def test_golden_message(name, cli, monkeypatch):
    monkeypatch.chdir(ROOT)
    run = cli(*check_args(name))
    golden = GOLDEN / f"{name}.txt"
    if UPDATE:
        golden.write_text(run.err)
    assert run.code == 2, run.err
    assert run.out == ""
    assert "Traceback" not in run.err and "internal error" not in run.err
    for needle in MUST_SAY[name]:
        assert needle in run.err, f"{needle!r} missing from:\n{run.err}"
    assert golden.exists(), f"no golden file: run with NETSPEC_UPDATE_GOLDEN=1 to write {golden.name}"
    assert run.err == golden.read_text()


@pytest.mark.parametrize("name", CASES)
def test_every_error_names_file_line_col(name, cli, monkeypatch):
    monkeypatch.chdir(ROOT)
    run = cli(*check_args(name))
    heads = [line for line in run.err.splitlines() if not line.startswith("  ") and not re.fullmatch(r"\d+ errors", line)]
    assert heads
    for line in heads:
        m = LOCATED.match(line)
        assert m, f"no file:line:col in {line!r}"
        assert m["file"] == f"tests/golden/{name}.yaml"
        text = (GOLDEN / f"{name}.yaml").read_text().splitlines()
        assert 1 <= int(m["line"]) <= max(len(text), 1)


@pytest.mark.parametrize("name", ["cycle", "yaml_syntax", "unknown_variant"])
def test_real_process_exits_2_without_traceback(name, cli_process):
    run = cli_process(*check_args(name))
    assert run.code == 2
    assert run.out == ""
    assert "Traceback" not in run.err
    assert run.err == (GOLDEN / f"{name}.txt").read_text()


@pytest.mark.parametrize("command", [["summary"], ["summary", "--json"], ["compile", "--repository", "{tmp}"],
                                     ["verify", "--against", "torchvision:alexnet"], ["graph", "-o", "{tmp}/g.dot"]])
def test_every_command_reports_the_same_error(command, cli, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    run = cli(args[0], "tests/golden/kernel_too_large.yaml", *args[1:])
    assert run.code == 2
    assert run.out == ""
    assert run.err == (GOLDEN / "kernel_too_large.txt").read_text()
    assert not any(tmp_path.iterdir()), "nothing is written for a broken spec"


def test_library_raises_spec_error_with_diagnostics():
    from compiler.api import compile_file
    from compiler.errors import SpecError

    with pytest.raises(SpecError) as caught:
        compile_file(GOLDEN / "duplicate_name.yaml")
    diags = caught.value.diagnostics
    assert [d.node for d in diags] == ["stem.conv", "image"]
    assert all(d.loc.file.endswith("duplicate_name.yaml") for d in diags)
