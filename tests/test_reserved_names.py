"""A node named like a method of torch.nn.Module (`half`, `forward`, `to`)
or a Python keyword would break the compiled module at run time; such names
are an error at their line, before anything is built. The list the check
reads is held to the installed torch's own attributes."""
from __future__ import annotations

import keyword

import pytest
import torch
import torch.fx as fx

from compiler.api import analyze_text, compile_text
from compiler.errors import SpecError
from compiler.frontend.reserved import MODULE_ATTRIBUTES


def _spec(node: str = "conv", input_name: str = "x") -> str:
    return (f"name: t\ninputs: {{{input_name}: {{shape: [N, 3, 8, 8]}}}}\nnodes:\n"
            f"  {node}: {{op: conv2d, out_channels: 3, kernel: 1}}\n  y: {{op: relu}}\noutputs: y\n")


def test_the_list_holds_every_attribute_of_a_module_and_a_graph_module():
    graph_module = fx.GraphModule(torch.nn.Module(), fx.Graph())
    attributes = (set(dir(torch.nn.Module())) | set(dir(graph_module)))
    # dunders (Python's) and names torch._dynamo adds to the class once torch.compile has run ('___...')
    attributes = {a for a in attributes if not a.startswith("__")}
    assert attributes <= MODULE_ATTRIBUTES, sorted(attributes - MODULE_ATTRIBUTES)


@pytest.mark.parametrize("name", ["half", "forward", "to", "train", "cuda", "state_dict"])
def test_a_node_named_like_a_module_method_is_an_error_at_its_line(name):
    with pytest.raises(SpecError) as caught:
        analyze_text(_spec(name), file="t.yaml")
    assert str(caught.value).splitlines()[0] == (
        f"t.yaml:4:3: error: node name '{name}' is taken by torch.nn.Module (its attribute '{name}'), "
        "which the compiled module needs")


@pytest.mark.parametrize("name", ["class", "for", "lambda"])
def test_a_keyword_cannot_name_a_node_or_an_input(name):
    with pytest.raises(SpecError) as caught:
        analyze_text(_spec(name), file="t.yaml")
    assert "is a Python keyword" in str(caught.value)
    with pytest.raises(SpecError) as caught:
        analyze_text(_spec(input_name=name), file="t.yaml")
    assert f"input name '{name}' is a Python keyword" in str(caught.value)


def test_names_near_the_reserved_ones_compile_and_run():
    for name in ("half_", "to_rgb", "forward_conv", "classes"):
        assert keyword.iskeyword(name) is False and name not in MODULE_ATTRIBUTES
        model = compile_text(_spec(name))
        assert model.module(torch.randn(1, 3, 8, 8)).shape == (1, 3, 8, 8)
