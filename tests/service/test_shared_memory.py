"""System shared memory, as Triton's L0_shared_memory checks it: the real
tritonclient and its `tritonclient.utils.shared_memory` module, unchanged,
against `netspec serve --allow-client-shm true` in its own process (with
tokens, which the shared memory calls need like any other), and
`perf_analyzer --shared-memory system`. Every result read back from shared
memory equals what the plain gRPC path answers for the same inputs.

Each test makes its objects under /dev/shm with this process's id in the
key, so runs side by side do not meet, and removes them.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import subprocess

import numpy as np
import pytest

from server_process import ROOT, Server, perf_analyzer_env, write_spec_model

grpcclient = pytest.importorskip("tritonclient.grpc")
shm = pytest.importorskip("tritonclient.utils.shared_memory")
from tritonclient.utils import InferenceServerException  # noqa: E402

TOKEN = "shm-token"
HEADERS = {"authorization": f"Bearer {TOKEN}"}
# Two inputs and two outputs: offsets inside one region, raw and shared inputs
# mixed, one output in shared memory and one in the response.
PAIR = """name: pair
inputs: {a: {shape: [N, 6]}, b: {shape: [N, 6]}}
nodes:
  total: {op: add, in: [a, b]}
  fc: {op: linear, out_features: 4}
