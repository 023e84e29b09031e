"""Serving benchmark: throughput and p50/p99 latency of `netspec serve` at
concurrency 1, 8 and 32, with dynamic batching on and off, next to a bare
grpc.aio server that only echoes the request payload (the floor: gRPC and
protobuf costs with no model). Every server runs in its own process and is
measured by the same closed-loop client, in the same run.

    python bench/serve.py                       # lenet (and resnet18 if specs/resnet.yaml exists), CPU
    python bench/serve.py --device cuda         # models on the GPU
    python bench/serve.py --duration 5 --concurrency 1 8 32 64
    python bench/serve.py --models lenet --max-queue-delay-us 500   # also requests held for company
    python bench/serve.py --shared-memory --models resnet18 --concurrency 8   # system shared memory vs gRPC
    python bench/serve.py --models lenet --workers 1 2              # one server process against two
    python bench/serve.py --models lenet --workers 1 2 --onnxruntime   # the same in ONNX Runtime
    python bench/serve.py --peers               # lenet beside KServe and Triton (bench/peers.py)
    python bench/serve.py --peers --rounds 3    # each server measured three times, in turn; the medians

On a machine whose speed drifts (other work on shared cores moved one
server's figures by up to 40% between runs minutes apart), --rounds R
measures every point R times, the servers in turn, and shows the medians.

With --peers, netspec is measured twice: as compiled, and with its CPU
accelerator ONNX Runtime (`cpu_execution_accelerator { name: "onnxruntime" }`
added to the model's config.pbtxt).

Each request carries one sample (batch 1). With --workers, the rows are
`netspec serve --workers K` for each K given (dynamic batching on) and the
floor, and every concurrent client has a connection of its own (the kernel
hands each connection to one worker; a single shared connection would keep
every call on one), for the floor and for each K alike. All of them run at
once, so that a round measures a point on each, one after the other.

"x floor" columns compare with the
echo server at the same concurrency: throughput ratio (ours / floor) and p50
latency ratio (ours / floor). Client and servers share the machine's cores,
so absolute numbers are lower than with a separate client machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STARTUP_TIMEOUT_S = 180
ORT_ROW = "netspec onnxruntime"
ONNXRUNTIME_CONFIG = 'optimization { execution_accelerators { cpu_execution_accelerator { name: "onnxruntime" } } }\n'
NP_TYPES = {"FP32": np.float32, "FP16": np.float16, "INT64": np.int64, "UINT8": np.uint8}


# --- the floor: a bare echo server --------------------------------------------


async def echo_server_main(port_file: str) -> None:
    """ModelInfer answers with the request's own tensors; nothing else."""
    import grpc

    from service.generated import grpc_service_pb2 as pb
    from service.generated import grpc_service_pb2_grpc as pb_grpc

    class Echo(pb_grpc.GRPCInferenceServiceServicer):
        async def ModelInfer(self, request, context):
            response = pb.ModelInferResponse(model_name=request.model_name, id=request.id)
            for t in request.inputs:
                response.outputs.add(name=t.name, datatype=t.datatype, shape=t.shape)
            response.raw_output_contents.extend(request.raw_input_contents)
            return response

    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    Path(port_file).write_text(str(port))
    await server.wait_for_termination()


# --- servers under test ---------------------------------------------------------


class Process:
    def __init__(self, args: list[str], ready: callable):
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True)
        self.url = ready(self.process)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_netspec(repository: Path, device: str, *flags: str, workers: int = 1) -> Process:
    def ready(process):
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        for line in process.stdout:  # the ready line comes once the models are loaded
            if "ready on" in line:
                return line.strip().rsplit(" ", 1)[1]
            if time.monotonic() > deadline:
                break
        raise RuntimeError(f"netspec serve did not start (exit code {process.poll()})")

    return Process([sys.executable, "-m", "service", "serve", "--repository", str(repository), "--port", "0", "--metrics-port", "0",
                    "--device", device, "--log-level", "warning", "--workers", str(workers), *flags], ready)


def start_echo(tmp: Path) -> Process:
    port_file = tmp / "echo.port"
    port_file.unlink(missing_ok=True)  # an earlier echo server's port is not this one's

    def ready(process):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (port_file.exists() and port_file.read_text()):
            if process.poll() is not None:
                break
            time.sleep(0.05)
        if not port_file.exists():
            raise RuntimeError("echo server did not start")
        return f"127.0.0.1:{port_file.read_text()}"

    return Process([sys.executable, __file__, "--echo-server", str(port_file)], ready)


