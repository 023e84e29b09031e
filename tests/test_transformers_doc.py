"""docs/transformers.md's table held to the specs: each row's line count,
parameters and multiply-adds at the stated length, and the variants; and
`netspec summary --dims T=...`, which counts at a stated length."""
from __future__ import annotations

import json
import re

import pytest

from common import ROOT, SPECS
from compiler.api import analyze_file
from compiler.tools.report import summary_dict

DOC = ROOT / "docs" / "transformers.md"
# | `spec` | `variant` | lines | parameters | multiply-adds at T=64 | checked against | max rel diff |
ROW = re.compile(r"^\| `(\w+)` \| `(\w+)` \| (\d+) \| ([\d,]+) \| ([\d.]+)M \| ([\w.:()\- ]+) \| ([\d.e+-]+) \|$")
LENGTH = int(re.search(r"multiply-adds at T=(\d+)", DOC.read_text()).group(1))


def rows() -> list[tuple]:
    lines = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    found = [m.groups() for line in lines if (m := ROW.match(line))]
    assert lines and len(found) == len(lines), "some of the table's rows no longer parse"
    return found


def test_every_variant_of_both_specs_has_a_row():
    listed = {(spec, variant) for spec, variant, *_ in rows()}
    assert listed == {("transformer", v) for v in ("post_norm", "pre_norm", "sinusoidal")} | \
        {("gpt", v) for v in ("tied", "untied")}


@pytest.mark.parametrize("row", rows(), ids=lambda r: f"{r[0]}-{r[1]}")
def test_row_matches_the_spec(row):
    spec, variant, lines, params, macs, _, _ = row
    path = SPECS / f"{spec}.yaml"
    assert len(path.read_text().splitlines()) == int(lines)
    totals = summary_dict(analyze_file(path, variant, dims={"T": LENGTH}))
    assert totals["total_params"] == int(params.replace(",", ""))
    assert f"{totals['total_macs'] / 1e6:.2f}" == macs


def test_summary_counts_at_a_stated_length(cli):
    per_position = json.loads(cli("summary", SPECS / "gpt.yaml", "--json").out)["total_macs"]
    at_64 = json.loads(cli("summary", SPECS / "gpt.yaml", "--json", "--dims", "T=64").out)["total_macs"]
    at_32 = json.loads(cli("summary", SPECS / "gpt.yaml", "--json", "--dims", "T=32").out)["total_macs"]
    # The linears grow with T, attention's two products with T^2: 2 layers x 2 x T^2 x 64.
    assert at_64 - 2 * at_32 == 2 * 2 * 64 * (64 ** 2 - 2 * 32 ** 2)
    assert per_position < at_32 < at_64
    bad = cli("summary", SPECS / "gpt.yaml", "--dims", "T=many")
    assert bad.code == 2 and "'T=many' is not SYMBOL=SIZE, e.g. --dims T=128" in bad.err
