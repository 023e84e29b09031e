"""Fixtures shared by the test files: where the specs are, and two ways to
run the command line (in-process for speed, or as a real process where exit
codes and tracebacks must be seen as a user sees them)."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from common import ROOT, SPECS

# The suite starts a few hundred Python processes (servers, the command
# line); where the environment forbids bytecode caches, each of them would
# compile netspec's sources again. The caches go into __pycache__/ (ignored).
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


@dataclass
class Run:
    code: int
    out: str
    err: str


def _in_process(*argv: str) -> Run:
    """`netspec ARGV` through compiler.cli.main, stdout and stderr captured.
    argparse's own exits (--help, bad options) come back as codes too."""
    from compiler.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return Run(code, out.getvalue(), err.getvalue())


def _subprocess(*argv: str, timeout: float = 120, cwd: Path | None = None) -> Run:
    """`netspec ARGV` as a separate Python process (the console script's
    entry point, compiler.cli:main)."""
    proc = subprocess.run([sys.executable, "-m", "compiler.cli", *map(str, argv)], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd or ROOT)
    return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def specs() -> Path:
    return SPECS


@pytest.fixture(scope="session")
def cli():
    return _in_process


@pytest.fixture(scope="session")
def cli_process():
    return _subprocess
