"""`netspec graph`: DOT text, clusters and collapsing, rendering with
Graphviz's `dot`, and the message when `dot` is missing."""
from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET

import pytest

from compiler.tools import picture
from compiler.api import analyze_file
from compiler.cli import main
from compiler.tools.picture import to_dot

from common import SPECS


needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot is not installed (.ci/graphviz.sh installs it)")


def edges(dot: str) -> dict[tuple[str, str], str]:
    return {(a, b): label for a, b, label in re.findall(r'"([^"]+)" -> "([^"]+)" \[label="([^"]*)"\]', dot)}


def test_every_block_instance_is_a_cluster():
    graph = analyze_file(SPECS / "googlenet.yaml", "paper")
    dot = to_dot(graph)
    instances = {f.instance for n in graph.nodes.values() for f in n.trace}
    clusters = set(re.findall(r'subgraph "cluster_([^"]+)"', dot))
    assert clusters == instances
    assert {"inception3a", "inception3a.branch3", "aux1", "aux1.conv"} <= clusters
    # Each op node is drawn once, each edge of the graph once (plus the outputs').
    assert len(re.findall(r"^\s*\"[^\"]+\" \[label=", dot, re.M)) == len(graph.nodes) + 1 + len(graph.outputs)
    assert len(edges(dot)) == sum(len(n.inputs) for n in graph.nodes.values()) + len(graph.outputs)


def test_edges_carry_shapes():
    graph = analyze_file(SPECS / "googlenet.yaml", "paper")
    e = edges(to_dot(graph))
    # The concat of 3a (64 + 128 + 32 + 32 channels) feeds 3b's four branches.
    assert e[("inception3a.concat", "inception3b.branch1.conv")] == "256x28x28"
    assert e[("inception3a.branch3.relu", "inception3a.concat")] == "32x28x28"
    assert e[("fc", "output:logits")] == "1000"


def test_depth_collapses_instances():
    graph = analyze_file(SPECS / "googlenet.yaml", "paper")
    top = {n.trace[0].instance for n in graph.nodes.values() if n.trace}
    second = {n.trace[1].instance for n in graph.nodes.values() if len(n.trace) > 1}

    dot = to_dot(graph, 0)
    # conv1, conv2, the nine inceptions and the two heads: one box each.
    assert set(re.findall(r'"block:([^"]+)"\s*\[', dot)) == top and len(top) == 13
    assert "subgraph" not in dot
    assert edges(dot)[("block:inception3a", "block:inception3b")] == "256x28x28"

    dot = to_dot(graph, 1)
    # Inside them, their conv instances are boxes: 2 in conv2, 6 per
    # inception, 1 per head; the first level stays open as clusters.
    assert set(re.findall(r'"block:([^"]+)"\s*\[', dot)) == second and len(second) == 2 + 9 * 6 + 2
    assert set(re.findall(r'subgraph "cluster_([^"]+)"', dot)) == top
    assert edges(dot)[("block:inception3a.branch3", "inception3a.concat")] == "32x28x28"


@needs_dot
@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_renders_pictures(tmp_path, capsys, suffix):
    out = tmp_path / f"resnet18{suffix}"
    assert main(["graph", str(SPECS / "resnet.yaml"), "--variant", "18", "--depth", "1", "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    data = out.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    else:
        root = ET.fromstring(data)
        text = "".join(root.itertext())
        assert "layer2.0 (basic)" in text and "downsample" in text and "128x28x28" in text


def test_without_dot_the_dot_file_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(picture.shutil, "which", lambda name: None)
    out = tmp_path / "densenet.svg"
    assert main(["graph", str(SPECS / "densenet.yaml"), "--depth", "0", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert not out.exists()
    dot = (tmp_path / "densenet.dot").read_text()
    assert dot.startswith('digraph "densenet (121)"') and '"block:denseblock1.5"' in dot
    assert "graphviz" in err and "densenet.dot" in err and len(err.strip().splitlines()) == 1


def test_bad_output_suffix_is_a_usage_error(tmp_path, capsys):
    assert main(["graph", str(SPECS / "resnet.yaml"), "-o", str(tmp_path / "r.pdf")]) == 2
    assert ".dot, .svg, .png" in capsys.readouterr().err
