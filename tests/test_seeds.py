"""Initialisation draws from a generator of the compiler's own: torch's
global random state is never touched, and a seed gives the weights torch's
default initialisation gives after torch.manual_seed with that seed."""
from __future__ import annotations

import torch
from torch import nn

from compiler.api import compile_text

SPEC = """
name: seeded
inputs: {x: {shape: [N, 3, 8, 8]}, tokens: {shape: [N, 5], dtype: int64}}
nodes:
  conv: {op: conv2d, out_channels: 4, kernel: 3, in: x}
  bn: {op: batchnorm2d}
  flat: {op: flatten}
  fc: {op: linear, out_features: 6}
  embed: {op: embedding, num_embeddings: 10, embedding_dim: 8, in: tokens}
  attn: {op: multi_head_attention, heads: 2}
  lstm: {op: lstm, hidden_size: 6}
  last: {op: last_step}
  join: {op: add, in: [fc, last]}
outputs: join
"""


def torch_default(seed: int) -> dict[str, torch.Tensor]:
    """The same layers built by torch.nn in the same order after manual_seed."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        layers = {"conv": nn.Conv2d(3, 4, 3), "bn": nn.BatchNorm2d(4), "fc": nn.Linear(144, 6),
                  "embed": nn.Embedding(10, 8),
                  "attn": nn.MultiheadAttention(8, 2, batch_first=True), "lstm": nn.LSTM(8, 6, batch_first=True)}
    return {f"{name}.{k}": v for name, layer in layers.items() for k, v in layer.state_dict().items()}


def test_seed_gives_torchs_default_initialisation():
    state = compile_text(SPEC, seed=7).module.state_dict()
    expected = torch_default(7)
    assert state.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(state[key], tensor), key
    assert not torch.equal(compile_text(SPEC, seed=8).module.state_dict()["conv.weight"], expected["conv.weight"])


def test_global_random_state_untouched():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    compile_text(SPEC, seed=0)
    compile_text(SPEC, seed=None)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_no_seed_differs_each_time():
    a = compile_text(SPEC, seed=None).module.state_dict()["fc.weight"]
    b = compile_text(SPEC, seed=None).module.state_dict()["fc.weight"]
    assert not torch.equal(a, b)


def test_a_servers_warm_up_builds_and_leaves_the_global_generator_alone():
    from compiler.api import warm_up

    before = torch.get_rng_state()
    warm_up()  # a spec it carries: a mistake in it would fail every server's start
    assert torch.equal(torch.get_rng_state(), before)


def test_draws_are_skipped_only_while_building_and_only_in_the_building_thread():
    # Modules are built on the meta device with torch.nn.init's functions
    # skipped; a thread drawing its own weights meanwhile, and this thread
    # afterwards, draw as usual.
    import threading

    stop = threading.Event()
    empty_draws = []

    def draw():
        while not stop.is_set():
            w = torch.zeros(64)
            nn.init.uniform_(w, 1.0, 2.0)
            empty_draws.append(bool((w == 0).any()))

    other = threading.Thread(target=draw)
    other.start()
    try:
        modules = [compile_text(SPEC, seed=3).module for _ in range(3)]
    finally:
        stop.set()
        other.join()
    assert empty_draws and not any(empty_draws)
    w = torch.zeros(64)
    nn.init.normal_(w)
    assert bool((w != 0).all())
    expected = torch_default(3)
    for module in modules:
        params = dict(module.named_parameters())
        assert params and all(p.requires_grad and not p.is_meta for p in params.values())
        for key, value in module.state_dict().items():
            assert value.stride() == expected[key].stride(), key
