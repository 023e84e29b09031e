"""How long the fast commands take, beside the floor of any netspec command
(`python -c "import yaml, pydantic"`), measured in one run on one machine.

    python bench/cli_speed.py [--repeat 5] [--before PYTHON_OF_AN_OLDER_CHECKOUT CHECKOUT]

prints the median wall time of each command and its ratio to the floor;
with --before, the same commands in another checkout beside ours, run
alternately so that both see the same load. `--cpu` reports the processes'
CPU time (user + system) instead of wall time: on a machine shared with
other work, wall time mostly measures the others.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "floor: import yaml, pydantic": ["-c", "import yaml, pydantic"],
    # pydantic's package loads lazily: a model class costs its core too
    "floor: + pydantic.BaseModel": ["-c", "import yaml; from pydantic import BaseModel"],
    "check resnet 152": ["-m", "compiler.cli", "check", "specs/resnet.yaml", "--variant", "152"],
    "summary resnet 152": ["-m", "compiler.cli", "summary", "specs/resnet.yaml", "--variant", "152"],
    "check: a YAML syntax error": ["-m", "compiler.cli", "check", "tests/golden/duplicate_key.yaml"],
    "ops": ["-m", "compiler.cli", "ops"],
    "schema": ["-m", "compiler.cli", "schema"],
}


# As a user's shell runs them: Python writes and reuses its bytecode caches.
# With PYTHONDONTWRITEBYTECODE set (as on some CI machines) every run
# compiles netspec's sources again, a third of a `check`.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def once(python: str, args: list[str], cwd: Path, cpu: bool) -> float:
    before = os.times()
    start = time.perf_counter()
    subprocess.run([python, *args], cwd=cwd, capture_output=True, timeout=120, env=ENV)
    if not cpu:
        return time.perf_counter() - start
    after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before", nargs=2, metavar=("PYTHON", "CHECKOUT"))
    parser.add_argument("--cpu", action="store_true", help="CPU seconds (user + system) instead of wall seconds")
    args = parser.parse_args()
    print(f"{'command':32} {'ours s':>8} {'x floor':>8}" + (f" {'before s':>9} {'before/ours':>12}" if args.before else "")
          + ("   (CPU seconds)" if args.cpu else "   (wall seconds)"))
    floor = None
    for label, command in COMMANDS.items():
        ours, before = [], []
        once(sys.executable, command, ROOT, args.cpu)  # writes the bytecode caches
        if args.before:
            once(args.before[0], command, Path(args.before[1]), args.cpu)
        for _ in range(args.repeat):
            ours.append(once(sys.executable, command, ROOT, args.cpu))
            if args.before:
                before.append(once(args.before[0], command, Path(args.before[1]), args.cpu))
        mine = statistics.median(ours)
        floor = floor or mine
        row = f"{label:32} {mine:8.3f} {mine / floor:8.2f}"
        if before:
            row += f" {statistics.median(before):9.3f} {statistics.median(before) / mine:12.2f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
