"""What one emit shares between its modules, and what it must not.

Modules of the same class and arguments after the first are copies of it
(compiler.backend.init.Builder), and block instances of the same structure
share the code fx generates (compiler.backend.shared_code).  Each copy must
still be a module of its own: its own tensors, hooks and lists, its weights
drawn as the constructor draws them; an edited graph its own code.
"""
from __future__ import annotations

import torch
import torch.fx as fx
from torch import nn

from compiler.api import compile_file, compile_text, fold_batch_norm
from compiler.backend.init import Builder
from compiler.backend.shared_code import Codes
from common import SPECS

TWICE = """
name: twice
inputs: {x: {shape: [N, 3, 8, 8]}, tokens: {shape: [N, 5], dtype: int64}}
blocks:
  unit:
    inputs: [x]
    nodes:
      conv: {op: conv2d, out_channels: 3, kernel: 3, padding: 1, in: x}
      bn: {op: batchnorm2d}
      act: {op: relu}
    outputs: act
nodes:
  a: {block: unit, in: x}
  b: {block: unit}
  flat: {op: flatten}
  fc1: {op: linear, out_features: 6}
  fc2: {op: linear, out_features: 6}
  e1: {op: embedding, num_embeddings: 10, embedding_dim: 6, in: tokens}
  e2: {op: embedding, num_embeddings: 10, embedding_dim: 6, in: tokens}
  l1: {op: lstm, hidden_size: 6, in: e1}
  l2: {op: lstm, hidden_size: 6, in: e2}
  last1: {op: last_step, in: l1}
  last2: {op: last_step, in: l2}
  join: {op: add, in: [fc2, last1, last2]}
outputs: join
"""


def test_copies_draw_what_torch_draws_constructing_each():
    state = compile_text(TWICE, seed=5).module.state_dict()
    with torch.random.fork_rng():
        torch.manual_seed(5)
        layers = {"a.conv": nn.Conv2d(3, 3, 3, padding=1), "a.bn": nn.BatchNorm2d(3),
                  "b.conv": nn.Conv2d(3, 3, 3, padding=1), "b.bn": nn.BatchNorm2d(3),
                  "fc1": nn.Linear(192, 6), "fc2": nn.Linear(6, 6),
                  "e1": nn.Embedding(10, 6), "e2": nn.Embedding(10, 6),
                  "l1": nn.LSTM(6, 6, batch_first=True), "l2": nn.LSTM(6, 6, batch_first=True)}
    expected = {f"{name}.{k}": v for name, layer in layers.items() for k, v in layer.state_dict().items()}
    assert list(state) == list(expected)
    for key, tensor in expected.items():
        assert torch.equal(state[key], tensor) and state[key].stride() == tensor.stride(), key
    assert not torch.equal(state["a.conv.weight"], state["b.conv.weight"])


def test_each_copy_is_a_module_of_its_own():
    module = compile_text(TWICE, seed=0).module
    a, b = module.a.conv, module.b.conv
    assert a.weight.data_ptr() != b.weight.data_ptr() and a.weight is not b.weight
    assert a._reversed_padding_repeated_twice is not b._reversed_padding_repeated_twice
    calls = []
    a.register_forward_hook(lambda *_: calls.append("a"))
    module(torch.randn(2, 3, 8, 8), torch.zeros(2, 5, dtype=torch.long))
    assert calls == ["a"] and not b._forward_hooks
    before = module.b.bn.running_mean.clone()
    module.a.bn.running_mean.add_(1.0)  # one norm's statistics move, not the other's
    assert torch.equal(module.b.bn.running_mean, before)
    # nn.LSTM keeps its weights in a list beside its registry: constructed, not copied
    for lstm in (module.l1, module.l2):
        assert all(w is getattr(lstm, name) for w, name in zip(lstm._flat_weights, lstm._flat_weights_names))


def test_a_value_of_another_type_is_another_module():
    builder = Builder(None)
    assert repr(builder.build(nn.Dropout, (0,), {})) == repr(nn.Dropout(0))
    assert repr(builder.build(nn.Dropout, (0.0,), {})) == repr(nn.Dropout(0.0)) != repr(nn.Dropout(0))


def test_equal_blocks_share_their_generated_code_until_one_is_edited():
    module = compile_file(SPECS / "resnet.yaml", variant="50").module.eval()
    first, second = module.layer2[1], module.layer2[2]
    code = first.graph.python_code(root_module="self")
    assert second.graph.python_code(root_module="self") is code
    assert module.layer2[0].graph.python_code(root_module="self") is not code  # it downsamples

    plain = fx.Graph()  # what fx generates for the same graph without sharing
    plain.output(plain.graph_copy(first.graph, {}))
    assert plain.python_code(root_module="self").src == code.src

    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = module(x)
    fold_batch_norm(module)  # edits every block's graph
    assert "bn1" not in first.code and first.code == second.code
    assert first.graph.python_code(root_module="self") is not code
    with torch.no_grad():
        torch.testing.assert_close(module(x), before, atol=1e-5, rtol=1e-4)


def test_graphs_that_generate_other_code_do_not_share_it():
    codes = Codes()
    calls = [
        (torch.sub, ("x", "y"), {}),
        (torch.sub, ("y", "x"), {}),
        (torch.sub, ("x", "y"), {"alpha": 2}),
        (torch.add, ("x", "y"), {}),
        (torch.sub, ("x", 1), {}),
        (torch.sub, ("x", 1.0), {}),
        (torch.sub, ("x", True), {}),
    ]

    def graph(g: fx.Graph, fn, args, kwargs) -> fx.Graph:
        values = {"x": g.placeholder("x"), "y": g.placeholder("y")}
        g.output(g.call_function(fn, tuple(values.get(a, a) if isinstance(a, str) else a for a in args), kwargs))
        return g

    sources = []
    for call in calls:
        shared = graph(codes.graph(), *call).python_code(root_module="self").src
        assert shared == graph(fx.Graph(), *call).python_code(root_module="self").src, call
        sources.append(shared)
    assert len(set(sources)) == len(calls)
    again = graph(codes.graph(), *calls[0]).python_code(root_module="self")
    assert again is graph(codes.graph(), *calls[0]).python_code(root_module="self")
