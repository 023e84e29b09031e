"""Two language rules the timeline specs rely on: a node's op chosen by an
expression, and an empty repeat on a node that is switched off."""
from __future__ import annotations

import pytest

from compiler.api import SpecError, analyze_text

SPEC = """
name: tiny
params: {act: relu, extra: []}
variants:
  plain: {}
  swish: {act: silu}
  extra: {extra: [4, 4]}
inputs: {x: {shape: [N, 4, 6, 6]}}
blocks:
  unit:
    params: {act: relu}
    nodes:
      conv: {op: conv2d, out_channels: 4, kernel: 1}
      act: {op: $act}
nodes:
  first: {block: unit, act: $act}
  more: {block: unit, repeat: $extra, when: "${len(extra) > 0}"}
  last: {op: "${'hardswish' if act == 'silu' else 'identity'}"}
outputs: last
"""


def test_op_from_an_expression():
    graph = analyze_text(SPEC, "swish")
    assert graph.nodes["first.act"].op == "silu"
    assert graph.nodes["last"].op == "hardswish"
    assert analyze_text(SPEC, "plain").nodes["first.act"].op == "relu"


def test_op_expression_naming_no_op_is_reported():
    with pytest.raises(SpecError) as e:
        analyze_text(SPEC.replace("act: relu, extra", "act: rleu, extra"), "plain", file="t.yaml")
    assert "unknown op 'rleu'" in str(e.value) and "did you mean 'relu'" in str(e.value)
    with pytest.raises(SpecError) as e:
        analyze_text(SPEC.replace("act: relu, extra", "act: 3, extra"), "plain", file="t.yaml")
    assert "'op' must name an op, got 3" in str(e.value)


def test_switched_off_node_may_repeat_an_empty_list():
    assert not any(n.startswith("more") for n in analyze_text(SPEC, "plain").nodes)
    assert [n for n in analyze_text(SPEC, "extra").nodes if n.startswith("more")] == \
        ["more.0.conv", "more.0.act", "more.1.conv", "more.1.act"]


def test_empty_repeat_still_an_error_when_switched_on():
    with pytest.raises(SpecError) as e:
        analyze_text(SPEC.replace('"${len(extra) > 0}"', "true"), "plain", file="t.yaml")
    assert "repeat must be at least 1, got 0" in str(e.value)


def test_list_comprehension_in_expressions():
    from compiler.frontend.expr import evaluate
    from compiler.errors import RuleError

    env = {"rows": [[1, 2], [3, 3]], "depth": 1.1}
    assert evaluate("${[ceil(r[1] * depth) for r in rows]}", env) == [3, 4]
    assert evaluate("${sum([r[0] for r in rows if r[1] > 2])}", env) == 3
    assert "r" not in env  # the loop name stays local
    with pytest.raises(RuleError):
        evaluate("${[a for a in rows for b in a]}", env)  # one `for` only
