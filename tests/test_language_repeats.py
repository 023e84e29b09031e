"""What the repeats of a node read, and an error found in every instance of
a block reported once: tables of tiny specs, each message checked for its
text and position."""
from __future__ import annotations

import pytest

from compiler.api import SpecError, analyze_text

TEMPLATE = """name: t
inputs: {x: {shape: [N, 4, 6, 6]}, skip: {shape: [N, 4, 6, 6]}}
blocks:
  fuse:
    inputs: [a, b]
    nodes:
      add: {op: add, in: [a, b]}
      act: {op: relu}
nodes:
%s
outputs: {y: r}
"""

ACCEPTED = [
    # One input: each repeat after the first reads the one before it.
    ("  r: {op: relu, repeat: 3}", {"r.0": ["x"], "r.1": ["r.0"], "r.2": ["r.1"]}),
    # Several inputs chosen per repeat with $i: the first chained, the second kept.
    ("""  r: {block: fuse, repeat: 3, in: ["${'x' if i == 0 else 'r.' + str(i - 1)}", skip]}""",
     {"r.0.add": ["x", "skip"], "r.1.add": ["r.0.act", "skip"], "r.2.add": ["r.1.act", "skip"]}),
    # An override sets one repeat's inputs; the next reads that repeat.
    ("""  s: {op: relu, in: skip}
  r: {op: relu, repeat: 3, overrides: {1: {in: s}}}""", {"r.0": ["s"], "r.1": ["s"], "r.2": ["r.1"]}),
    ("""  r: {block: fuse, repeat: 2, in: [x, skip], overrides: {1: {in: [r.0, x]}}}""",
     {"r.0.add": ["x", "skip"], "r.1.add": ["r.0.act", "x"]}),
    # A single repeat reads what it says.
    ("  r: {block: fuse, repeat: 1, in: [x, skip]}", {"r.0.add": ["x", "skip"]}),
    # 'in:' chosen per repeat by $item.
    ("""  r: {op: relu, repeat: [x, skip], in: $item}""", {"r.0": ["x"], "r.1": ["skip"]}),
]


@pytest.mark.parametrize("nodes,inputs", ACCEPTED)
def test_accepted(nodes, inputs):
    graph = analyze_text(TEMPLATE % nodes)
    assert {name: graph.nodes[name].inputs for name in inputs} == inputs


def errors_of(text: str) -> list:
    with pytest.raises(SpecError) as e:
        analyze_text(text, file="t.yaml")
    return e.value.diagnostics


def test_several_inputs_that_do_not_follow_the_repeats_are_an_error():
    (d,) = errors_of(TEMPLATE % "  r: {block: fuse, repeat: 3, in: [x, skip]}")
    assert (d.loc.line, d.loc.col, d.node) == (10, 35, "r")
    assert d.message == "it repeats with 2 inputs (x, skip) but does not say what the repeats after the first read"
    assert d.hint == ("choose them per repeat with $i: to chain the first and keep the others, write "
                      "in: [\"${'x' if i == 0 else 'r.' + str(i - 1)}\", skip]; or set a repeat's inputs under "
                      "'overrides'")
    # The hint's spelling is a spec that works.
    fixed = TEMPLATE % "  r: {block: fuse, repeat: 3, in: [\"${'x' if i == 0 else 'r.' + str(i - 1)}\", skip]}"
    assert analyze_text(fixed).nodes["r.2.add"].inputs == ["r.1.act", "skip"]


def test_an_override_with_an_unknown_input_is_located():
    (d,) = errors_of(TEMPLATE % "  r: {op: relu, repeat: 2, overrides: {1: {in: nope}}}")
    assert (d.loc.line, d.loc.col, d.node) == (10, 48, "r.1")
    assert d.message == "unknown input 'nope'"


GROUPED = """name: g
inputs: {x: {shape: [N, 4, 8, 8]}}
blocks:
  unit:
    nodes:
      conv: {op: convv2d, out_channels: 4, kernel: 1}
      act: {op: relu}
  stage:
    params: {n: 1}
    nodes:
      units: {block: unit, repeat: $n}
nodes:
  stages: {block: stage, repeat: [29, 29, 29], n: $item}
  more: {op: reluu, repeat: 3}
outputs: more
"""


def test_an_error_in_every_instance_of_a_block_is_reported_once():
    errors = errors_of(GROUPED)
    assert len(errors) == 2
    block, node = errors
    assert (block.loc.line, block.loc.col, block.node) == (6, 18, "stages.0.units.0.conv")
    assert block.format().splitlines() == [
        "t.yaml:6:18: error: node 'stages.0.units.0.conv': unknown op 'convv2d' "
        "(in 87 instances of block 'unit': first at 'stages.0.units.0')",
        "  in block 'unit' (t.yaml:5), repeat 0 of instance 'stages.0.units.0' (t.yaml:11)",
        "  in block 'stage' (t.yaml:9), repeat 0 of instance 'stages.0' (t.yaml:13)",
        "  hint: did you mean 'conv2d'?"]
    assert node.format().splitlines()[0] == (
        "t.yaml:14:14: error: node 'more.0': unknown op 'reluu' (in 3 repeats: first at 'more.0')")
    with pytest.raises(SpecError) as e:
        analyze_text(GROUPED, file="t.yaml")
    assert str(e.value).endswith("\n2 errors")


def test_different_problems_at_one_place_stay_apart():
    # Two instances whose widths differ fail the same add with different shapes.
    text = """name: d
inputs: {x: {shape: [N, 4, 8, 8]}}
blocks:
  res:
    params: {c: null}
    nodes:
      conv: {op: conv2d, out_channels: $c, kernel: 1}
      add: {op: add, in: [conv, x]}
nodes:
  a: {block: res, c: 8}
  b: {block: res, c: 16, in: x}
outputs: {y: a, z: b}
"""
    errors = errors_of(text)
    assert [d.node for d in errors] == ["a.add", "b.add"]
    assert not any("instances" in d.format() for d in errors)