outputs: {total: total, scores: fc}
"""
IMAGE = (2, 1, 28, 28)  # two lenet samples: 6,272 bytes
LOGITS = (2, 10)


def key(name: str) -> str:
    return f"/netspec-test-{os.getpid()}-{name}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("shm") / "models"
    write_spec_model(root, (ROOT / "specs" / "lenet.yaml").read_text(), max_batch_size=8)
    write_spec_model(root, PAIR, max_batch_size=8)
    tokens = root.parent / "tokens.txt"
    tokens.write_text(TOKEN + "\n")
    server = Server(root, "--allow-client-shm", "true", "--auth-token-file", tokens)
    yield server
    assert server.stop() == 0


@pytest.fixture
def client(server):
    with server.client() as client:
        yield client
        client.unregister_system_shared_memory(headers=HEADERS)


@contextlib.contextmanager
def regions(*specs: tuple[str, int]):
    """Shared memory objects made by tritonclient: (name, bytes) -> handles by name."""
    handles = {}
    try:
        for name, size in specs:
            handles[name] = shm.create_shared_memory_region(name, key(name), size)
        yield handles
    finally:
        for handle in handles.values():
            shm.destroy_shared_memory_region(handle)


def status_of(call) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value.status(), info.value.message()


def plain(client, model: str, arrays: dict[str, np.ndarray]):
    inputs = []
    for name, array in arrays.items():
        inputs.append(grpcclient.InferInput(name, list(array.shape), "FP32"))
        inputs[-1].set_data_from_numpy(array)
    return client.infer(model, inputs, headers=HEADERS)


def lenet_in_shared_memory(client, image_region="image", logits_region="logits", image_bytes=None,
                           logits_bytes=None, image_offset=0, logits_offset=0):
    image = grpcclient.InferInput("image", list(IMAGE), "FP32")
    image.set_shared_memory(image_region, image_bytes or 4 * int(np.prod(IMAGE)), offset=image_offset)
    logits = grpcclient.InferRequestedOutput("logits")
    logits.set_shared_memory(logits_region, logits_bytes or 4 * int(np.prod(LOGITS)), offset=logits_offset)
    return client.infer("lenet", [image], outputs=[logits], headers=HEADERS)


def test_lenet_through_shared_memory_equals_the_grpc_path(client):
    x = np.random.default_rng(0).standard_normal(IMAGE).astype(np.float32)
    with regions(("image", x.nbytes), ("logits", 4 * 20)) as h:
        shm.set_shared_memory_region(h["image"], [x])
        client.register_system_shared_memory("image", key("image"), x.nbytes, headers=HEADERS)
        client.register_system_shared_memory("logits", key("logits"), 4 * 20, headers=HEADERS)
        result = lenet_in_shared_memory(client)
        out = result.get_output("logits")
        assert out.datatype == "FP32" and list(out.shape) == list(LOGITS)
        assert result.get_response().raw_output_contents == [b""]  # the data is in shared memory only
        got = shm.get_contents_as_numpy(h["logits"], np.float32, LOGITS)
        np.testing.assert_array_equal(got, plain(client, "lenet", {"image": x}).as_numpy("logits"))
        # The region is read at each request: new contents, new answer.
        shm.set_shared_memory_region(h["image"], [x[::-1].copy()])
        lenet_in_shared_memory(client)
        got = shm.get_contents_as_numpy(h["logits"], np.float32, LOGITS)
        np.testing.assert_array_equal(got, plain(client, "lenet", {"image": x[::-1].copy()}).as_numpy("logits"))

        # ModelStreamInfer reads and writes shared memory the same way.
        answers = queue.Queue()
        image = grpcclient.InferInput("image", list(IMAGE), "FP32")
        image.set_shared_memory("image", x.nbytes)
        logits = grpcclient.InferRequestedOutput("logits")
        logits.set_shared_memory("logits", 4 * 20)
        shm.set_shared_memory_region(h["logits"], [np.zeros(LOGITS, np.float32)])
        client.start_stream(callback=lambda result, error: answers.put((result, error)), headers=HEADERS)
        try:
            client.async_stream_infer("lenet", [image], outputs=[logits])
            result, error = answers.get(timeout=60)
        finally:
            client.stop_stream()
        assert error is None, error
        got = shm.get_contents_as_numpy(h["logits"], np.float32, LOGITS)
        np.testing.assert_array_equal(got, plain(client, "lenet", {"image": x[::-1].copy()}).as_numpy("logits"))


def test_offsets_and_mixed_inputs_and_outputs(client):
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((3, 6)).astype(np.float32) for _ in range(2))
    with regions(("ab", 2 * a.nbytes + 8), ("out", 256)) as h:
        shm.set_shared_memory_region(h["ab"], [a], offset=8)
        shm.set_shared_memory_region(h["ab"], [b], offset=8 + a.nbytes)
        client.register_system_shared_memory("ab", key("ab"), 2 * a.nbytes, offset=8, headers=HEADERS)
        client.register_system_shared_memory("out", key("out"), 256, headers=HEADERS)
        expected = plain(client, "pair", {"a": a, "b": b})

        inputs = [grpcclient.InferInput("a", [3, 6], "FP32"), grpcclient.InferInput("b", [3, 6], "FP32")]
        inputs[0].set_shared_memory("ab", a.nbytes)  # offsets count from the registered offset
        inputs[1].set_shared_memory("ab", b.nbytes, offset=a.nbytes)
        outputs = [grpcclient.InferRequestedOutput("total"), grpcclient.InferRequestedOutput("scores")]
        outputs[1].set_shared_memory("out", 4 * 12, offset=64)
        result = client.infer("pair", inputs, outputs=outputs, headers=HEADERS)
        np.testing.assert_array_equal(result.as_numpy("total"), a + b)
        np.testing.assert_array_equal(result.as_numpy("total"), expected.as_numpy("total"))
        got = shm.get_contents_as_numpy(h["out"], np.float32, (3, 4), offset=64)
        np.testing.assert_array_equal(got, expected.as_numpy("scores"))

        # One input raw, one in shared memory: raw_input_contents holds the raw one only.
        inputs = [grpcclient.InferInput("a", [3, 6], "FP32"), grpcclient.InferInput("b", [3, 6], "FP32")]
        inputs[0].set_data_from_numpy(a)
        inputs[1].set_shared_memory("ab", b.nbytes, offset=a.nbytes)
        result = client.infer("pair", inputs, headers=HEADERS)
        np.testing.assert_array_equal(result.as_numpy("scores"), expected.as_numpy("scores"))


def test_status_register_unregister(client):
    with regions(("one", 64), ("two", 128)) as _:
        client.register_system_shared_memory("one", key("one"), 64, headers=HEADERS)
        client.register_system_shared_memory("two", key("two"), 100, offset=28, headers=HEADERS)
        listed = client.get_system_shared_memory_status(headers=HEADERS).regions
        assert {n: (r.name, r.key, r.offset, r.byte_size) for n, r in listed.items()} == {
            "one": ("one", key("one"), 0, 64), "two": ("two", key("two"), 28, 100)}
        assert list(client.get_system_shared_memory_status("two", headers=HEADERS).regions) == ["two"]
        code, message = status_of(lambda: client.get_system_shared_memory_status("three", headers=HEADERS))
        assert code == "StatusCode.NOT_FOUND" and "'three'" in message
        code, message = status_of(lambda: client.register_system_shared_memory("one", key("two"), 8,
                                                                               headers=HEADERS))
        assert code == "StatusCode.ALREADY_EXISTS" and "'one' is already registered" in message
        client.unregister_system_shared_memory("one", headers=HEADERS)
        client.unregister_system_shared_memory("never-registered", headers=HEADERS)  # no error, as Triton
        assert list(client.get_system_shared_memory_status(headers=HEADERS).regions) == ["two"]
        client.unregister_system_shared_memory(headers=HEADERS)  # all
        assert not client.get_system_shared_memory_status(headers=HEADERS).regions
        assert "system_shared_memory" in client.get_server_metadata(headers=HEADERS).extensions


def test_every_bad_case_gets_its_status_and_the_server_keeps_serving(client, server, tmp_path):
    x = np.random.default_rng(2).standard_normal(IMAGE).astype(np.float32)
    with regions(("image", x.nbytes), ("logits", 80), ("small", 40)) as h:
        shm.set_shared_memory_region(h["image"], [x])
        for name in h:
            client.register_system_shared_memory(name, key(name), 40 if name == "small" else
                                                 (x.nbytes if name == "image" else 80), headers=HEADERS)
        outside = tmp_path / "outside"
        outside.write_bytes(b"secret" * 100)
        link = f"/dev/shm/{key('link')[1:]}"
        os.symlink(outside, link)
        try:
            cases = [
                # requests
                (lambda: lenet_in_shared_memory(client, image_region="nope"), "NOT_FOUND", ["'nope'", "not registered"]),
                (lambda: lenet_in_shared_memory(client, image_offset=x.nbytes), "INVALID_ARGUMENT",
                 ["input 'image'", f"offset {x.nbytes} is not inside region 'image'"]),
                (lambda: lenet_in_shared_memory(client, logits_offset=48), "INVALID_ARGUMENT",
                 ["output 'logits'", "passes the end of region 'logits' (80 bytes)"]),
                (lambda: lenet_in_shared_memory(client, image_bytes=x.nbytes - 4), "INVALID_ARGUMENT",
                 ["input 'image'", f"shared_memory_byte_size is {x.nbytes - 4}", f"needs {x.nbytes} bytes"]),
                (lambda: lenet_in_shared_memory(client, logits_region="small", logits_bytes=40), "INVALID_ARGUMENT",
                 ["output 'logits' holds 80 bytes, more than the 40"]),
                # registrations
                (lambda: client.register_system_shared_memory("image", key("image"), 8, headers=HEADERS),
                 "ALREADY_EXISTS", ["'image' is already registered"]),
                (lambda: client.register_system_shared_memory("big", key("logits"), 81, headers=HEADERS),
                 "INVALID_ARGUMENT", ["passes the end", "holds 80 bytes"]),
                (lambda: client.register_system_shared_memory("late", key("logits"), 8, offset=80, headers=HEADERS),
                 "INVALID_ARGUMENT", ["passes the end"]),
                (lambda: client.register_system_shared_memory("empty", key("logits"), 0, headers=HEADERS),
                 "INVALID_ARGUMENT", ["byte_size is 0"]),
                (lambda: client.register_system_shared_memory("gone", key("absent"), 8, headers=HEADERS),
                 "NOT_FOUND", [f"no shared memory object '{key('absent')}'"]),
                (lambda: client.register_system_shared_memory("link", key("link"), 8, headers=HEADERS),
                 "INVALID_ARGUMENT", ["symbolic link"]),
                (lambda: client.register_system_shared_memory("cuda", "", 8, headers=HEADERS),
                 "INVALID_ARGUMENT", ["not a POSIX shared memory name"]),
            ]
            for bad in ("../../etc/passwd", "/../etc/passwd", "/dev/shm/x", "/..", "/.", "noslash", "/",
                        "/a\nb", "/" + "x" * 256):
                cases.append((lambda bad=bad: client.register_system_shared_memory("k", bad, 8, headers=HEADERS),
                              "INVALID_ARGUMENT", ["not a POSIX shared memory name"]))
            for call, code, words in cases:
                got, message = status_of(call)
                assert got == f"StatusCode.{code}", (words, message)
                for word in words:
                    assert word in message, message
                assert len(message.splitlines()) == 1, message
            # Nothing of the refused calls stayed registered; the good regions serve.
            assert sorted(client.get_system_shared_memory_status(headers=HEADERS).regions) == ["image", "logits",
                                                                                                "small"]
            lenet_in_shared_memory(client)
            np.testing.assert_array_equal(shm.get_contents_as_numpy(h["logits"], np.float32, LOGITS),
                                          plain(client, "lenet", {"image": x}).as_numpy("logits"))
        finally:
            os.unlink(link)
    assert outside.read_bytes() == b"secret" * 100


def test_a_truncated_object_fails_its_request_and_nothing_else(client, server):
    """A mapping of a shrunk object would fault (SIGBUS) on access; the server reads
    through the descriptor instead, so the request fails and the server lives."""
    x = np.random.default_rng(3).standard_normal(IMAGE).astype(np.float32)
    # Made with os, not tritonclient: the client's own mapping must not be touched once shrunk.
    path = f"/dev/shm/{key('cut')[1:]}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, x.tobytes() + bytes(80))
        client.register_system_shared_memory("cut-image", key("cut"), x.nbytes, headers=HEADERS)
        client.register_system_shared_memory("cut-logits", key("cut"), 80, offset=x.nbytes, headers=HEADERS)
        lenet_in_shared_memory(client, "cut-image", "cut-logits")  # whole: it works
        logits = np.frombuffer(os.pread(fd, 80, x.nbytes), np.float32).reshape(LOGITS)
        np.testing.assert_array_equal(logits, plain(client, "lenet", {"image": x}).as_numpy("logits"))

        os.ftruncate(fd, x.nbytes)  # the output's range is gone
        code, message = status_of(lambda: lenet_in_shared_memory(client, "cut-image", "cut-logits"))
        assert code == "StatusCode.INVALID_ARGUMENT" and "output 'logits'" in message and "truncated" in message
        assert os.fstat(fd).st_size == x.nbytes  # the server did not grow it back
        os.ftruncate(fd, 100)  # the input's too
        code, message = status_of(lambda: lenet_in_shared_memory(client, "cut-image", "cut-logits"))
        assert code == "StatusCode.INVALID_ARGUMENT" and "input 'image'" in message and "holds 100 bytes" in message
        assert server.process.poll() is None
        assert plain(client, "lenet", {"image": x}).as_numpy("logits").shape == LOGITS
    finally:
        os.close(fd)
        os.unlink(path)


def test_cuda_shared_memory_and_tokens(client, server):
    code, message = status_of(lambda: client.register_cuda_shared_memory("gpu", b"\0" * 64, 0, 8, headers=HEADERS))
    assert code == "StatusCode.UNIMPLEMENTED" and "CUDA shared memory is not supported" in message
    client.unregister_cuda_shared_memory(headers=HEADERS)  # nothing to unregister; perf_analyzer calls it
    for call in (lambda: client.get_system_shared_memory_status(),
                 lambda: client.register_system_shared_memory("x", key("x"), 8),
                 lambda: client.unregister_system_shared_memory()):
        code, message = status_of(call)
        assert code == "StatusCode.UNAUTHENTICATED", message


@pytest.mark.skipif(shutil.which("perf_analyzer") is None, reason="perf_analyzer is not installed (.ci/perf_analyzer.sh)")
def test_perf_analyzer_with_system_shared_memory(server, client):
    """perf_analyzer registers its regions, sends every input and takes every
    output through them, and unregisters them at the end; any failed call
    stops it with the error."""
    done = subprocess.run(
        ["perf_analyzer", "-m", "lenet", "-i", "grpc", "-u", server.url, "--shared-memory", "system",
         "-H", f"authorization:Bearer {TOKEN}", "--concurrency-range", "2", "--measurement-interval", "1000",
         "--measurement-mode", "time_windows", "-b", "1", "--max-trials", "3", "-v"],
        capture_output=True, text=True, timeout=120, env=perf_analyzer_env(),
    )
    output = done.stdout + done.stderr
    passes = [float(t) for t in re.findall(r"Pass \[\d+\] throughput: ([0-9.]+) infer/sec", output)]
    assert passes and min(passes) > 0 and "error" not in output.lower(), output
    # Windows that disagree (other tests share the cores) are perf_analyzer's only allowed complaint.
    assert done.returncode == 0 or "Failed to obtain stable measurement" in output, output
    assert not client.get_system_shared_memory_status(headers=HEADERS).regions


# --- the registry alone: region lifetime ----------------------------------------------


def _open_descriptors(path) -> int:
    """This process's descriptors open on `path`: counting all of them would
    count what other threads of the suite open and close meanwhile."""
    target, count = os.path.realpath(path), 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == target
        except OSError:  # closed since the listing
            pass
    return count


def test_a_region_unregistered_in_use_stays_readable_until_released(tmp_path):
    from service.errors import NotFound, SharedMemoryDisabled
    from service.shared_memory import Placement, SharedMemory

    (tmp_path / "obj").write_bytes(bytes(range(64)))
    registry = SharedMemory(directory=tmp_path)
    before = _open_descriptors(tmp_path / "obj")
    registry.register("r", "/obj", 16, 32)
    assert _open_descriptors(tmp_path / "obj") == before + 1
    with registry.hold(["r"]) as held:
        registry.unregister("r")
        assert not registry.status()
        with pytest.raises(NotFound):
            with registry.hold(["r"]):
                pass
        target = bytearray(8)
        held["r"].check(Placement("r", 4, 8), "input 'x'")
        held["r"].read_into(4, memoryview(target), "input 'x'")
        assert bytes(target) == bytes(range(20, 28))  # offsets count from the registered offset
        assert _open_descriptors(tmp_path / "obj") == before + 1
    assert _open_descriptors(tmp_path / "obj") == before  # closed with its last user

    registry.register("a", "/obj", 0, 64)
    registry.register("b", "/obj", 0, 8)
    registry.close()  # what shutdown does
    assert _open_descriptors(tmp_path / "obj") == before and not registry.status()

    off = SharedMemory(enabled=False, directory=tmp_path)
    with pytest.raises(SharedMemoryDisabled, match="--allow-client-shm true"):
        off.register("a", "/obj", 0, 8)
    with off.hold([]) as nothing:  # requests without shared memory pass
        assert nothing == {}
