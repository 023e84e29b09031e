"""The command line's contract: every command's --help shows an example;
a missing file, a bad variant and an unwritable output are one-line errors
with exit code 2 (a hint line may follow), never a traceback."""
from __future__ import annotations

import json
import re

import pytest

from common import SPECS


def commands() -> list[str]:
    from compiler.cli import _parser

    (sub,) = [a for a in _parser()[0]._actions if a.dest == "command"]
    return sorted(sub.choices)


# Arguments that make each spec-reading command run: {spec} and {tmp} are filled in.
SPEC_COMMANDS = {
    "check": ["check", "{spec}"],
    "summary": ["summary", "{spec}"],
    "compile": ["compile", "{spec}", "--repository", "{tmp}/repo"],
    "verify": ["verify", "{spec}", "--against", "torchvision:alexnet"],
    "graph": ["graph", "{spec}", "-o", "{tmp}/graph.dot"],
}


def fill(args: list[str], spec, tmp_path) -> list[str]:
    return [a.replace("{spec}", str(spec)).replace("{tmp}", str(tmp_path)) for a in args]


def one_line_error(run) -> str:
    assert run.code == 2, (run.code, run.err)
    assert "Traceback" not in run.err and "internal error" not in run.err
    lines = run.err.splitlines()
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("  hint: ")), run.err
    return lines[0]


def test_the_spec_commands_are_all_known():
    assert set(SPEC_COMMANDS) <= set(commands())


@pytest.mark.parametrize("command", commands())
def test_help_has_an_example(cli, command):
    run = cli(command, "--help")
    assert run.code == 0
    assert "example:" in run.out
    example = run.out.split("example:", 1)[1]
    assert re.search(rf"^\s+netspec {command}\b", example, re.M), example


def test_top_level_help_lists_every_command(cli):
    run = cli("--help")
    assert run.code == 0
    for command in commands():
        assert command in run.out


def test_no_command_is_a_usage_error(cli):
    run = cli()
    assert run.code == 2 and "Traceback" not in run.err


@pytest.mark.parametrize("command", list(SPEC_COMMANDS))
def test_missing_file(cli, tmp_path, command):
    line = one_line_error(cli(*fill(SPEC_COMMANDS[command], tmp_path / "nope.yaml", tmp_path)))
    assert "nope.yaml" in line and "no such" in line
    assert not (tmp_path / "repo").exists() and not (tmp_path / "graph.dot").exists()


def test_missing_file_in_a_real_process(cli_process, tmp_path):
    run = cli_process("summary", tmp_path / "nope.yaml", "--json")
    assert run.out == ""
    assert "no such spec file" in one_line_error(run)


@pytest.mark.parametrize("command", list(SPEC_COMMANDS))
def test_bad_variant(cli, tmp_path, command):
    args = fill(SPEC_COMMANDS[command], SPECS / "vgg.yaml", tmp_path)
    run = cli(*args, "--variant", "F")
    line = one_line_error(run)
    assert "unknown variant 'F'" in line
    assert "A, A-LRN, B, C, D, E" in run.err
    assert run.out == ""


def test_variant_of_a_spec_without_variants(cli):
    run = cli("check", SPECS / "lenet.yaml", "--variant", "big")
    assert "this spec has no variants" in one_line_error(run)


@pytest.mark.parametrize("command", ["check", "summary"])
def test_directory_and_binary_files(cli, tmp_path, command):
    assert "directory" in one_line_error(cli(command, tmp_path))
    binary = tmp_path / "weights.yaml"
    binary.write_bytes(b"\x80\x04\x95\xff\xfe\x00garbage")
    assert "not UTF-8" in one_line_error(cli(command, binary))