def compile_models(out: Path, batching: bool, delay_us: int = 0, only: list[str] | None = None) -> list[str]:
    """Compile lenet (and resnet18 when specs/resnet.yaml exists) into `out`; with `only`, those of them."""
    names = []
    jobs = [("lenet", ROOT / "specs" / "lenet.yaml", [])]
    resnet = ROOT / "specs" / "resnet.yaml"
    if resnet.exists():
        jobs.append(("resnet18", resnet, ["18", "resnet18"]))
    jobs = [job for job in jobs if only is None or job[0] in only]
    for name, spec, variants in jobs:
        base = [sys.executable, "-m", "compiler.cli", "compile", str(spec), "--repository", str(out), "--name", name,
                "--quiet", *([f"--max-queue-delay-us={delay_us}"] if batching else ["--no-dynamic-batching"])]
        for variant in variants or [None]:  # the first variant name the spec knows
            done = subprocess.run(base + (["--variant", variant] if variant else []), cwd=ROOT,
                                  capture_output=True, text=True)
            if done.returncode == 0:
                break
        if done.returncode != 0:
            print(f"skipping {name}: compile failed: {done.stderr.strip()[-300:]}", file=sys.stderr)
            continue
        names.append(name)
    return names


def add_onnxruntime(repository: Path, models: list[str]) -> None:
    """Give each model in `repository` its CPU accelerator ONNX Runtime (config.pbtxt)."""
    for model in models:
        with open(repository / model / "config.pbtxt", "a") as f:
            f.write(ONNXRUNTIME_CONFIG)


# --- the client ------------------------------------------------------------------


async def request_for(url: str, model: str):
    """A batch-1 ModelInferRequest with random inputs, shaped from the model's metadata."""
    import grpc

    from service.generated import grpc_service_pb2 as pb
    from service.generated import grpc_service_pb2_grpc as pb_grpc

    async with grpc.aio.insecure_channel(url) as channel:
        meta = await pb_grpc.GRPCInferenceServiceStub(channel).ModelMetadata(pb.ModelMetadataRequest(name=model))
    rng = np.random.default_rng(0)
    request = pb.ModelInferRequest(model_name=model)
    for t in meta.inputs:
        shape = [1 if d == -1 and k == 0 else (16 if d == -1 else d) for k, d in enumerate(t.shape)]
        dtype = NP_TYPES[t.datatype]
        data = rng.integers(0, 2, shape) if np.issubdtype(dtype, np.integer) else rng.standard_normal(shape)
        request.inputs.add(name=t.name, datatype=t.datatype, shape=shape)
        request.raw_input_contents.append(data.astype(dtype).tobytes())
    return request


async def measure(url: str, request, concurrency: int, duration_s: float, max_s: float,
                  own_connections: bool = False) -> dict:
    """Closed loop: `concurrency` workers each send the next request when the
    last returns. After every worker has had one answer (warm-up), requests
    completing in the window count; the window lasts `duration_s`, longer if
    needed for 2 x concurrency answers (slow models), but at most `max_s`.
    All share one connection, or with `own_connections` each has its own."""
    import grpc

    from service.generated import grpc_service_pb2_grpc as pb_grpc

    options = [("grpc.max_receive_message_length", 256 << 20)]
    if own_connections:  # channels of one process share a connection unless each has its own subchannel pool
        options.append(("grpc.use_local_subchannel_pool", 1))
    async with contextlib.AsyncExitStack() as channels:
        stubs = [pb_grpc.GRPCInferenceServiceStub(
                     await channels.enter_async_context(grpc.aio.insecure_channel(url, options=options)))
                 for _ in range(concurrency if own_connections else 1)]
        calls = [functools.partial(stubs[k % len(stubs)].ModelInfer, request) for k in range(concurrency)]
        return await _closed_loop(calls, duration_s, max_s)


