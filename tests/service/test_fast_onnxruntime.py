"""ONNX Runtime as a model's CPU execution accelerator (service/onnx_forward.py):
the session made at load answers as the plain module does, at any batch size
and with its batch norms folded; a model torch.onnx cannot export fails its
load with the exporter's reason."""

from __future__ import annotations

import copy

import pytest
import torch

from compiler.api import compile_file, compile_text
from common import ROOT
from server_process import conv_net_spec, spread_batch_norm_statistics
from service.config import parse_config, settings_of
from service.errors import ConfigError
from service.onnx_forward import OnnxForward
from service.runtime import Runtime

pytest.importorskip("onnxruntime")

CPU = torch.device("cpu")
CONFIG = """name: "m" max_batch_size: 8
optimization {
  graph { level: %d }
  execution_accelerators { cpu_execution_accelerator { name: "onnxruntime" } }
}
"""


def plain_and_accelerated(model, config: str) -> tuple[Runtime, Runtime]:
    """The model as loaded without a fast mode, and with `config`'s (its session checked to be made)."""
    plain = Runtime(copy.deepcopy(model), device=CPU, max_batch_size=8)
    accelerated = Runtime(model, device=CPU, max_batch_size=8, fast=settings_of(parse_config(config)).fast)
    assert isinstance(accelerated.forward, OnnxForward)
    return plain, accelerated


def assert_equal_to_scale(got: torch.Tensor, want: torch.Tensor) -> None:
    # other kernels, other float sums: 1e-7 of the scale measured (tests/export: 1e-4 allowed)
    torch.testing.assert_close(got, want, atol=1e-5 * float(want.abs().max()), rtol=0)


@pytest.mark.parametrize("level", [0, 1])
def test_onnxruntime_answers_as_the_plain_module(level):
    plain, accelerated = plain_and_accelerated(spread_batch_norm_statistics(compile_text(conv_net_spec(8))),
                                               CONFIG % level)
    generator = torch.Generator().manual_seed(0)
    for n in (1, 3, 8):  # the batch dimension stays dynamic in the session
        x = torch.randn(n, 3, 8, 8, generator=generator)
        (want,), _ = plain.run([x])
        (got,), timings = accelerated.run([x])
        assert got.shape == want.shape == (n, 5) and got.dtype == torch.float32
        assert_equal_to_scale(got, want)
        assert timings.compute_infer > 0


def test_channels_last_is_left_to_the_gpu_beside_it():
    # one repository for both devices: channels_last for torch on a GPU, ONNX Runtime on the CPU
    config = (CONFIG % 1) + 'parameters { key: "memory_format" value { string_value: "channels_last" } }\n'
    fast = settings_of(parse_config(config)).fast
    assert fast.channels_last and fast.onnxruntime
    plain, accelerated = plain_and_accelerated(spread_batch_norm_statistics(compile_text(conv_net_spec(8))), config)
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    (want,), _ = plain.run([x])
    (got,), _ = accelerated.run([x])
    assert_equal_to_scale(got, want)


def test_torchs_copy_of_the_weights_is_released_once_the_session_holds_its_own():
    import gc
    import weakref

    first = compile_text(conv_net_spec(8))
    weight = weakref.ref(first.module.conv1.weight)
    runtime = Runtime(first, device=CPU, max_batch_size=8, fast=settings_of(parse_config(CONFIG % 0)).fast)
    # onnxscript's rewriter keeps the last graph it optimised: another export lets go of the first's
    Runtime(compile_text(conv_net_spec(4)), device=CPU, max_batch_size=8, fast=settings_of(parse_config(CONFIG % 0)).fast)
    del first
    gc.collect()
    assert runtime.module is None and weight() is None
    (y,), _ = runtime.run([torch.randn(2, 3, 8, 8)])
    assert y.shape == (2, 5)


def test_token_ids_reach_the_session_as_integers():
    plain, accelerated = plain_and_accelerated(compile_file(ROOT / "specs" / "rnn.yaml", "lstm"), CONFIG % 0)
    ids = [torch.randint(0, 2, (2, 5), generator=torch.Generator().manual_seed(1))]
    for want, got in zip(plain.run(ids)[0], accelerated.run(ids)[0]):
        assert_equal_to_scale(got, want)


def test_a_model_torch_onnx_cannot_export_fails_its_load_saying_why():
    model = compile_file(ROOT / "specs" / "rnn.yaml", "rnn")  # torch.nn.RNN: T fixed (docs/deploy.md, note 1)
    fast = settings_of(parse_config(CONFIG % 0)).fast
    with pytest.raises(ConfigError) as info:
        Runtime(model, device=CPU, max_batch_size=8, fast=fast)
    message = str(info.value)
    assert message.startswith("model 'rnn': cpu_execution_accelerator 'onnxruntime': torch.export fixes dimension T")
    assert "triton-python" in message  # the exporter's hint comes along