def test_unwritable_outputs(cli, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    line = one_line_error(cli("compile", SPECS / "lenet.yaml", "--repository", blocker / "repo"))
    assert str(blocker / "repo") in line
    line = one_line_error(cli("graph", SPECS / "lenet.yaml", "-o", blocker / "lenet.dot"))
    assert "lenet.dot" in line


def test_compile_several_specs_refuses_single_spec_options(cli, tmp_path):
    run = cli("compile", SPECS / "lenet.yaml", SPECS / "nin.yaml", "--repository", tmp_path, "--name", "x")
    assert "single spec" in one_line_error(run)


def test_check_prints_inputs_and_outputs(cli):
    run = cli("check", SPECS / "alexnet.yaml", "--variant", "torchvision")
    assert run.code == 0
    assert "input   image: [N, 3, 224, 224] float32" in run.out
    assert "output  logits: [N, 1000] float32" in run.out


def test_summary_table_and_json_agree(cli):
    table = cli("summary", SPECS / "lenet.yaml")
    data = json.loads(cli("summary", SPECS / "lenet.yaml", "--json").out)
    rows = {line.split()[0]: line for line in table.out.splitlines()[3:]}
    for layer in data["layers"]:
        assert f"{layer['params']:,}" in rows[layer["name"]]
    assert rows["total"].split()[1:] == [f"{data['total_params']:,}", f"{data['total_macs']:,}"]


def test_ops_lists_every_base_op(cli):
    run = cli("ops")
    assert run.code == 0
    listed = {line.split()[0] for line in run.out.splitlines()[2:] if line.strip()}
    assert {"conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "global_avg_pool", "linear", "flatten",
            "relu", "sigmoid", "tanh", "leaky_relu", "softmax", "dropout", "local_response_norm", "batchnorm2d",
            "add", "concat", "identity"} <= listed


def test_a_warning_is_printed_but_not_fatal(cli, tmp_path):
    spec = tmp_path / "unused.yaml"
    spec.write_text("name: m\ninputs: {x: {shape: [N, 4]}}\n"
                    "nodes:\n  fc: {op: linear, out_features: 2}\n  spare: {op: relu, in: x}\n"
                    "outputs: {y: fc}\n")
    run = cli("check", spec)
    assert run.code == 0
    assert re.search(r"unused.yaml:5:3: warning: node 'spare' \(relu\): unused", run.err)


def test_only_the_command_itself_freezes_what_its_imports_made(cli, tmp_path):
    # main() called by a program that goes on (as here) must leave its
    # garbage collector as it was: what is frozen is never collected.
    import gc
    import subprocess
    import sys

    frozen = gc.get_freeze_count()
    assert cli("compile", SPECS / "lenet.yaml", "--repository", tmp_path / "in", "--quiet").code == 0
    assert gc.get_freeze_count() == frozen
    # The command itself does freeze them, and still writes its model.
    probe = ("import gc, sys; from compiler import cli; code = cli.main(); "
             "print(gc.get_freeze_count() > 10000); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", probe, "compile", str(SPECS / "lenet.yaml"), "--repository",
                           str(tmp_path / "out"), "--quiet"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
    assert (tmp_path / "out" / "lenet" / "config.pbtxt").exists()


# The server, in place of service.server.serve: it reports what the command
# froze before serving, and whether a model built afterwards (an fx module,
# in a reference cycle with its graph) is still collected once dropped, as
# an unloaded model must be.
_SERVE_PROBE = """
import gc, sys, weakref
import service.server

async def serve(repository, options, on_listening=None):
    frozen = gc.get_freeze_count()
    from compiler import api
    model = weakref.ref(api.compile_file(spec).module)
    gc.collect()
    print(frozen > 10000, model() is None)
    return 0

service.server.serve = serve
from compiler import cli
spec, how, repository = sys.argv[1:]
sys.argv = ["netspec", "serve", "--repository", repository]
sys.exit(cli.main() if how == "own" else cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("how", ["own", "called"])
def test_serve_freezes_what_its_imports_made_and_still_frees_models(tmp_path, how):
    import subprocess
    import sys

    (tmp_path / "repository").mkdir()
    proc = subprocess.run([sys.executable, "-c", _SERVE_PROBE, str(SPECS / "lenet.yaml"), how, str(tmp_path / "repository")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    frozen = how == "own"  # main() called by a program that goes on leaves its collector alone
    assert proc.stdout.split() == [str(frozen), "True"]