# --- main ---------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds measured per point (default: 2)")
    parser.add_argument("--max-duration", type=float, default=20.0,
                        help="upper bound per point for slow models (default: 20)")
    parser.add_argument("--models", nargs="+", choices=["lenet", "resnet18"], help="only these models")
    parser.add_argument("--max-queue-delay-us", type=int, default=0, metavar="D",
                        help="also measure batching with requests held up to D microseconds for company")
    parser.add_argument("--shared-memory", action="store_true",
                        help="measure inputs and outputs in system shared memory against the same requests over gRPC")
    parser.add_argument("--rounds", type=int,
                        help="measurements of each point, the servers or paths in turn; the medians are shown "
                             "(default: 3 with --shared-memory, 1 with --workers and --peers)")
    parser.add_argument("--workers", type=int, nargs="+", metavar="K",
                        help="measure `netspec serve --workers K` for each K side by side (batching on), "
                             "each client on a connection of its own")
    parser.add_argument("--onnxruntime", action="store_true",
                        help="with --workers: the models run in their CPU accelerator ONNX Runtime")
    parser.add_argument("--peers", action="store_true",
                        help="lenet, batching on: the floor, netspec, KServe and Triton side by side, with the limit")
    parser.add_argument("--echo-server", metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo_server:
        asyncio.run(echo_server_main(args.echo_server))
        return 0
    if args.rounds is None:
        args.rounds = 3 if args.shared_memory else 1
    if args.rounds < 1:
        print("--rounds must be 1 or more", file=sys.stderr)
        return 2
    if args.onnxruntime and not args.workers:
        print("--onnxruntime goes with --workers (--peers measures ONNX Runtime beside torch already)", file=sys.stderr)
        return 2
    if args.shared_memory:
        return shared_memory_main(args)
    if args.workers:
        return main_workers(args)
    if args.peers:
        return run_peers(args)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        repositories = {"on": tmp / "batching", "off": tmp / "no-batching"}
        models = compile_models(repositories["on"], batching=True)
        if args.models:
            models = [m for m in models if m in args.models]
        compile_models(repositories["off"], batching=False)
        if args.max_queue_delay_us > 0:
            held = f"on, D={args.max_queue_delay_us}us"
            repositories[held] = tmp / "held"
            compile_models(repositories[held], batching=True, delay_us=args.max_queue_delay_us)
        floor: dict[tuple[str, int], dict] = {}

        echo = start_echo(tmp)
        try:
            for model in models:
                request = asyncio.run(request_for_echo(model, tmp, repositories["on"]))
                for c in args.concurrency:
                    floor[(model, c)] = asyncio.run(measure(echo.url, request, c, args.duration, args.max_duration))
                    rows.append((model, "echo (floor)", c, floor[(model, c)]))
        finally:
            echo.stop()

        for mode, repository in repositories.items():
            server = start_netspec(repository, args.device)
            try:
                for model in models:
                    request = asyncio.run(request_for(server.url, model))
                    for c in args.concurrency:
                        rows.append((model, f"batching {mode}", c, asyncio.run(measure(server.url, request, c, args.duration, args.max_duration))))
            finally:
                server.stop()

    print(f"\nnetspec serve on {args.device}; batch-1 requests; {args.duration:g} s per point; {os.cpu_count()} CPU cores\n")
    print_rows(rows, floor)
    return 0


def print_rows(rows, floor) -> None:
    header = f"{'model':<10} {'server':<24} {'conc':>4} {'infer/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'x floor thr':>11} {'x floor p50':>11}"
    print(header)
    print("-" * len(header))
    for model, server, c, r in rows:
        f = floor[(model, c)]
        print(f"{model:<10} {server:<24} {c:>4} {r['throughput']:>9.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} "
              f"{r['throughput'] / f['throughput']:>11.2f} {r['p50'] / f['p50']:>11.2f}")


def main_workers(args) -> int:
    """The floor, then `netspec serve --workers K` for each K, one connection
    per client throughout. Every server is started first; each point is then
    measured on each in turn, --rounds times, and the medians shown."""
    if any(k < 1 for k in args.workers):
        print("--workers: each K must be 1 or more", file=sys.stderr)
        return 2
    rows, floor = [], {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as running:
        tmp = Path(tmp)
        repository = tmp / "batching"
        models = compile_models(repository, batching=True, only=args.models)
        if args.onnxruntime:
            add_onnxruntime(repository, models)
        servers = {"echo (floor)": start_echo(tmp)}
        running.callback(servers["echo (floor)"].stop)
        for k in args.workers:
            name = f"--workers {k}" + (" onnxruntime" if args.onnxruntime else "")
            servers[name] = start_netspec(repository, args.device, workers=k)
            running.callback(servers[name].stop)
        for model in models:
            requests = {name: asyncio.run(request_for_echo(model, tmp, repository) if name == "echo (floor)"
                                          else request_for(server.url, model))
                        for name, server in servers.items()}
            for c in args.concurrency:
                points = {name: [] for name in servers}
                for _ in range(args.rounds):
                    for name, server in servers.items():
                        points[name].append(asyncio.run(measure(server.url, requests[name], c, args.duration,
                                                                args.max_duration, own_connections=True)))
                for name, results in points.items():
                    rows.append((model, name, c, medians(results)))
                floor[(model, c)] = medians(points["echo (floor)"])
    print(f"\nnetspec serve on {args.device}; batch-1 requests, one connection per client; "
          f"{args.duration:g} s per point{_of_rounds(args.rounds)}; {os.cpu_count()} CPU cores\n")
    print_rows(rows, floor)
    return 0


async def request_for_echo(model: str, tmp: Path, repository: Path):
    """The same request as for netspec, built without a running netspec: from config.pbtxt."""
    from service.config import read_config
    from compiler.protocol.datatypes import BY_CONFIG
    from service.generated import grpc_service_pb2 as pb

    config = read_config(repository / model / "config.pbtxt")
    rng = np.random.default_rng(0)
    request = pb.ModelInferRequest(model_name=model)
    for i in config.input:
        dtype = BY_CONFIG[_enum_name(i.data_type)]
        shape = ([1] if config.max_batch_size > 0 else []) + [16 if d == -1 else d for d in i.dims]
        np_type = NP_TYPES[dtype.kserve]
        data = rng.integers(0, 2, shape) if np.issubdtype(np_type, np.integer) else rng.standard_normal(shape)
        request.inputs.add(name=i.name, datatype=dtype.kserve, shape=shape)
        request.raw_input_contents.append(data.astype(np_type).tobytes())
    return request


# --- system shared memory against gRPC -----------------------------------------------


class ShmObject:
    """A POSIX shared memory object this client makes, maps and removes."""

    def __init__(self, name: str, size: int):
        import mmap

        self.key = f"/{name}"
        self.path = Path("/dev/shm") / name
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)
            self.map = mmap.mmap(fd, size)
        finally:
            os.close(fd)

    def close(self) -> None:
        self.map.close()
        self.path.unlink(missing_ok=True)


def _shm_param(request_tensor, region: str, size: int) -> None:
    request_tensor.parameters["shared_memory_region"].string_param = region
    request_tensor.parameters["shared_memory_byte_size"].int64_param = size


async def measure_shared_memory(url: str, plain_request, concurrency: int, duration_s: float, max_s: float) -> dict:
    """`measure`'s closed loop with the same inputs sent through system shared
    memory: each worker has an input and an output region, writes its inputs
    into the first before each request and reads the outputs from the second
    after it, as a client of the extension does."""
    import grpc

    from service.generated import grpc_service_pb2 as pb
    from service.generated import grpc_service_pb2_grpc as pb_grpc

    async with grpc.aio.insecure_channel(url) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        meta = await stub.ModelMetadata(pb.ModelMetadataRequest(name=plain_request.model_name))
        sample = await stub.ModelInfer(plain_request)
        out_sizes = [len(raw) for raw in sample.raw_output_contents]
        inputs = list(plain_request.raw_input_contents)
        objects, calls = [], []
        try:
            for k in range(concurrency):
                name = f"netspec-bench-{os.getpid()}-{k}"
                inp, out = ShmObject(f"{name}-in", sum(map(len, inputs))), ShmObject(f"{name}-out", sum(out_sizes))
                objects += [inp, out]
                await stub.SystemSharedMemoryRegister(pb.SystemSharedMemoryRegisterRequest(
                    name=f"{name}-in", key=inp.key, byte_size=len(inp.map)))
                await stub.SystemSharedMemoryRegister(pb.SystemSharedMemoryRegisterRequest(
                    name=f"{name}-out", key=out.key, byte_size=len(out.map)))
                request = pb.ModelInferRequest(model_name=plain_request.model_name)
                offset = 0
                for t, raw in zip(plain_request.inputs, inputs):
                    tensor = request.inputs.add(name=t.name, datatype=t.datatype, shape=t.shape)
                    _shm_param(tensor, f"{name}-in", len(raw))
                    tensor.parameters["shared_memory_offset"].int64_param = offset
                    offset += len(raw)
                offset = 0
                for o, size in zip(meta.outputs, out_sizes):
                    wanted = request.outputs.add(name=o.name)
                    _shm_param(wanted, f"{name}-out", size)
                    wanted.parameters["shared_memory_offset"].int64_param = offset
                    offset += size

                async def call(request=request, inp=inp, out=out):
                    offset = 0
                    for raw in inputs:
                        inp.map[offset:offset + len(raw)] = raw
                        offset += len(raw)
                    await stub.ModelInfer(request)
                    return np.frombuffer(out.map, np.uint8).copy()

                calls.append(call)
            result = await _closed_loop(calls, duration_s, max_s)
            # The outputs read from shared memory are the gRPC path's.
            got = (await calls[0]()).tobytes()
            if got != b"".join(sample.raw_output_contents):
                raise RuntimeError("the outputs read from shared memory differ from the gRPC path's")
            return result
        finally:
            await stub.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest())
            for o in objects:
                o.close()


