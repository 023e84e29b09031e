"""docs/timeline.md's table must say what the specs compute: its parameter and
multiply-add columns are recomputed from the specs."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from timeline_util import analyze_file, total_macs, total_params

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| `(\w+)` \| (?:`([\w.]+)`|-) \| (\d+)x(\d+)x(\d+) \| ([\d,]+) \| ([\d,.]+)M \|")


def rows():
    lines = [line for line in (ROOT / "docs" / "timeline.md").read_text().splitlines() if line.startswith("| `")]
    found = [m.groups() for line in lines if (m := ROW.match(line))]
    assert lines and len(found) == len(lines), "some of the table's rows no longer parse"
    return found


@pytest.mark.parametrize("row", rows(), ids=lambda r: f"{r[0]}-{r[1]}")
def test_row_matches_spec(row):
    spec, variant, c, h, w, params, macs = row
    graph = analyze_file(ROOT / "specs" / f"{spec}.yaml", variant)
    (image,) = graph.inputs.values()
    assert list(image.shape[1:]) == [int(c), int(h), int(w)]
    assert total_params(graph) == int(params.replace(",", ""))
    assert f"{total_macs(graph) / 1e6:,.1f}" == macs
