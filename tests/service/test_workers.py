"""`netspec serve --workers 2` in a process of its own, as a user starts it:
requests from separate connections reach both workers and get the model's
answers, the one metrics scrape adds both workers' figures up, SIGTERM
stops every process, a worker that dies stops the group, and a port some
other server holds is refused (with or without --workers)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from common import ROOT

grpcclient = pytest.importorskip("tritonclient.grpc")
parser = pytest.importorskip("prometheus_client.parser")

from server_process import Server, write_spec_model  # noqa: E402

if not Path("/proc/self/maps").exists():
    pytest.skip("reads processes from Linux's /proc", allow_module_level=True)

REQUESTS = 64
LABELS = {"model": "lenet", "version": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> set[int]:
    """The live processes whose parent is `pid`."""
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            if int(fields["PPid"]) == pid and not fields["State"].startswith("Z"):
                found.add(int(status.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        return not Path(f"/proc/{pid}/status").read_text().split("State:\t", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def wait_gone(pids, timeout: float = 10) -> set[int]:
    deadline = time.monotonic() + timeout
    while (left := {p for p in pids if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """lenet, compiled here as `netspec compile` writes it, served by two
    workers with their metrics merged on one port."""
    root = tmp_path_factory.mktemp("workers") / "models"
    write_spec_model(root, (ROOT / "specs" / "lenet.yaml").read_text())
    metrics_port = free_port()
    server = Server(root, "--workers", "2", "--metrics-port", str(metrics_port))
    yield server, f"http://127.0.0.1:{metrics_port}/metrics", root
    if server.process.poll() is None:
        server.stop(signal.SIGKILL)


def scrape(url: str) -> dict:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def samples(family, name: str) -> list:
    return [s for s in family.samples if s.name == name]


def test_requests_from_separate_connections_reach_both_workers(served):
    server, metrics_url, repository = served
    workers = children(server.process.pid)
    assert len(workers) == 2, server.log()

    from compiler.tools.artifact import load_version

    model = load_version(repository / "lenet" / "1").module.eval()
    images = np.random.default_rng(0).standard_normal((REQUESTS, 1, 1, 28, 28)).astype(np.float32)

    def infer(image: np.ndarray) -> np.ndarray:
        # A channel of its own, off gRPC's shared subchannel pool: a connection of its own,
        # which the kernel hands to one of the workers.
        with server.client(channel_args=[("grpc.use_local_subchannel_pool", 1)]) as client:
            x = grpcclient.InferInput("image", list(image.shape), "FP32")
            x.set_data_from_numpy(image)
            return client.infer("lenet", [x]).as_numpy("logits")

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(infer, images))
    with torch.inference_mode():
        expected = model(torch.from_numpy(images.reshape(REQUESTS, 1, 28, 28))).numpy()
    np.testing.assert_allclose(np.concatenate(answers), expected, rtol=1e-4, atol=1e-5)

    families = scrape(metrics_url)
    # Each worker's own count, by its pid: both served, and together they served every request.
    shares = {int(s.labels["pid"]): s.value for s in samples(families["netspec_process_request_success"],
                                                                "netspec_process_request_success")}
    assert set(shares) == workers and server.process.pid not in shares
    assert all(count > 0 for count in shares.values()), shares
    assert sum(shares.values()) == REQUESTS
    assert {int(s.labels["pid"]) for s in families["netspec_process_info"].samples} == workers

    # The Triton families are the two workers' figures added up, under the same names and labels.
    def value(name: str, sample: str | None = None, **labels) -> float:
        found = [s.value for s in samples(families[name], sample or name) if s.labels == {**LABELS, **labels}]
        assert len(found) == 1, (name, labels, families[name].samples)
        return found[0]

    assert families["nv_inference_request_success"].type == "unknown"  # untyped, as a single server writes it
    assert value("nv_inference_request_success") == REQUESTS
    assert value("nv_inference_count") == REQUESTS
    assert value("nv_inference_request_failure", reason="OTHER") == 0
    assert 2 <= value("nv_inference_exec_count") <= REQUESTS  # both executed; batches may join requests
    assert value("nv_inference_pending_request_count") == 0
    histogram = "nv_inference_first_response_histogram_ms"
    assert value(histogram, histogram + "_count") == REQUESTS
    assert value(histogram, histogram + "_bucket", le="+Inf") == REQUESTS
    assert value(histogram, histogram + "_sum") == pytest.approx(value("nv_inference_request_duration_us") / 1e3,
                                                                 rel=1e-3, abs=0.01)


def test_the_parent_forks_before_loading_grpc_or_torch(served):
    server, _, _ = served
    maps = lambda pid: Path(f"/proc/{pid}/maps").read_text()  # noqa: E731
    assert "cygrpc" not in maps(server.process.pid) and "libtorch" not in maps(server.process.pid)
    for worker in children(server.process.pid):
        assert "cygrpc" in maps(worker) and "libtorch" in maps(worker)


def test_a_port_another_server_holds_is_refused(served, cli, tmp_path):
    server, _, _ = served
    port = server.url.rsplit(":", 1)[1]
    for extra in ([], ["--workers", "2"]):  # a single server, and a group that would otherwise join by SO_REUSEPORT
        run = cli("serve", "--repository", tmp_path, "--port", port, "--metrics-port", "0", *extra)
        assert run.code == 2, run.err
        assert run.err == f"netspec: error: cannot serve on 127.0.0.1:{port}: port {port} is already in use " \
                          f"by another server\n"
    # A listener of another program with SO_REUSEPORT set, as gRPC sets by default: not joined either.
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = str(other.getsockname()[1])
        run = cli("serve", "--repository", tmp_path, "--port", port, "--metrics-port", "0", "--workers", "2")
    assert run.code == 2 and f"port {port} is already in use by another server" in run.err, run.err


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "--workers 0: must be between 1 and 64"),
    (["--workers", "-3"], "--workers -3: must be between 1 and 64"),
    (["--workers", "2", "--model-control-mode", "explicit"],
     "--model-control-mode explicit cannot be used with --workers: it would reach one worker only"),
])
def test_workers_flag_is_checked(cli, tmp_path, args, message):
    run = cli("serve", "--repository", tmp_path, "--metrics-port", "0", *args)
    assert run.code == 2 and run.err == f"netspec: error: {message}\n"


def test_a_worker_that_dies_stops_the_group(tmp_path):
    """Killed while it starts (seconds of imports: the test needs no second
    group of loaded workers); the parent takes the same path whenever one dies."""
    server = Server(tmp_path, "--workers", "2", expect_ready=False)
    try:
        deadline = time.monotonic() + 30
        while len(workers := sorted(children(server.process.pid))) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(workers) == 2, server.log()
        os.kill(workers[0], signal.SIGKILL)
        assert server.process.wait(timeout=30) == 1
    finally:
        server.stop(signal.SIGKILL)
    assert not wait_gone(workers), "a worker outlived its group"
    log = server.log()
    assert f"(pid {workers[0]}) was killed by SIGKILL; the group stops" in log, log
    assert f"(pid {workers[1]}) stopped" in log, log
    assert "ready on" not in "".join(server.lines.queue)


def test_workers_go_when_their_parent_is_killed(tmp_path):
    """SIGKILL leaves the parent no chance to stop them: the kernel sends them SIGTERM (PR_SET_PDEATHSIG)."""
    server = Server(tmp_path, "--workers", "2", expect_ready=False)
    try:
        deadline = time.monotonic() + 30
        while len(workers := children(server.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(workers) == 2, server.log()
        time.sleep(0.5)  # past the fork, into the workers' own start
    finally:
        server.stop(signal.SIGKILL)
    assert not wait_gone(workers), "a worker outlived its killed parent"


def test_sigterm_stops_every_worker(served):
    server, _, _ = served
    workers = children(server.process.pid)
    assert len(workers) == 2
    sent = time.monotonic()
    assert server.stop(signal.SIGTERM, timeout=30) == 0, server.log()
    assert time.monotonic() - sent < 15
    assert not wait_gone(workers), "a worker outlived its group"
    log = server.log()
    assert "stopping 2 workers: SIGTERM received" in log
    for pid in workers:
        assert f"(pid {pid}) stopped" in log, log
    assert "Traceback" not in log


def test_device_wide_gauges_are_taken_once_and_the_rest_summed():
    from service.merged_metrics import merge

    def text(pid: int, success: int, used: int) -> str:
        return (f'# HELP nv_inference_request_success Number of successful inference requests, all batch sizes\n'
                f'# TYPE nv_inference_request_success untyped\n'
                f'nv_inference_request_success{{model="lenet",version="1"}} {success}\n'
                f'# HELP nv_gpu_memory_used_bytes GPU used memory, in bytes\n'
                f'# TYPE nv_gpu_memory_used_bytes gauge\n'
                f'nv_gpu_memory_used_bytes{{gpu_uuid="GPU-0"}} {used}\n'
                f'# HELP netspec_process_info The serving process (its pid)\n'
                f'# TYPE netspec_process_info gauge\n'
                f'netspec_process_info{{pid="{pid}"}} 1\n')

    merged = {f.name: f for f in merge([text(11, 3, 500), text(12, 4, 700)])}
    assert [(s.labels, s.value) for s in merged["nv_inference_request_success"].samples] == [(LABELS, 7)]
    assert merged["nv_inference_request_success"].type == "unknown"
    assert [s.value for s in merged["nv_gpu_memory_used_bytes"].samples] == [700]  # the device's, once
    assert sorted(s.labels["pid"] for s in merged["netspec_process_info"].samples) == ["11", "12"]


def test_a_worker_that_does_not_answer_fails_the_scrape():
    """Leaving its figures out would look like counters going back: 503, with the reason."""
    import urllib.error

    from prometheus_client import CollectorRegistry

    from service import metrics_http
    from service.merged_metrics import MergedCollector

    registry = CollectorRegistry(auto_describe=False)
    gone = free_port()  # nothing listens there
    registry.register(MergedCollector(lambda: {2: gone}))
    server = metrics_http.start(registry, "127.0.0.1", 0)
    try:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10)
        assert info.value.code == 503
        assert info.value.read().decode().startswith(f"worker 2 did not answer at http://127.0.0.1:{gone}/metrics")
    finally:
        metrics_http.stop(server)
