"""`netspec check` on broken specs: the zoo's specs with lines deleted,
values swapped and random bytes written in.  Whatever the damage, check
answers with exit code 0 (still a valid spec) or 2 (a spec error, printed
with its position), never a traceback, never another code, never a hang.

Most examples call compiler.cli.main in-process; a few run the command as
a real process.  The examples are derandomized, so a run is repeatable; set
NETSPEC_FUZZ_EXAMPLES=N to explore N fresh random examples instead.
"""
from __future__ import annotations

import os
import re
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import SPECS

ZOO = {p.name: p.read_bytes() for p in sorted(SPECS.glob("*.yaml"))}
EXPLORE = int(os.environ.get("NETSPEC_FUZZ_EXAMPLES", "0"))
SECONDS_PER_CHECK = 10  # the largest zoo spec checks in well under a second

FUZZ = settings(max_examples=EXPLORE or 250, derandomize=not EXPLORE, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Plain scalar values after "key: " (not keys, not flow punctuation).
VALUE = re.compile(rb"(?<=: )[^\s,{}\[\]#:]+")


@st.composite
def delete_lines(draw, data: bytes) -> bytes:
    lines = data.split(b"\n")
    start = draw(st.integers(0, len(lines) - 1))
    return b"\n".join(lines[:start] + lines[start + draw(st.integers(1, 3)):])


@st.composite
def swap_values(draw, data: bytes) -> bytes:
    spans = [m.span() for m in VALUE.finditer(data)]
    if len(spans) < 2:
        return data
    i, j = sorted(draw(st.lists(st.integers(0, len(spans) - 1), min_size=2, max_size=2, unique=True)))
    (a0, a1), (b0, b1) = spans[i], spans[j]
    return data[:a0] + data[b0:b1] + data[a1:b0] + data[a0:a1] + data[b1:]


@st.composite
def random_bytes(draw, data: bytes) -> bytes:
    at = draw(st.integers(0, len(data)))
    junk = draw(st.binary(min_size=1, max_size=6))
    replace = draw(st.integers(0, 6))
    return data[:at] + junk + data[at + replace:]

MUTATIONS = [delete_lines, swap_values, random_bytes]


@st.composite
def mutated_spec(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(ZOO)))
    data = ZOO[name]
    for _ in range(draw(st.integers(1, 3))):
        data = draw(draw(st.sampled_from(MUTATIONS))(data))
    return name, data


class Hang(BaseException):  # not caught by the command line's own handlers
    pass


@contextmanager
def time_limit(seconds: float):
    def expire(signum, frame):
        raise Hang(f"no answer within {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def assert_answered_properly(run, spec: Path):
    assert run.code in (0, 2), f"exit {run.code}:\n{run.err}"
    assert "Traceback" not in run.err and "internal error" not in run.err, run.err
    if run.code == 0:
        assert ": ok" in run.out
    else:
        assert run.out == ""
        first = run.err.splitlines()[0]
        assert re.match(rf"{re.escape(str(spec))}:\d+:\d+: error: ", first), first


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


@FUZZ
@given(mutated_spec())
def test_check_survives_mutations(cli, workdir, example):
    name, data = example
    spec = workdir / name
    spec.write_bytes(data)
    with time_limit(SECONDS_PER_CHECK):
        run = cli("check", spec)
    assert_answered_properly(run, spec)


@settings(FUZZ, max_examples=4)
@given(mutated_spec())
def test_check_survives_mutations_in_a_real_process(cli_process, workdir, example):
    name, data = example
    spec = workdir / f"process_{name}"
    spec.write_bytes(data)
    run = cli_process("check", spec, timeout=60)
    assert_answered_properly(run, spec)


# Inputs that once made check hang, run out of memory or fail inside netspec.
HOSTILE = {
    "huge power": "out_features: \"${9**9**9}\"",
    "huge range": "out_features: \"${len(range(10**10))}\"",
    "huge repetition": "out_features: \"${len([0] * 10**10)}\"",
    "zero pooling window": "kernel: 0",
}


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_values(cli, tmp_path, value):
    op = "max_pool2d" if value.startswith("kernel") else "linear"
    spec = tmp_path / "hostile.yaml"
    spec.write_text(f"name: m\ninputs: {{x: {{shape: [N, 4, 8, 8]}}}}\nnodes:\n  a: {{op: {op}, {value}}}\n"
                    "outputs: {y: a}\n")
    with time_limit(SECONDS_PER_CHECK):
        run = cli("check", spec)
    assert run.code == 2
    assert_answered_properly(run, spec)
