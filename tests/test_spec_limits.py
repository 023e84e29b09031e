"""Reading a spec is bounded: YAML alias bombs, deep nesting, expensive
expressions and huge repeats are refused quickly, with a spec error at the
line, by `netspec check` and by every stage that reads a spec.

The limits live beside the code they guard: compiler.frontend.load (values once
aliases are expanded, nesting depth, file size), compiler.frontend.expr (work of
expressions, their length) and compiler.frontend.expand (nodes and instances)."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time

import pytest

from compiler.frontend import expr, load
from compiler.frontend.expand import MAX_EXPANDED
from compiler.api import analyze_text
from compiler.errors import SpecError

HEAD = "name: m\ninputs: {x: {shape: [N, 4]}}\nnodes: {a: {op: relu}}\noutputs: {y: a}\n"


def alias_bomb(levels: int, width: int = 9) -> str:
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    lines += [f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * width)}]" for k in range(1, levels)]
    return HEAD + "\n".join(lines) + "\n"


def with_param(value: str) -> str:
    return HEAD + f"params:\n  p: {value}\n"


def refused(text: str, seconds: float = 5.0) -> str:
    """The first diagnostic of the SpecError that analysing `text` raises,
    within `seconds` (generous: the machine may be busy)."""
    started = time.perf_counter()
    with pytest.raises(SpecError) as info:
        analyze_text(text, file="spec.yaml")
    assert time.perf_counter() - started < seconds
    return info.value.diagnostics[0].format()


def test_an_alias_bomb_is_refused_at_its_anchor():
    message = refused(alias_bomb(9))  # 9**9 strings once expanded
    assert message.startswith("spec.yaml:5:") and f"more than {load.MAX_VALUES:,} values" in message
    assert "alias" in message


def test_an_alias_bomb_costs_little_memory(tmp_path):
    # In a fresh interpreter that imports the loader alone, so its peak is the load's.
    spec = tmp_path / "bomb.yaml"
    spec.write_text(alias_bomb(9))
    # VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec.
    probe = textwrap.dedent(f"""
        from compiler.errors import SpecError
        from compiler.frontend.load import load_file
        try:
            load_file({str(spec)!r})
        except SpecError:
            pass
        print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 100 * 1024  # KiB: the whole interpreter stays under 100 MiB


def test_an_alias_inside_itself_is_refused():
    assert "more than 64 levels deep" in refused(with_param("&a [*a]"))


def test_deep_nesting_is_refused_where_it_goes_too_deep():
    message = refused(with_param("[" * 10_000 + "]" * 10_000))
    line, col = map(int, re.match(r"spec\.yaml:(\d+):(\d+): error: ", message).groups())
    # The spec and its 'params' are two levels, so the first '[' past the limit is number MAX_DEPTH - 1.
    assert line == 6 and col == 6 + load.MAX_DEPTH - 2
    refused(with_param("{a: " * 100 + "1" + "}" * 100))


def test_nesting_within_the_limit_loads():
    value = "[" * (load.MAX_DEPTH - 2) + "]" * (load.MAX_DEPTH - 2)  # the deepest at MAX_DEPTH
    analyze_text(with_param(value))


def test_check_on_a_spec_nested_10000_deep_is_a_spec_error(cli_process, tmp_path):
    spec = tmp_path / "deep.yaml"
    spec.write_text(with_param("[" * 10_000 + "]" * 10_000))
    run = cli_process("check", spec, timeout=120)
    assert run.code == 2 and "Traceback" not in run.err, run.err
    assert run.err.startswith(f"{spec}:6:") and "levels deep" in run.err


def test_a_spec_file_past_the_size_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(load, "MAX_SPEC_BYTES", 1000)
    spec = tmp_path / "big.yaml"
    spec.write_text(HEAD + "# padding\n" * 200)
    with pytest.raises(SpecError, match="larger than"):
        load.load_file(spec)


@pytest.mark.parametrize("expression", [
    "${sum([sum(range(100000)) for j in range(100000)])}",
    "${[[i for i in range(1000)] for j in range(1000)]}",
    "${len(str(range(99999)))}",
])
def test_expensive_expressions_are_refused(expression):
    message = refused(with_param(f'"{expression}"'))
    assert message.startswith("spec.yaml:6:6: error: ") and f"{expr.MAX_WORK:,} steps" in message


def test_the_work_budget_is_shared_by_a_spec_s_expressions():
    # Each costs about 3 * 60,000 units, well inside the budget alone.
    one = "${len([0 for j in range(60000)])}"
    analyze_text(with_param(f'"{one}"'))
    text = HEAD + "params:\n" + "".join(f'  p{k}: "{one}"\n' for k in range(4))
    assert "steps of work" in refused(text)


@pytest.mark.parametrize("expression,words", [
    ("${" + "-" * 5000 + "1}", "longer than 1,000 characters"),
    ("${" + "-" * 990 + "1}", "nested too deeply"),
    ("${" + "1+" * 490 + "1}", "nested too deeply"),
])
def test_long_and_deep_expressions_are_refused_with_a_short_quote(expression, words):
    message = refused(with_param(f'"{expression}"'))
    assert words in message and len(message) < 300


def test_deep_expressions_are_refused_whatever_the_interpreter_s_recursion_limit():
    # torch.compile, among others, raises the limit in a process that then checks specs
    limit = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(100_000)
        assert "nested too deeply" in refused(with_param('"${' + "1+" * 490 + '1}"'))
    finally:
        sys.setrecursionlimit(limit)
    assert expr.evaluate("${" + "1+" * 150 + "1}", {}) == 151  # deep, but within the limit


def test_a_huge_repeat_is_refused_at_its_node():
    text = "name: m\ninputs: {x: {shape: [N, 4]}}\nnodes:\n  a: {op: relu, repeat: 1000000}\noutputs: {y: a}\n"
    message = refused(text)
    assert message.startswith(f"spec.yaml:4:3: error: node 'a.{MAX_EXPANDED}'")
    assert f"more than {MAX_EXPANDED:,} nodes" in message


def test_repeats_of_blocks_count_every_node_they_make():
    text = textwrap.dedent("""\
        name: m
        inputs: {x: {shape: [N, 4]}}
        blocks:
          b:
            nodes:
              r: {op: relu, repeat: 100}
        nodes:
          a: {block: b, repeat: 1000}
        outputs: {y: a}
        """)
    message = refused(text)
    assert "nodes and block instances" in message and "in block 'b'" in message
