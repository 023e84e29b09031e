"""docs/deploy.md's export table, read as the tests' expectations: for each
zoo spec and variant, whether ONNX and TorchScript export it (a measured
difference) or not ("no (k)", note k saying why)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deploy.md"
ROW = re.compile(r"^\| `([\w-]+)` \| (?:`([\w.-]+)`|-) \| ([^|]+) \| ([^|]+) \|$")
FORMATS = ("onnx", "torchscript")
# NETSPEC_EXPORT_ZOO=all checks every row; by default the rows below, one of
# each kind of network: plain, residual, branching with three outputs, fire
# modules, torch.nn's LSTM over token ids, a cell scanned over time, and one
# that cannot be exported. The whole table takes tens of minutes.
DEFAULT_ROWS = {("lenet", None), ("resnet", "18"), ("googlenet", "paper"), ("squeezenet", "1_1"),
                ("rnn", "lstm"), ("rnn", "rnn"), ("lstm_cell", None)}


def table() -> dict[tuple[str, str | None], dict[str, bool]]:
    """{(spec, variant): {format: exported?}} from docs/deploy.md."""
    section = DOC.read_text().split("## Which zoo specs export", 1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for line in section.splitlines() if line.startswith("| `")]
    rows = {}
    for line in lines:
        m = ROW.match(line)
        assert m, f"docs/deploy.md: a row of the export table no longer parses: {line}"
        spec, variant, *cells = m.groups()
        rows[(spec, variant)] = {f: not cell.strip().startswith("no") for f, cell in zip(FORMATS, cells)}
    assert rows, "docs/deploy.md has no export table"
    return rows


def zoo() -> set[tuple[str, str | None]]:
    """Every (spec, variant) of specs/."""
    pairs = set()
    for spec in sorted((ROOT / "specs").glob("*.yaml")):
        names = [str(v) for v in (yaml.safe_load(spec.read_text()).get("variants") or {})]
        pairs |= {(spec.stem, v) for v in names} if names else {(spec.stem, None)}
    return pairs


def selected() -> list[tuple[str, str | None]]:
    """The (spec, variant) rows this run checks."""
    everything = os.environ.get("NETSPEC_EXPORT_ZOO") == "all"
    return sorted((row for row in table() if everything or row in DEFAULT_ROWS), key=str)


def row_id(row) -> str:
    return f"{row[0]}-{row[1]}" if row[1] else row[0]
