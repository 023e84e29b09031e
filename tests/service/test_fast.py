"""The fast mode of a model (service/fast.py, service/cuda_graphs.py): what
config.pbtxt asks for, checked, and its outputs against the plain module's.

CUDA graphs need a GPU to be captured; here the capture alone is replaced by
one that keeps the graph's contract on the CPU (fixed output buffers that
each replay overwrites from what the fixed input buffers hold), so the
padding, the choice of graph and the slicing run as they do on a GPU."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

from compiler.api import compile_text
from compiler.tools.artifact import CONFIG_FILE
from server_process import conv_net_spec, spread_batch_norm_statistics, write_spec_model
from service.config import parse_config, read_config, settings_of
from service.cuda_graphs import PaddedGraphs
from service.errors import ConfigError
from service.fast import FastOptions, GraphSpec, fast_options_of
from service.repository import Repository
from service.runtime import Runtime
from service_fakes import make_model, run

CPU = torch.device("cpu")

# Convolutions with batch norms, a residual add and a classifier; 8x8 images.
NET = conv_net_spec(8)


def net():
    return spread_batch_norm_statistics(compile_text(NET))


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def as_tuple(outputs):
    return (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)


class EmulatedCapture:
    """torch.cuda.graph's contract on the CPU: replay() recomputes from the
    static inputs into the same output tensors."""

    def __init__(self):
        self.replays = 0

    def __call__(self, fn, inputs):
        outputs = tuple(t.clone() for t in as_tuple(fn(*inputs)))

        def replay():
            self.replays += 1
            for out, new in zip(outputs, as_tuple(fn(*inputs))):
                out.copy_(new)

        return replay, outputs


# --- configuration -------------------------------------------------------

FULL = """name: "m" max_batch_size: 16
optimization {
  graph { level: 1 }
  cuda { graphs: true graph_spec { batch_size: 1 } graph_spec { batch_size: 8 input { key: "ids" value { dim: [5] } } } }
  execution_accelerators {
    gpu_execution_accelerator { name: "torch_compile" parameters { key: "mode" value: "max-autotune-no-cudagraphs" } }
    cpu_execution_accelerator { name: "torch_compile" parameters [ { key: "fullgraph" value: "true" },
                                                                   { key: "dynamic" value: "false" } ] }
  }
}
parameters { key: "memory_format" value { string_value: "channels_last" } }
"""


def test_options_from_config():
    assert fast_options_of(parse_config(FULL)) == FastOptions(
        fold_batch_norm=True, channels_last=True,
        compile={"cuda": {"mode": "max-autotune-no-cudagraphs"}, "cpu": {"fullgraph": True, "dynamic": False}},
        cuda_graphs=True, graph_specs=(GraphSpec(1), GraphSpec(8, {"ids": (5,)})))
    assert not fast_options_of(parse_config('name: "m"')).any
    assert settings_of(parse_config(FULL)).fast.fold_batch_norm


@pytest.mark.parametrize("text,message", [
    ("optimization { graph { level: 2 } }", "optimization graph level is 2; expected -1 (off), 0 (the default: off), 1 (fold"),
    ('parameters { key: "memory_format" value { string_value: "nhwc" } }',
     "parameter memory_format is 'nhwc'; expected contiguous or channels_last"),
    ('optimization { execution_accelerators { gpu_execution_accelerator { name: "tensorrt" } } }',
     "gpu_execution_accelerator 'tensorrt' is not known; netspec has 'torch_compile'"),
    ('optimization { execution_accelerators { gpu_execution_accelerator { name: "onnxruntime" } } }',
     "gpu_execution_accelerator 'onnxruntime' is not known; netspec has 'torch_compile'"),
    ('optimization { execution_accelerators { cpu_execution_accelerator { name: "openvino" } } }',
     "cpu_execution_accelerator 'openvino' is not known; netspec has 'torch_compile' and 'onnxruntime'"),
    ('optimization { execution_accelerators { cpu_execution_accelerator [ { name: "torch_compile" }, '
     '{ name: "torch_compile" } ] } }', "cpu_execution_accelerator lists 'torch_compile' and 'torch_compile'; a model"),
    ('optimization { execution_accelerators { cpu_execution_accelerator [ { name: "onnxruntime" }, '
     '{ name: "torch_compile" } ] } }', "cpu_execution_accelerator lists 'onnxruntime' and 'torch_compile'; a model"),
    ('optimization { execution_accelerators { cpu_execution_accelerator { name: "onnxruntime" '
     'parameters { key: "threads" value: "4" } } } }',
     "cpu_execution_accelerator 'onnxruntime': parameter 'threads' is not known; it takes none"),
    ('optimization { execution_accelerators { gpu_execution_accelerator { name: "torch_compile" '
     'parameters { key: "mode" value: "fastest" } } } }', "mode is 'fastest'; expected one of default, "),
    ('optimization { execution_accelerators { gpu_execution_accelerator { name: "torch_compile" '
     'parameters { key: "fullgraph" value: "yes" } } } }', "fullgraph is 'yes'; expected true or false"),
    ('optimization { execution_accelerators { gpu_execution_accelerator { name: "torch_compile" '
     'parameters { key: "options" value: "{}" } } } }', "parameter 'options' is not known; expected mode, "),
    ('optimization { execution_accelerators { gpu_execution_accelerator { name: "torch_compile" '
     'parameters { key: "backend" value: "tvm2" } } } }', "backend is 'tvm2'; expected one of "),
    ("optimization { cuda { graph_spec { batch_size: 4 } } }", "has graph_spec but not graphs: true"),
    ("optimization { cuda { graphs: true graph_spec { batch_size: 0 } } }",
     "graph_spec batch_size is 0; expected 1 to max_batch_size 16"),
    ("optimization { cuda { graphs: true graph_spec { batch_size: 32 } } }",
     "graph_spec batch_size is 32; expected 1 to max_batch_size 16"),
    ("optimization { cuda { graphs: true graph_spec [ { batch_size: 4 }, { batch_size: 4 } ] } }",
     "graph_spec batch_size 4 is given twice"),
    ('optimization { cuda { graphs: true } execution_accelerators { gpu_execution_accelerator { '
     'name: "torch_compile" parameters { key: "mode" value: "reduce-overhead" } } } }',
     "mode 'reduce-overhead' captures CUDA graphs of its own"),
])
def test_a_wrong_value_is_named(text, message):
    with pytest.raises(ConfigError) as info:
        fast_options_of(parse_config('name: "m" max_batch_size: 16 ' + text))
    assert str(info.value).startswith("model 'm': ") and message in str(info.value)


def test_onnxruntime_options():
    text = 'name: "m" max_batch_size: 4 optimization { execution_accelerators { %s } }'
    cpu_ort = 'cpu_execution_accelerator { name: "onnxruntime" }'
    assert fast_options_of(parse_config(text % cpu_ort)) == FastOptions(onnxruntime=True)
    both = fast_options_of(parse_config(text % ('gpu_execution_accelerator { name: "torch_compile" } ' + cpu_ort)))
    assert both.onnxruntime and both.compile == {"cuda": {}} and both.any
    with pytest.raises(ConfigError, match="'onnxruntime' runs the model in fp32; parameter precision is 'bf16'"):
        settings_of(parse_config(text % cpu_ort + ' parameters { key: "precision" value { string_value: "bf16" } }'))


def test_onnxruntime_missing_is_named_with_what_to_install(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else find_spec(name, *a))
    with pytest.raises(ConfigError, match=r"'onnxruntime': needs the onnxruntime package: pip install 'netspec\[onnx\]'"):
        fast_options_of(parse_config('name: "m" optimization { execution_accelerators { '
                                     'cpu_execution_accelerator { name: "onnxruntime" } } }'))


def test_graphs_need_a_batching_model():
    with pytest.raises(ConfigError, match="cuda graphs need a batching model"):
        fast_options_of(parse_config('name: "m" max_batch_size: 0 optimization { cuda { graphs: true } }'))


def test_fields_netspec_does_not_act_on_fail_the_load_naming_them():
    with pytest.raises(ConfigError) as info:
        parse_config('name: "m" optimization { priority: PRIORITY_MAX }')
    assert "priority" in info.value.detail


def test_compile_fast_writes_what_the_server_reads(cli, tmp_path, specs):
    done = cli("compile", specs / "lenet.yaml", "--repository", tmp_path, "--fast", "--max-batch-size", "32", "--quiet")
    assert done.code == 0, done.err
    options = fast_options_of(read_config(tmp_path / "lenet" / CONFIG_FILE))
    assert options == FastOptions(fold_batch_norm=True, channels_last=True, compile={"cuda": {}}, cuda_graphs=True)
    done = cli("compile", specs / "lenet.yaml", "--repository", tmp_path, "--quiet")
    assert not fast_options_of(read_config(tmp_path / "lenet" / CONFIG_FILE)).any
    # Sequences of any length T: no graph can be captured without a length, so --fast asks for none.
    done = cli("compile", specs / "rnn.yaml", "--repository", tmp_path, "--fast", "--quiet")
    assert done.code == 0, done.err
    options = fast_options_of(read_config(tmp_path / "rnn" / CONFIG_FILE))
    assert options.fold_batch_norm and not options.cuda_graphs and not options.channels_last


# --- outputs against the plain module ----------------------------------

def test_folding_and_channels_last_equal_the_plain_module():
    model = net()
    plain = Runtime(copy.deepcopy(model), device=CPU, max_batch_size=8)
    fast = Runtime(model, device=CPU, max_batch_size=8, fast=FastOptions(fold_batch_norm=True, channels_last=True))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.module.modules())
    assert fast.module.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = images(4)
    (want,), _ = plain.run([x])
    (got,), _ = fast.run([x])
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)  # measured 1e-7


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_within_its_tolerance(precision):
    model = net()
    plain = Runtime(copy.deepcopy(model), device=CPU, max_batch_size=8)
    fast = Runtime(model, device=CPU, precision=precision, max_batch_size=8,
                   fast=FastOptions(fold_batch_norm=True, channels_last=True))
    x = images(8)
    (want,), _ = plain.run([x])
    (got,), _ = fast.run([x])
    assert got.dtype == torch.float32  # the declared dtype: the runtime casts at the edges
    # bf16 keeps 8 bits of mantissa (fp16 11): 2e-2 of the outputs' scale
    # covers both (bench/fast_equivalence.py, this net: bf16 3.2e-3 and fp16
    # 3.7e-4 of outputs up to 0.58, i.e. 5.5e-3 and 6e-4 of the scale).
    assert (got - want).abs().max() <= 2e-2 * want.abs().max()


# --- CUDA graphs: padding and slicing -------------------------------------

def graphed(sizes, **fast):
    capture = EmulatedCapture()
    options = FastOptions(cuda_graphs=True, graph_specs=tuple(GraphSpec(s) for s in sizes), **fast)
    runtime = Runtime(net(), device=CPU, max_batch_size=8, fast=options, capture=capture)
    return runtime, capture


def test_a_batch_is_padded_to_the_next_captured_size_and_sliced_back():
    plain = Runtime(net(), device=CPU, max_batch_size=8)
    runtime, capture = graphed([1, 2, 4], fold_batch_norm=True, channels_last=True)
    assert runtime.graphs.sizes == [1, 2, 4]
    for n, graph in [(1, 1), (2, 2), (3, 4), (4, 4)]:
        x = images(n, seed=n)
        before = capture.replays
        (got,), _ = runtime.run([x])
        assert capture.replays == before + 1
        (want,), _ = plain.run([x])
        assert got.shape == (n, 5)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # Larger than every graph: run as it is, and still right.
    before = capture.replays
    (got,), _ = runtime.run([images(7)])
    assert capture.replays == before
    torch.testing.assert_close(got, plain.run([images(7)])[0][0], atol=1e-5, rtol=0)


def test_padding_rows_are_zeroed_and_results_outlive_the_next_replay():
    runtime, _ = graphed([4])
    first = images(4, seed=1)
    (a,), _ = runtime.run([first])
    kept = a.clone()
    (b,), _ = runtime.run([images(2, seed=2)])
    static = runtime.graphs.graphs[0].inputs[0]
    assert torch.equal(static[2:], torch.zeros_like(static[2:]))  # nothing of the first caller's batch is left
    assert torch.equal(a, kept) and b.shape == (2, 5)


def test_a_batch_of_other_dimensions_runs_without_a_graph():
    graphs = PaddedGraphs(lambda x: x * 2, [2, 4], lambda n: [torch.zeros(n, 3)], EmulatedCapture())
    assert graphs.run([torch.ones(1, 3)])[0].tolist() == [[2.0, 2.0, 2.0]]
    assert graphs.run([torch.ones(1, 5)]) is None  # no graph of width 5
    assert graphs.run([torch.ones(1, 3, dtype=torch.float64)]) is None
    assert graphs.run([torch.ones(5, 3)]) is None


def test_graph_spec_gives_the_variable_dimensions():
    capture = EmulatedCapture()
    options = FastOptions(cuda_graphs=True, graph_specs=(GraphSpec(4, {"ids": (5,)}),))
    runtime = Runtime(make_model("int64"), device=CPU, max_batch_size=8, fast=options, capture=capture)
    ids = torch.arange(15).reshape(3, 5)
    (got,), _ = runtime.run([ids])
    assert capture.replays == 1 and torch.equal(got, ids * 2)
    (got,), _ = runtime.run([torch.arange(12).reshape(2, 6)])  # T = 6: not captured
    assert capture.replays == 1 and got.shape == (2, 6)


@pytest.mark.parametrize("spec,message", [
    (None, "input 'ids' has dims \\[-1\\] past the batch one; give the variable ones in graph_spec input"),
    (GraphSpec(4, {"tokens": (5,)}), "input 'tokens' is not an input of the model \\(its inputs: ids\\)"),
    (GraphSpec(4, {"ids": (5, 2)}), "input 'ids' has dims \\[-1\\] past the batch one; graph_spec input gives \\[5, 2\\]"),
])
def test_graph_spec_that_does_not_fit_the_model(spec, message):
    options = FastOptions(cuda_graphs=True, graph_specs=(spec,) if spec else ())
    with pytest.raises(ConfigError, match=message):
        Runtime(make_model("int64"), device=CPU, max_batch_size=8, fast=options)  # on a CPU too


def test_cuda_options_are_skipped_on_a_cpu_with_a_warning(caplog):
    options = FastOptions(fold_batch_norm=True, compile={"cuda": {}}, cuda_graphs=True)
    with caplog.at_level(logging.WARNING, logger="netspec.serve"):
        runtime = Runtime(net(), device=CPU, max_batch_size=8, fast=options)
    assert runtime.graphs is None and runtime.forward is runtime.module
    assert "model 'net' runs on cpu: gpu_execution_accelerator torch_compile and cuda graphs are for CUDA " \
           "devices, not applied" in caplog.text
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in runtime.module.modules())  # folding applies


def test_the_cpu_accelerators_a_model_on_a_gpu_skips_are_named_as_configured():
    assert FastOptions(compile={"cuda": {}}, cuda_graphs=True).cpu_accelerators == []
    assert FastOptions(onnxruntime=True).cpu_accelerators == ["cpu_execution_accelerator onnxruntime"]
    assert FastOptions(compile={"cpu": {}, "cuda": {}}).cpu_accelerators == ["cpu_execution_accelerator torch_compile"]


# --- a repository ---------------------------------------------------------

def test_a_wrong_fast_mode_fails_that_model_alone(tmp_path):
    write_spec_model(tmp_path, NET, "good", fast=True)
    for name, extra in [("level", "optimization { graph { level: 5 } }"),
                        ("accelerator", 'optimization { execution_accelerators { cpu_execution_accelerator { '
                                        'name: "openvino" } } }')]:
        write_spec_model(tmp_path, NET, name)
        with open(tmp_path / name / CONFIG_FILE, "a") as f:
            f.write(extra + "\n")

    async def body():
        repository = Repository(tmp_path, device=CPU)
        failures = await repository.load_all()
        assert sorted(failures) == ["accelerator", "level"]
        assert "model 'level': optimization graph level is 5" in failures["level"]
        assert "cpu_execution_accelerator 'openvino' is not known" in failures["accelerator"]
        runtime = repository.get("good").runtime
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in runtime.module.modules())
        await repository.close()

    run(body())
