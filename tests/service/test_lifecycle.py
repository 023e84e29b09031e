"""Lifecycle, as Triton's L0_lifecycle checks it: loads with a time limit that
block neither the other models nor shutdown, readiness that follows the
models, and a shutdown under load that loses no call (the server in its own
process, real sockets, bounded loops)."""

from __future__ import annotations

import asyncio
import collections
import shutil
import signal
import time

import grpc
import numpy as np
import pytest
import torch

from server_process import ROOT, Server, write_spec_model
from service.errors import Unavailable
from service.generated import grpc_service_pb2 as pb
from service.generated import grpc_service_pb2_grpc as pb_grpc
from service.repository import Repository
from service_fakes import fake_loader, make_model, run, write_model

# 4,000 layers: compiling and loading it takes a few seconds.
SLOW_TO_LOAD = "name: chain\ninputs: {x: {shape: [N, 4]}}\nnodes:\n  a: {op: linear, out_features: 4, repeat: 4000}\n" \
               "outputs: {y: a}\n"


def lenet_request(batch: int = 1) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="lenet")
    request.inputs.add(name="image", datatype="FP32", shape=[batch, 1, 28, 28])
    request.raw_input_contents.append(np.zeros((batch, 1, 28, 28), np.float32).tobytes())
    return request


@pytest.fixture(scope="module")
def lenet_repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("lifecycle") / "models"
    write_spec_model(root, (ROOT / "specs" / "lenet.yaml").read_text())  # dynamic batching, as compiled by default
    return root


def test_sigterm_under_32_clients_loses_no_call_sent_before_it(lenet_repository):
    server = Server(lenet_repository, "--grace", "30")
    calls: list[tuple[float, float, str, str]] = []  # sent, answered, code, message
    signalled: list[float] = []

    async def clients():
        stop = asyncio.Event()
        async with grpc.aio.insecure_channel(server.url) as channel:  # one connection, as one tritonclient has
            stub = pb_grpc.GRPCInferenceServiceStub(channel)

            async def client():
                while not stop.is_set():
                    sent = time.monotonic()
                    try:
                        await stub.ModelInfer(lenet_request(), timeout=30)
                        code, message = "OK", ""
                    except grpc.aio.AioRpcError as e:
                        code, message = e.code().name, e.details() or ""
                    calls.append((sent, time.monotonic(), code, message))
                    if code != "OK":
                        return  # refused: a real client goes to another server

            tasks = [asyncio.create_task(client()) for _ in range(32)]
            await asyncio.sleep(1.5)
            signalled.append(time.monotonic())
            server.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 60)

    asyncio.run(clients())
    assert server.process.wait(timeout=30) == 0
    exited, at = time.monotonic(), signalled[0]
    before = [c for c in calls if c[0] < at]
    in_flight = [c for c in before if c[1] > at]
    outcomes = collections.Counter(code for _, _, code, _ in before)
    print(f"{len(before)} calls sent before SIGTERM, {len(in_flight)} of them in flight: {dict(outcomes)}")
    assert len(in_flight) >= 16, "too few calls in flight at the signal: the test proves little"
    assert set(outcomes) == {"OK"}, outcomes  # none CANCELLED, none lost (every call has an answer)
    # Calls sent after the signal are served (the admission window) or refused at once.
    after = {(code, message) for sent, _, code, message in calls if sent >= at and code != "OK"}
    assert all(code == "UNAVAILABLE" for code, _ in after), after
    assert any("shutting down" in message for _, message in after), after
    answered = max(end for _, end, code, message in calls if code == "OK" or "shutting down" in message)
    assert exited - answered < 2.0  # the goal is one second; the machine may be busy


def test_a_slow_load_times_out_without_holding_back_the_others_or_shutdown(lenet_repository, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(lenet_repository / "lenet", root / "lenet")
    started = time.monotonic()
    write_spec_model(root, SLOW_TO_LOAD)
    # The chain's load costs about what compiling it just did (3 to 10 s on
    # two cores, idle or busy), lenet's well under a second: a third of the
    # chain's time, at least a second, separates them on a machine of any speed.
    timeout = max(1.0, round((time.monotonic() - started) / 3, 1))
    server = Server(root, "--model-load-timeout", str(timeout))
    assert time.monotonic() - server.started < 30

    async def look():
        async with grpc.aio.insecure_channel(server.url) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            rows = {m.name: m for m in (await stub.RepositoryIndex(pb.RepositoryIndexRequest())).models}
            await stub.ModelInfer(lenet_request())
            return rows, (await stub.ServerReady(pb.ServerReadyRequest())).ready

    rows, ready = asyncio.run(look())
    assert rows["lenet"].state == "READY"
    assert rows["chain"].state == "UNAVAILABLE" and rows["chain"].reason == \
        f"did not load within {timeout:g} s (--model-load-timeout)"
    assert not ready  # strict readiness: a model asked for is not ready
    sent = time.monotonic()
    assert server.stop() == 0  # while the abandoned load still runs in its thread
    assert time.monotonic() - sent < 5

    # SIGTERM in the middle of loading: the server stops without waiting for the load.
    loading = Server(root, expect_ready=False)
    deadline = time.monotonic() + 60
    while "loading models" not in loading.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    sent = time.monotonic()
    assert loading.stop() == 0
    assert time.monotonic() - sent < 5, loading.log()
    assert loading.url is None  # it never got to its ready line


def test_loads_run_at_once_and_a_timed_out_load_frees_its_lock(tmp_path):
    root = tmp_path / "models"
    for name in ("a", "b", "c"):
        write_model(root, name, "slow_load")

    def loader(version_dir, precision):
        time.sleep(0.6)
        return make_model("twoheads")

    async def body():
        repository = Repository(root, device=torch.device("cpu"), loader=loader, load_timeout_s=5, load_threads=4)
        started = time.monotonic()
        assert await repository.load_all() == {}
        together = time.monotonic() - started
        await repository.close()

        slow = Repository(root, device=torch.device("cpu"), loader=loader, load_timeout_s=0.2)
        with pytest.raises(Unavailable, match=r"did not load within 0.2 s"):
            await slow.load("a")
        started = time.monotonic()
        with pytest.raises(Unavailable, match=r"did not load within 0.2 s"):
            await slow.load("a")  # not stuck behind the first one's lock
        assert time.monotonic() - started < 0.6
        await slow.close()
        return together

    assert run(body()) < 1.5  # three loads of 0.6 s each, at once


def test_strict_readiness_follows_the_models_asked_for(repo_dir):
    from service.lifecycle import Lifecycle
    from service.readiness import Readiness

    async def body():
        repository = Repository(repo_dir, device=torch.device("cpu"), loader=fake_loader)
        strict = Readiness(repository, Lifecycle(), strict=True)
        lenient = Readiness(repository, Lifecycle(), strict=False)
        for readiness in (strict, lenient):
            readiness.listening = True
        assert lenient.server_ready() and not strict.server_ready()  # before the loads at start
        await repository.load_all(["twoheads", "int64"])
        strict.started = True
        assert strict.server_ready()
        await repository.unload("int64")  # unloaded on purpose: no longer asked for
        assert strict.server_ready()
        with pytest.raises(Unavailable):
            await repository.load("broken")
        assert not strict.server_ready() and lenient.server_ready()
        assert strict.model_ready("twoheads") and strict.model_ready("twoheads", "2")
        assert not strict.model_ready("twoheads", "7") and not strict.model_ready("broken")
        strict.lifecycle.stopping.set()
        assert not strict.server_ready() and not strict.model_ready("twoheads")
        await repository.close()

    run(body())