async def _closed_loop(calls, duration_s: float, max_s: float) -> dict:
    """One worker per call, each making its call again as soon as it returns;
    counted as in `measure`."""
    latencies: list[float] = []
    warm = asyncio.Barrier(len(calls) + 1)
    stop = asyncio.Event()

    async def worker(call):
        await call()
        await warm.wait()
        while not stop.is_set():
            sent = time.perf_counter()
            await call()
            if not stop.is_set():
                latencies.append(time.perf_counter() - sent)

    workers = [asyncio.create_task(worker(call)) for call in calls]
    await warm.wait()
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < max_s:
        if elapsed >= duration_s and len(latencies) >= 2 * len(calls):
            break
        await asyncio.sleep(0.05)
    count, elapsed = len(latencies), time.perf_counter() - start
    stop.set()
    await asyncio.gather(*workers)
    lat = np.array(latencies[:count]) * 1e3
    if count == 0:
        return {"throughput": 0.0, "p50": float("nan"), "p99": float("nan")}
    return {"throughput": count / elapsed, "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99))}


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid`, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _inference_count(url: str, model: str) -> int:
    import grpc

    from service.generated import grpc_service_pb2 as pb
    from service.generated import grpc_service_pb2_grpc as pb_grpc

    async with grpc.aio.insecure_channel(url) as channel:
        stats = await pb_grpc.GRPCInferenceServiceStub(channel).ModelStatistics(pb.ModelStatisticsRequest(name=model))
    return sum(s.inference_count for s in stats.model_stats)


def _measured_with_cpu(server: Process, model: str, run) -> dict:
    """`run()`'s figures plus the CPU milliseconds the server and this client
    spent per inference: a cost that other work on the cores does not change,
    where throughput does."""
    count0, server0, client0 = asyncio.run(_inference_count(server.url, model)), \
        _cpu_seconds(server.process.pid), time.process_time()
    result = run()
    server1, client1 = _cpu_seconds(server.process.pid), time.process_time()
    count = asyncio.run(_inference_count(server.url, model)) - count0
    return {**result, "server_ms": 1e3 * (server1 - server0) / count, "client_ms": 1e3 * (client1 - client0) / count}


# resnet18's input and an output as large, with next to no work between:
# what the transport costs when the model costs nothing.
PAYLOAD_SPEC = """name: relu224
inputs: {image: {shape: [N, 3, 224, 224]}}
nodes:
  act: {op: relu}
outputs: {features: act}
"""


def _of_rounds(rounds: int) -> str:
    return f", medians of {rounds} rounds, the servers in turn" if rounds > 1 else ""


def medians(points: list[dict]) -> dict:
    """Each figure's median over the rounds measured of one point."""
    return {k: float(np.median([p[k] for p in points])) for k in points[0]}


def shared_memory_main(args) -> int:
    """The same model, server and concurrency, requests over gRPC and through
    system shared memory, alternating for --rounds rounds; prints the medians
    and shm / gRPC. relu224 (PAYLOAD_SPEC) comes first, then the models."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        repository = Path(tmp) / "batching"
        models = compile_models(repository, batching=True)
        models = [m for m in models if not args.models or m in args.models]
        spec = Path(tmp) / "relu224.yaml"
        spec.write_text(PAYLOAD_SPEC)
        subprocess.run([sys.executable, "-m", "compiler.cli", "compile", str(spec), "--repository", str(repository),
                        "--quiet"], cwd=ROOT, check=True)
        models.insert(0, "relu224")
        server = start_netspec(repository, args.device, "--allow-client-shm", "true")
        try:
            for model in models:
                request = asyncio.run(request_for(server.url, model))
                for c in args.concurrency:
                    points = {"gRPC": [], "shm": []}
                    for _ in range(args.rounds):
                        points["gRPC"].append(_measured_with_cpu(server, model, lambda: asyncio.run(
                            measure(server.url, request, c, args.duration, args.max_duration))))
                        points["shm"].append(_measured_with_cpu(server, model, lambda: asyncio.run(
                            measure_shared_memory(server.url, request, c, args.duration, args.max_duration))))
                    rows.append((model, c, {path: medians(ps) for path, ps in points.items()}))
        finally:
            server.stop()
    print(f"\nnetspec serve on {args.device}, dynamic batching; batch-1 requests; medians of {args.rounds} rounds of "
          f"{args.duration:g} s per point, gRPC and shm alternating; {os.cpu_count()} CPU cores; CPU ms: per inference\n")
    header = (f"{'model':<10} {'conc':>4} {'path':<5} {'infer/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'server CPU ms':>13} "
              f"{'client CPU ms':>13} {'shm/gRPC thr':>12}")
    print(header)
    print("-" * len(header))
    for model, c, by_path in rows:
        for path, r in by_path.items():
            ratio = f"{by_path['shm']['throughput'] / by_path['gRPC']['throughput']:>12.2f}" if path == "shm" else ""
            print(f"{model:<10} {c:>4} {path:<5} {r['throughput']:>9.1f} {r['p50']:>8.2f} {r['p99']:>8.2f} "
                  f"{r['server_ms']:>13.2f} {r['client_ms']:>13.2f} {ratio}")
    return 0


# --- --peers: netspec beside KServe and Triton ------------------------------------


async def execution_totals(url: str, model: str) -> tuple[int, int, int]:
    """(samples, executions, compute_infer ns of the executions) from ModelStatistics."""
    import grpc

    from service.generated import grpc_service_pb2 as pb
    from service.generated import grpc_service_pb2_grpc as pb_grpc

    async with grpc.aio.insecure_channel(url) as channel:
        stats = await pb_grpc.GRPCInferenceServiceStub(channel).ModelStatistics(pb.ModelStatisticsRequest(name=model))
    s = stats.model_stats[0]
    return s.inference_count, s.execution_count, sum(b.compute_infer.ns for b in s.batch_stats)


def measure_netspec(url: str, request, c: int, args) -> dict:
    """measure(), plus the batch size netspec ran (samples per execution) and
    the model's time per sample in those executions, from its statistics."""
    before = asyncio.run(execution_totals(url, request.model_name))
    result = asyncio.run(measure(url, request, c, args.duration, args.max_duration))
    after = asyncio.run(execution_totals(url, request.model_name))
    samples, executions, infer_ns = (a - b for a, b in zip(after, before))
    return {**result, "batch": samples / max(executions, 1), "model_s_per_sample": infer_ns / 1e9 / max(samples, 1)}


def run_peers(args) -> int:
    """One run, one client, lenet with batching on: each server is started,
    measured at every concurrency and stopped in turn, --rounds times over
    (the medians are shown: the machine's speed drifts between servers
    measured minutes apart, and rounds spread that over all). Triton is measured
    twice: serving the exported model in its Python backend, and through
    PyTriton (the model a Python function in PyTriton's process, which
    Triton's Python backend reaches through a proxy)."""
    import peers

    points: dict[str, dict[int, list[dict]]] = {}  # server -> concurrency -> one result per round
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        compile_models(tmp / "netspec", batching=True)
        shutil.copytree(tmp / "netspec", tmp / "netspec_ort")
        add_onnxruntime(tmp / "netspec_ort", ["lenet"])
        request = asyncio.run(request_for_echo("lenet", tmp, tmp / "netspec"))
        version_dir = peers.export_triton_python(ROOT / "specs" / "lenet.yaml", tmp / "exported", "lenet")

        servers = [("echo (floor)", lambda: start_echo(tmp)),
                   ("netspec", lambda: start_netspec(tmp / "netspec", "cpu")),
                   (ORT_ROW, lambda: start_netspec(tmp / "netspec_ort", "cpu"))]
        kserve = peers.kserve_python()
        if isinstance(kserve, str):
            notes.append(f"KServe: not installed: {kserve}")
        else:
            servers.append(("KServe 0.21", lambda: peers.start_kserve(kserve, version_dir)))
        triton = peers.tritonserver()
        if isinstance(triton, str):
            notes.append(f"Triton: not installed: {triton}")
        else:
            servers.append(("Triton py-backend", lambda: peers.start_triton(triton, tmp / "exported")))
            servers.append(("PyTriton", lambda: peers.start_pytriton(triton.parent / "bin" / "python", version_dir)))

        failed = set()  # a peer that did not start is not waited for again in later rounds

        def run(name, start):
            if name in failed:
                return
            try:
                server = start()
            except Exception as e:  # noqa: BLE001 - a peer that does not start is reported, the rest go on
                notes.append(f"{name}: not measured: {str(e).strip().splitlines()[-1][:300]}")
                failed.add(name)
                return
            try:
                for c in args.concurrency:
                    if name.startswith("netspec"):
                        result = measure_netspec(server.url, request, c, args)
                    else:
                        result = asyncio.run(measure(server.url, request, c, args.duration, args.max_duration))
                    points.setdefault(name, {}).setdefault(c, []).append(result)
            finally:
                server.stop()

        for _ in range(args.rounds):
            for name, start in servers:
                run(name, start)
    rows = {name: {c: medians(ps) for c, ps in by_c.items()} for name, by_c in points.items()}

    load = os.getloadavg()
    print(f"\nlenet 1x1x28x28, batch-1 requests, batching on; {args.duration:g} s per point{_of_rounds(args.rounds)}; "
          f"{os.cpu_count()} CPU cores; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}\n")
    header = f"{'server':<20} {'conc':>4} {'infer/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
    print(header)
    print("-" * len(header))
    for name, points in rows.items():
        for c, r in points.items():
            print(f"{name:<20} {c:>4} {r['throughput']:>9.0f} {r['p50']:>8.2f} {r['p99']:>8.2f}")
    floor = rows.get("echo (floor)", {})
    ours_rows = {name: rows[name] for name in ("netspec", ORT_ROW) if name in rows}
    if ours_rows:
        # The most a server can do: the floor's cost per request plus the model's time per sample.
        print("\nlimit = 1 / (1/floor + t_model(b)/b), b the samples per execution netspec ran, t_model its compute time")
        header = (f"{'ours':<20} {'conc':>4} {'b':>5} {'t_model/b us':>12} {'limit':>8} {'ours/limit':>10} "
                  f"{'ours/floor':>10} {'ours/KServe':>11} {'ours/Triton':>11} {'ours/PyTriton':>13}")
        print(header)
        print("-" * len(header))
        for name, ours in ours_rows.items():
            for c, r in ours.items():
                def ratio(peer):
                    other = rows.get(peer, {}).get(c)
                    return f"{r['throughput'] / other['throughput']:.2f}" if other and other["throughput"] else "-"

                f = floor.get(c)
                limit = 1 / (1 / f["throughput"] + r["model_s_per_sample"]) if f and f["throughput"] else float("nan")
                print(f"{name:<20} {c:>4} {r['batch']:>5.1f} {r['model_s_per_sample'] * 1e6:>12.0f} {limit:>8.0f} "
                      f"{r['throughput'] / limit:>10.2f} {ratio('echo (floor)'):>10} {ratio('KServe 0.21'):>11} "
                      f"{ratio('Triton py-backend'):>11} {ratio('PyTriton'):>13}")
    for note in notes:
        print(note)
    return 0


def _enum_name(value: int) -> str:
    from compiler.protocol.generated import model_config_pb2

    return model_config_pb2.DataType.Name(value)


if __name__ == "__main__":
    sys.exit(main())
