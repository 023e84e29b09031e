"""The metrics endpoint against the server in its own process: after
requests of which some fail, the scrape shows Triton's counters with the
figures ModelStatistics gives, failures by reason, and histograms that add
up. Parsed with prometheus_client's own parser, as a scraper reads it."""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from common import ROOT

grpcclient = pytest.importorskip("tritonclient.grpc")
parser = pytest.importorskip("prometheus_client.parser")
from tritonclient.utils import InferenceServerException  # noqa: E402

from server_process import Server, netspec  # noqa: E402

LABELS = {"model": "lenet", "version": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics") / "models"
    done = netspec("compile", str(ROOT / "specs" / "lenet.yaml"), "--repository", str(root), "--quiet", timeout=300)
    assert done.returncode == 0, done.stderr
    port = free_port()
    server = Server(root, "--metrics-port", str(port))
    yield server, f"http://127.0.0.1:{port}/metrics"
    assert server.stop() == 0


def scrape(url: str) -> dict[str, dict]:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {f.name: f for f in parser.text_string_to_metric_families(text)}, text


def value(family, name: str, **labels) -> float:
    found = [s.value for s in family.samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, family.samples)
    return found[0]


def test_counts_failures_and_histograms_agree_with_model_statistics(served):
    server, url = served
    rng = np.random.default_rng(0)
    with server.client() as client:
        sizes = [1, 3, 2, 4, 1]
        for n in sizes:
            x = grpcclient.InferInput("image", [n, 1, 28, 28], "FP32")
            x.set_data_from_numpy(rng.standard_normal((n, 1, 28, 28)).astype(np.float32))
            client.infer("lenet", [x])
        for _ in range(3):  # a shape the model does not take
            x = grpcclient.InferInput("image", [1, 1, 27, 28], "FP32")
            x.set_data_from_numpy(np.zeros((1, 1, 27, 28), np.float32))
            with pytest.raises(InferenceServerException):
                client.infer("lenet", [x])
        stats = client.get_inference_statistics("lenet").model_stats[0]
    families, text = scrape(url)
    ok, bad = len(sizes), 3

    success = families["nv_inference_request_success"]
    assert success.type == "unknown" and "# TYPE nv_inference_request_success untyped" in text
    assert value(success, "nv_inference_request_success", **LABELS) == ok == stats.inference_stats.success.count
    failure = families["nv_inference_request_failure"]
    assert value(failure, "nv_inference_request_failure", reason="OTHER", **LABELS) == bad
    for reason in ("REJECTED", "CANCELED", "BACKEND"):
        assert value(failure, "nv_inference_request_failure", reason=reason, **LABELS) == 0
    assert stats.inference_stats.fail.count == bad
    assert value(families["nv_inference_count"], "nv_inference_count", **LABELS) == sum(sizes) == stats.inference_count
    assert value(families["nv_inference_exec_count"], "nv_inference_exec_count", **LABELS) == stats.execution_count
    s = stats.inference_stats
    for name, ns in (("nv_inference_request_duration_us", s.success.ns),  # Triton's: successes only
                     ("nv_inference_queue_duration_us", s.queue.ns),
                     ("nv_inference_compute_input_duration_us", s.compute_input.ns),
                     ("nv_inference_compute_infer_duration_us", s.compute_infer.ns),
                     ("nv_inference_compute_output_duration_us", s.compute_output.ns)):
        assert value(families[name], name, **LABELS) == ns // 1000, name
    assert value(families["nv_inference_pending_request_count"], "nv_inference_pending_request_count", **LABELS) == 0

    # Histograms add up: cumulative buckets rise to +Inf = count = successes, sum = the total in ms.
    for name, total_ns in (("nv_inference_first_response_histogram_ms", s.success.ns),
                           ("netspec_inference_queue_histogram_ms", s.queue.ns),
                           ("netspec_inference_compute_infer_histogram_ms", s.compute_infer.ns)):
        family = families[name]
        assert family.type == "histogram"
        buckets = [(float(x.labels["le"]), x.value) for x in family.samples if x.name == name + "_bucket"]
        counts = [c for _, c in buckets]
        assert counts == sorted(counts) and buckets[-1] == (float("inf"), ok), name
        assert value(family, name + "_count", **LABELS) == ok
        assert value(family, name + "_sum", **LABELS) == pytest.approx(total_ns / 1e6, rel=1e-6), name
    assert any(x.name == "netspec_process_info" for x in families["netspec_process_info"].samples)


def test_a_busy_metrics_port_is_a_clear_error(served, tmp_path):
    _, url = served
    port = url.rsplit(":", 1)[1].split("/")[0]
    done = netspec("serve", "--repository", str(tmp_path), "--port", "0", "--metrics-port", port, timeout=60)
    assert done.returncode == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


def test_metrics_port_flag_is_checked():
    done = netspec("serve", "--repository", str(ROOT), "--port", "8001", "--metrics-port", "8001", timeout=60)
    assert done.returncode == 2 and "is the gRPC --port too" in done.stderr
    done = netspec("serve", "--repository", str(ROOT), "--metrics-port", "70000", timeout=60)
    assert done.returncode == 2 and "--metrics-port 70000 is not a port number" in done.stderr


def test_metrics_port_0_serves_nothing(tmp_path):
    """With --metrics-port 0 (what Server passes) no HTTP port is opened:
    the process listens on its gRPC port alone."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("reads the listening sockets from Linux's /proc")
    root = tmp_path / "models"
    root.mkdir()
    server = Server(root, "--strict-readiness", "false")
    try:
        assert listening_ports(server.process.pid) == {int(server.url.rsplit(":", 1)[1])}
        assert "metrics on" not in server.log()
    finally:
        assert server.stop() == 0


def listening_ports(pid: int) -> set[int]:
    """TCP ports the process listens on: its socket inodes, found in /proc/net/tcp(6) in state LISTEN."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
