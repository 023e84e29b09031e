"""Repository, configuration and runtime checks alone, without gRPC."""

from __future__ import annotations

import pytest
import torch

from service.config import parse_config, served_versions, settings_of
from service.errors import ConfigError, InvalidInput, NotFound, Unavailable
from service.repository import Repository
from service_fakes import fake_loader, make_model, run, write_model
from service.runtime import Runtime


def test_settings_from_config():
    config = parse_config('name: "m" max_batch_size: 16 dynamic_batching { }')
    s = settings_of(config)
    assert s.dynamic_batching and s.max_batch_size == 16 and s.max_queue_delay_s == 0 and s.precision == "fp32"
    s = settings_of(parse_config('name: "m" max_batch_size: 4 dynamic_batching { max_queue_delay_microseconds: 250 }'))
    assert s.max_queue_delay_s == 250e-6
    s = settings_of(parse_config('name: "m" max_batch_size: 0 dynamic_batching { }'))
    assert not s.dynamic_batching  # no batch dimension, nothing to batch
    with pytest.raises(ConfigError, match="precision is 'fp8'"):
        settings_of(parse_config('name: "m" parameters { key: "precision" value { string_value: "fp8" } }'))
    # What the parser says quotes the file, so it goes to the log (detail), not to clients.
    with pytest.raises(ConfigError, match=r"^config.pbtxt:1:11: not a valid model configuration") as info:
        parse_config('name: "m" instance_groups { }')
    assert "instance_groups" in info.value.detail and "instance_groups" not in str(info.value)


@pytest.mark.parametrize("policy,expected", [
    ("", [3]),
    ("version_policy { latest { num_versions: 2 } }", [2, 3]),
    ("version_policy { all { } }", [1, 2, 3]),
    ("version_policy { specific { versions: [1, 3] } }", [1, 3]),
])
def test_version_policy(policy, expected):
    assert served_versions(parse_config(policy), [3, 1, 2]) == expected


def test_runtime_checks_name_datatype_shape_and_batch():
    runtime = Runtime(make_model("twoheads"), device=torch.device("cpu"), max_batch_size=4)
    assert runtime.check_inputs({"x": ("FP32", (3, 4))}) == 3
    cases = [
        ({"x": ("FP32", (3, 4)), "z": ("FP32", (1,))}, "input 'z' is not an input of model 'twoheads'"),
        ({}, "needs input 'x'"),
        ({"x": ("FP16", (3, 4))}, "expected datatype FP32, got FP16"),
        ({"x": ("FP32", (3, 4, 1))}, r"expected shape \[-1, 4\], got \[3, 4, 1\]"),
        ({"x": ("FP32", (5, 4))}, "batch size 5 exceeds"),
    ]
    for inputs, message in cases:
        with pytest.raises(InvalidInput, match=message):
            runtime.check_inputs(inputs)


def test_load_failure_is_reported_and_others_serve(repo_dir):
    async def body():
        repository = Repository(repo_dir, device=torch.device("cpu"), loader=fake_loader)
        failures = await repository.load_all()
        assert set(failures) == {"broken"} and "linear.weight" in failures["broken"]
        assert repository.get("twoheads").version == "2"
        assert repository.get("twoheads", "1").version == "1"
        with pytest.raises(Unavailable, match="linear.weight"):
            repository.get("broken")
        with pytest.raises(NotFound):
            repository.get("nope")
        with pytest.raises(NotFound, match="no version '5'"):
            repository.get("twoheads", "5")
        await repository.close()

    run(body())


def test_config_and_model_must_agree(tmp_path):
    root = tmp_path / "models"
    write_model(root, "twoheads", "twoheads",
                extra='input [ { name: "image" data_type: TYPE_FP32 dims: [ 4 ] } ]\n')

    async def body():
        repository = Repository(root, device=torch.device("cpu"), loader=fake_loader)
        failures = await repository.load_all()
        assert "lists inputs ['image'], but the model has ['x']" in failures["twoheads"]

    run(body())


def test_missing_config_and_versions(tmp_path):
    root = tmp_path / "models"
    (root / "empty").mkdir(parents=True)
    write_model(root, "noversions", "twoheads", versions=())

    async def body():
        repository = Repository(root, device=torch.device("cpu"), loader=fake_loader)
        failures = await repository.load_all()
        assert "config.pbtxt is missing" in failures["empty"]
        assert "no version directory" in failures["noversions"]

    run(body())


def test_reload_keeps_serving_until_the_swap_and_a_failed_reload_keeps_the_old(tmp_path):
    root = tmp_path / "models"
    model_dir = write_model(root, "m", "twoheads")

    async def body():
        repository = Repository(root, device=torch.device("cpu"), loader=fake_loader)
        await repository.load("m")
        old = repository.get("m")
        (model_dir / "1" / "kind").write_text("broken")
        with pytest.raises(Unavailable, match="previous versions keep serving"):
            await repository.load("m")
        assert repository.get("m") is old  # still the old one, still READY
        (model_dir / "1" / "kind").write_text("twoheads")
        await repository.load("m")
        assert repository.get("m") is not old and old.runtime.module is None  # swapped, old released
        await repository.close()

    run(body())


def test_model_names_never_leave_the_repository(tmp_path):
    root = tmp_path / "models"
    write_model(root, "m", "twoheads")
    write_model(tmp_path, "outside", "twoheads")

    async def body():
        repository = Repository(root, device=torch.device("cpu"), loader=fake_loader)
        for name in ("../outside", "..", ".", "", "m/1", "/etc"):
            with pytest.raises(NotFound):
                await repository.load(name)
        await repository.load("m")
        await repository.close()

    run(body())
