"""`netspec serve` and `netspec check` against hostile clients and hostile
repositories: each scenario prints the figures it measured.

    python bench/hostile.py                      # every scenario
    python bench/hostile.py poison fuzz          # some of them
    python bench/hostile.py poison --duration 30 # longer load phases

Scenarios:
  poison      8 good clients and 1 sending token ids past the vocabulary, on a
              model with dynamic batching: how many good requests fail
  fuzz        malformed requests (undecodable bytes, names of any length,
              overflowing shapes, wrong contents): the status codes answered
  specs       alias bombs, deep nesting, a recursive alias and an expensive
              expression under `netspec check`: time, peak memory, exit code
  repository  the expensive expression as a model beside lenet: does the
              server get ready, does SIGTERM stop it
  bomb        a 7-level alias bomb as a model beside lenet: how long until the
              server is ready, and the memory it keeps, next to lenet alone
  shutdown    32 clients, SIGTERM mid-load: what became of the calls sent
              before the signal
  security    symlinks out of the repository, wrong-dtype weights, an
              anonymous unload, absolute paths in reasons
  typed       13 MB of typed contents: how long other calls stall
  readiness   ServerReady and health when every model failed to load

Every server runs in its own process on a loopback port, with the command
line a user would type. Child processes are killed past a time and memory cap
(--timeout, --memory-cap-mb), so a scenario that would hang or exhaust the
machine reports that instead.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.generated import grpc_service_pb2 as pb  # noqa: E402
from service.generated import grpc_service_pb2_grpc as pb_grpc  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
NETSPEC = [sys.executable, "-m", "compiler.cli"]

TOKENS_SPEC = """name: tokens
inputs: {tokens: {shape: [N, T], dtype: int64}}
nodes:
  embed: {op: embedding, num_embeddings: 1000, embedding_dim: 16}
  last: {op: last_step}
  fc: {op: linear, out_features: 4}
outputs: {scores: fc}
"""
WIDE_SPEC = """name: wide
inputs: {x: {shape: [N, 1000]}}
nodes:
  act: {op: relu}
outputs: {y: act}
"""
EXPENSIVE_EXPRESSION = '"${sum([sum(range(100000)) for j in range(100000)])}"'


def alias_bomb(levels: int, width: int = 9) -> str:
    """A valid spec plus `levels` lines of YAML aliases, each repeating the
    line before `width` times: width**levels strings once expanded."""
    lines = ["name: bomb", "inputs: {x: {shape: [N, 4]}}", "nodes: {a: {op: relu}}", "outputs: {y: a}",
             f"l0: &l0 [{', '.join(['x'] * width)}]"]
    lines += [f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * width)}]" for k in range(1, levels)]
    return "\n".join(lines) + "\n"


def small_spec(params: str) -> str:
    return f"name: hostile\ninputs: {{x: {{shape: [N, 4]}}}}\nparams:\n  p: {params}\nnodes: {{a: {{op: relu}}}}\noutputs: {{y: a}}\n"


HOSTILE_SPECS = {
    "alias bomb, 7 levels": alias_bomb(7),
    "alias bomb, 9 levels": alias_bomb(9),
    "nesting 10,000 deep": small_spec("[" * 10_000 + "]" * 10_000),
    "recursive alias": small_spec("&a [*a]"),
    "expensive expression": small_spec(EXPENSIVE_EXPRESSION),
}


# --- processes ------------------------------------------------------------------


class Child:
    """A child process whose peak RSS is sampled, killed past the caps."""

    def __init__(self, argv: list[str], *, timeout: float, memory_cap_mb: int, stdout=None):
        self.start = time.monotonic()
        self.process = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=stdout or subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.timeout, self.cap_kb = timeout, memory_cap_mb * 1024
        self.peak_kb, self.killed = 0, ""
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr), daemon=True).start()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while self.process.poll() is None:
            self.peak_kb = max(self.peak_kb, _rss_kb(self.process.pid))
            if self.peak_kb > self.cap_kb:
                self.killed = f"killed past {self.cap_kb // 1024} MB"
            elif time.monotonic() - self.start > self.timeout:
                self.killed = f"killed after {self.timeout:g} s"
            if self.killed:
                self.process.kill()
                return
            time.sleep(0.05)

    def wait(self) -> int:
        code = self.process.wait()
        self.elapsed = time.monotonic() - self.start
        time.sleep(0.1)  # let the reader thread take the last lines
        return code


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    """A process's resident memory now (VmRSS) or at its peak (VmHWM), in KB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Server:
    """`netspec serve` on a free port; `url` once its ready line came."""

    def __init__(self, repository: Path, *flags: str, ready_timeout: float = 120):
        self.process = subprocess.Popen(
            [*NETSPEC, "serve", "--repository", str(repository), "--port", "0", "--metrics-port", "0", "--device", "cpu", *flags],
            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr), daemon=True).start()
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in self.process.stdout], daemon=True).start()
        self.started = time.monotonic()
        self.url = None
        deadline = self.started + ready_timeout
        while self.url is None and time.monotonic() < deadline and self.process.poll() is None:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if "ready on" in line:
                self.url = line.strip().rsplit(" ", 1)[1]
        self.ready_after = time.monotonic() - self.started if self.url else None

    def tracebacks(self) -> int:
        return sum("Traceback" in line for line in self.stderr)

    def terminate(self, wait_s: float = 60) -> tuple[int | None, float]:
        """SIGTERM; (exit code or None if it had to be killed, seconds it took)."""
        sent = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            code = None
        return code, time.monotonic() - sent


def compile_spec(text: str, repository: Path, *flags: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.yaml"
        spec.write_text(text)
        done = subprocess.run([*NETSPEC, "compile", str(spec), "--repository", str(repository), "--quiet", *flags],
                              cwd=ROOT, env=ENV, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"compile failed: {done.stderr}")


def compile_lenet(repository: Path, *flags: str) -> None:
    compile_spec((ROOT / "specs" / "lenet.yaml").read_text(), repository, *flags)


def hand_written_model(repository: Path, name: str, spec_text: str) -> None:
    """A model folder as `netspec compile` would write it, but with any spec."""
    (repository / name / "1").mkdir(parents=True)
    (repository / name / "config.pbtxt").write_text(f'name: "{name}"\nbackend: "netspec"\nmax_batch_size: 8\n')
    (repository / name / "1" / "spec.yaml").write_text(spec_text)
    shutil.copy(next(repository.glob("*/1/weights.safetensors")), repository / name / "1" / "weights.safetensors")


def channel(url: str):
    import grpc

    return grpc.aio.insecure_channel(url, options=[("grpc.max_receive_message_length", 256 << 20),
                                                   ("grpc.max_send_message_length", 256 << 20)])


def code_of(exc) -> str:
    return exc.code().name if hasattr(exc, "code") else type(exc).__name__


def raw_request(model: str, name: str, datatype: str, array: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name=name, datatype=datatype, shape=array.shape)
    request.raw_input_contents.append(array.tobytes())
    return request


# --- scenarios -------------------------------------------------------------------


def scenario_poison(args, tmp: Path) -> None:
    repository = tmp / "poison"
    compile_spec(TOKENS_SPEC, repository, "--max-batch-size", "32")
    server = Server(repository, "--log-level", "warning")
    rng = np.random.default_rng(0)

    async def load(bad_clients: int) -> tuple[collections.Counter, collections.Counter, str]:
        good, bad, sample = collections.Counter(), collections.Counter(), ""
        stop = time.monotonic() + args.duration

        async def client(is_bad: bool):
            nonlocal sample
            async with channel(server.url) as ch:
                stub = pb_grpc.GRPCInferenceServiceStub(ch)
                while time.monotonic() < stop:
                    ids = rng.integers(1000, 5000, (1, 8)) if is_bad else rng.integers(0, 1000, (1, 8))
                    try:
                        await stub.ModelInfer(raw_request("tokens", "tokens", "INT64", ids.astype(np.int64)))
                        (bad if is_bad else good)["OK"] += 1
                    except Exception as exc:  # noqa: BLE001 - counted
                        (bad if is_bad else good)[code_of(exc)] += 1
                        if is_bad and not sample:
                            sample = exc.details()

        await asyncio.gather(*[client(False) for _ in range(8)], *[client(True) for _ in range(bad_clients)])
        return good, bad, sample

    try:
        before = server.tracebacks()
        alone, _, _ = asyncio.run(load(0))
        good, bad, sample = asyncio.run(load(1))
        traces = server.tracebacks() - before
    finally:
        server.terminate()
    _print_outcomes("8 good clients alone", alone)
    _print_outcomes("8 good clients beside 1 bad", good)
    _print_outcomes("the bad client", bad)
    print(f"  the bad client is told: {sample[:200]!r}")
    print(f"  tracebacks in the server log: {traces}")


def _print_outcomes(what: str, counts: collections.Counter) -> None:
    total = sum(counts.values())
    failed = total - counts["OK"]
    detail = ", ".join(f"{k} {v:,}" for k, v in counts.most_common())
    print(f"  {what}: {failed:,} of {total:,} failed ({100 * failed / max(total, 1):.1f}%): {detail}")


def fuzzed_calls(rng: random.Random, n: int):
    """(method, request bytes) pairs: every kind of malformed request a careless
    or hostile client sends, each a mutation of a valid one."""
    image = np.zeros((1, 1, 28, 28), np.float32)
    names = ["lenet", "tokens", "", "x" * 256, "y" * 300, "z" * 20_000, "../lenet", "lenet/1", "\0", "é" * 200,
             "/etc/passwd", ".", ".."]
    shapes = [[], [-1], [0, 2**63 - 1], [2**62, 2**62], [1, 1, 28, 28, 1], [2**31, 1, 28, 28], [1, 1, 28, -28],
              [2**63 - 1], [0, 1, 28, 28], [1, 1, 2**40, 28]]
    datatypes = ["FP32", "FP16", "INT64", "BYTES", "", "FP8", "Q" * 5000, "fp32", "BOOL", "UINT8"]
    for _ in range(n):
        kind = rng.randrange(9)
        if kind == 0:
            yield "ModelInfer", rng.randbytes(rng.randrange(1, 200))
            continue
        request = raw_request("lenet", "image", "FP32", image)
        if kind == 1:
            request.model_name = rng.choice(names)
        elif kind == 2:
            request.model_version = rng.choice(["-1", "99999999999999999999", "v" * 20_000, "1.0", "\0"])
        elif kind == 3:
            request.inputs[0].name = rng.choice(names)
        elif kind == 4:
            request.inputs[0].datatype = rng.choice(datatypes)
        elif kind == 5:
            del request.inputs[0].shape[:]
            request.inputs[0].shape.extend(rng.choice(shapes))
        elif kind == 6:
            request.raw_input_contents[0] = rng.randbytes(rng.randrange(0, 8000))
        elif kind == 7:  # typed contents: wrong field, wrong count, values out of the type's range
            request = pb.ModelInferRequest(model_name=rng.choice(["lenet", "tokens"]))
            t = request.inputs.add(name=rng.choice(["image", "tokens"]), datatype=rng.choice(datatypes),
                                   shape=rng.choice([[1, 1, 28, 28], [1, 8], [1, 3]]))
            field = rng.choice(["fp32_contents", "int64_contents", "uint_contents", "int_contents", "bool_contents"])
            choices = {"uint_contents": [0, 7, 300, 70_000, 2**32 - 1], "int_contents": [-2**31, -1, 300, 2**31 - 1],
                       "int64_contents": [-2**63, -1, 5000, 2**63 - 1]}.get(field)
            values = [rng.choice(choices) for _ in range(8)] if choices else \
                {"fp32_contents": [1.5] * 784, "bool_contents": [True] * 8}[field]
            getattr(t.contents, field).extend(values)
        else:
            request.outputs.add(name=rng.choice(names))
            request.id = rng.choice(["", "i" * 20_000])
        if rng.random() < 0.3:
            method = rng.choice(["ModelMetadata", "ModelReady", "ModelConfig", "ModelStatistics"])
            message = {"ModelMetadata": pb.ModelMetadataRequest, "ModelReady": pb.ModelReadyRequest,
                       "ModelConfig": pb.ModelConfigRequest, "ModelStatistics": pb.ModelStatisticsRequest}[method]
            yield method, message(name=rng.choice(names), version=rng.choice(["", "1", "x" * 300])).SerializeToString()
            continue
        yield "ModelInfer", request.SerializeToString()


def scenario_fuzz(args, tmp: Path) -> None:
    repository = tmp / "fuzz"
    compile_lenet(repository)
    compile_spec(TOKENS_SPEC, repository)
    server = Server(repository, "--log-level", "warning")
    calls = list(fuzzed_calls(random.Random(0), args.calls))

    async def send():
        codes, longest, worst = collections.Counter(), 0, {}
        async with channel(server.url) as ch:
            methods = {m: ch.unary_unary(f"/inference.GRPCInferenceService/{m}") for m in
                       ("ModelInfer", "ModelMetadata", "ModelReady", "ModelConfig", "ModelStatistics")}
            work = iter(calls)

            async def worker():
                nonlocal longest
                for method, data in work:
                    try:
                        await methods[method](data, timeout=30)
                        codes["OK"] += 1
                    except Exception as exc:  # noqa: BLE001 - counted
                        code = code_of(exc)
                        codes[code] += 1
                        details = exc.details() or ""
                        longest = max(longest, len(details))
                        if code in ("INTERNAL", "UNKNOWN", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"):
                            worst.setdefault(code, details[:160])

            await asyncio.gather(*[worker() for _ in range(8)])
        return codes, longest, worst

    try:
        codes, longest, worst = asyncio.run(send())
        alive = server.process.poll() is None
    finally:
        server.terminate()
    bad = codes["INTERNAL"] + codes["UNKNOWN"]
    print(f"  {len(calls):,} fuzzed calls: INTERNAL or UNKNOWN {bad:,}; " +
          ", ".join(f"{k} {v:,}" for k, v in codes.most_common()))
    for code, details in worst.items():
        print(f"  e.g. {code}: {details!r}")
    print(f"  longest message {longest:,} characters; tracebacks in the server log {server.tracebacks():,}; "
          f"server {'alive' if alive else 'DEAD'} at the end")


def scenario_specs(args, tmp: Path) -> None:
    for what, text in HOSTILE_SPECS.items():
        spec = tmp / f"{what.split(',')[0].replace(' ', '_')}.yaml"
        spec.write_text(text)
        child = Child([*NETSPEC, "check", str(spec)], timeout=args.timeout, memory_cap_mb=args.memory_cap_mb)
        code = child.wait()
        err = "".join(child.stderr)
        first = next((line.strip() for line in err.splitlines() if "error" in line), "")
        outcome = child.killed or f"exit {code}" + (", traceback" if "Traceback" in err else "")
        print(f"  {what} ({len(text.encode()):,} bytes): {outcome}, {child.elapsed:.1f} s, "
              f"peak {child.peak_kb / 1024:,.0f} MB; {first[-150:]!r}")


def scenario_repository(args, tmp: Path) -> None:
    repository = tmp / "repository"
    compile_lenet(repository)
    hand_written_model(repository, "expensive", small_spec(EXPENSIVE_EXPRESSION))
    server = Server(repository, "--log-level", "warning", ready_timeout=args.timeout)
    if server.url is None:
        print(f"  not ready within {args.timeout:g} s (a model stays LOADING)")
    else:
        print(f"  ready after {server.ready_after:.1f} s")

        async def look():
            async with channel(server.url) as ch:
                stub = pb_grpc.GRPCInferenceServiceStub(ch)
                index = await stub.RepositoryIndex(pb.RepositoryIndexRequest())
                ready = (await stub.ServerReady(pb.ServerReadyRequest())).ready
                lenet = (await stub.ModelReady(pb.ModelReadyRequest(name="lenet"))).ready
                return index, ready, lenet

        index, ready, lenet = asyncio.run(look())
        for m in index.models:
            print(f"    {m.name}: {m.state} {m.reason[:150]!r}")
        print(f"  ServerReady {ready}, lenet ready {lenet}")
    code, took = server.terminate(wait_s=10)
    print(f"  SIGTERM: " + (f"exit {code} after {took:.1f} s" if code is not None else "still running after 10 s, killed"))


def scenario_bomb(args, tmp: Path) -> None:
    for what, hostile in (("lenet alone", False), ("lenet and a 7-level alias bomb", True)):
        repository = tmp / ("bomb" if hostile else "plain")
        compile_lenet(repository)
        if hostile:
            hand_written_model(repository, "alias_bomb", alias_bomb(7))
        server = Server(repository, "--log-level", "warning", ready_timeout=args.timeout)
        pid = server.process.pid
        memory = f"RSS {_rss_kb(pid) / 1024:,.0f} MB, peak {_rss_kb(pid, 'VmHWM') / 1024:,.0f} MB"
        if server.url is None:
            print(f"  {what}: not ready within {args.timeout:g} s; {memory}")
        else:
            print(f"  {what}: ready after {server.ready_after:.1f} s; once ready {memory}")
        server.terminate(wait_s=10)


def scenario_shutdown(args, tmp: Path) -> None:
    repository = tmp / "shutdown"
    compile_lenet(repository)  # dynamic batching on, as compiled by default
    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)
    request = raw_request("lenet", "image", "FP32", x)
    totals, in_flight, exits = collections.Counter(), collections.Counter(), []
    for _ in range(args.rounds):
        server = Server(repository, "--log-level", "warning", "--grace", "30")
        calls: list[tuple[float, float, str]] = []
        signalled: list[float] = []

        async def clients():
            stop = asyncio.Event()

            async def client(stub):
                while not stop.is_set():
                    sent = time.monotonic()
                    try:
                        await stub.ModelInfer(request, timeout=60)
                        outcome = "OK"
                    except Exception as exc:  # noqa: BLE001 - counted
                        outcome = code_of(exc)
                    calls.append((sent, time.monotonic(), outcome))
                    if outcome != "OK" and signalled:
                        return  # the server said no: a real client would go elsewhere

            async with channel(server.url) as ch:  # one connection, as one tritonclient client has
                stub = pb_grpc.GRPCInferenceServiceStub(ch)
                tasks = [asyncio.create_task(client(stub)) for _ in range(32)]
                await asyncio.sleep(2.0)
                signalled.append(time.monotonic())
                server.process.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.5)
                stop.set()
                await asyncio.gather(*tasks)

        asyncio.run(clients())
        code = server.process.wait(timeout=60)
        exited = time.monotonic()
        at = signalled[0]
        last = max(end for _, end, _ in calls)
        exits.append((code, exited - last))
        for sent, end, outcome in calls:
            if sent < at:
                totals[outcome] += 1
                if end > at:
                    in_flight[outcome] += 1
    print(f"  {args.rounds} rounds of 32 clients on one connection, batch-1 lenet, SIGTERM after 2 s (--grace 30)")
    _print_outcomes("calls sent before the signal", totals)
    _print_outcomes("of those, in flight at the signal", in_flight)
    print("  exit codes and seconds from the last answer to exit: " +
          ", ".join(f"{c} ({s:.2f} s)" for c, s in exits))


def scenario_security(args, tmp: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    repository = tmp / "security" / "models"
    compile_lenet(repository)
    lenet = repository / "lenet"
    outside = tmp / "security" / "outside"
    shutil.copytree(lenet, outside)
    shutil.copytree(lenet, repository / "passwd")
    (repository / "passwd" / "1" / "spec.yaml").unlink()
    (repository / "passwd" / "1" / "spec.yaml").symlink_to("/etc/passwd")
    (repository / "linked").mkdir()
    shutil.copy(lenet / "config.pbtxt", repository / "linked" / "config.pbtxt")
    (repository / "linked" / "1").symlink_to(outside / "1")
    shutil.copytree(lenet, repository / "int8")
    weights = repository / "int8" / "1" / "weights.safetensors"
    save_file({k: (v * 100).to(torch.int8) for k, v in load_file(str(weights)).items()}, str(weights))
    for name in ("passwd", "linked", "int8"):
        config = repository / name / "config.pbtxt"
        config.write_text(config.read_text().replace('name: "lenet"', f'name: "{name}"'))

    server = Server(repository, "--log-level", "warning")

    async def probe():
        async with channel(server.url) as ch:
            stub = pb_grpc.GRPCInferenceServiceStub(ch)
            index = await stub.RepositoryIndex(pb.RepositoryIndexRequest())
            states = {m.name: m for m in index.models}
            image = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)
            served = {}
            for name in ("lenet", "int8", "linked"):
                try:
                    r = await stub.ModelInfer(raw_request(name, "image", "FP32", image))
                    served[name] = np.frombuffer(r.raw_output_contents[0], np.float32)
                except Exception as exc:  # noqa: BLE001
                    served[name] = code_of(exc)
            try:
                await stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="lenet"))
                unload = "succeeded"
            except Exception as exc:  # noqa: BLE001
                unload = f"{code_of(exc)}: {exc.details()[:120]!r}"
            return states, served, unload

    try:
        states, served, unload = asyncio.run(probe())
    finally:
        server.terminate()
    first_line = Path("/etc/passwd").read_text().splitlines()[0]
    reasons = " ".join(m.reason for m in states.values())
    for name in ("passwd", "linked", "int8"):
        m = states.get(name)
        print(f"  {name}: {m.state if m else '?'} {m.reason[:160] if m else ''!r}")
    print(f"  /etc/passwd's first line in a reason: {first_line in reasons}; "
          f"absolute server paths in reasons: {str(tmp) in reasons}")
    if isinstance(served.get("int8"), np.ndarray):
        diff = float(np.abs(served["int8"] - served["lenet"]).max())
        print(f"  int8 weights serve logits that differ from lenet's by up to {diff:.3g}")
    else:
        print(f"  int8 weights: inference answers {served.get('int8')}")
    linked = served.get("linked")
    print(f"  version folder linked outside the repository: {'served' if isinstance(linked, np.ndarray) else linked}")
    print(f"  anonymous RepositoryModelUnload: {unload}")
    helps = subprocess.run([*NETSPEC, "serve", "--help"], cwd=ROOT, env=ENV, capture_output=True, text=True).stdout
    print("  serve flags: " + ", ".join(f"{f} {'yes' if f in helps else 'no'}" for f in
                                         ("--tls-cert", "--tls-client-ca", "--auth-token-file",
                                          "--model-control-mode")))
    docker = (ROOT / "Dockerfile").read_text()
    print(f"  Dockerfile: USER set {'yes' if 'USER ' in docker else 'no'}; binds 0.0.0.0 {'yes' if '0.0.0.0' in docker else 'no'}")


def scenario_typed(args, tmp: Path) -> None:
    repository = tmp / "typed"
    compile_spec(WIDE_SPEC, repository, "--max-batch-size", "4096", "--no-dynamic-batching")
    server = Server(repository, "--log-level", "warning")
    rows = 3400  # 3.4 million float32 values: 13.6 MB on the wire
    typed = pb.ModelInferRequest(model_name="wide")
    t = typed.inputs.add(name="x", datatype="FP32", shape=[rows, 1000])
    t.contents.fp32_contents.extend(np.ones(rows * 1000, np.float32).tolist())
    raw = raw_request("wide", "x", "FP32", np.ones((rows, 1000), np.float32))

    async def stalls(request) -> tuple[float, float]:
        async with channel(server.url) as ch, channel(server.url) as ping_ch:
            stub, ping = pb_grpc.GRPCInferenceServiceStub(ch), pb_grpc.GRPCInferenceServiceStub(ping_ch)
            await ping.ServerLive(pb.ServerLiveRequest())
            worst, done = 0.0, asyncio.Event()

            async def pinger():
                nonlocal worst
                while not done.is_set():
                    sent = time.monotonic()
                    await ping.ServerLive(pb.ServerLiveRequest())
                    worst = max(worst, time.monotonic() - sent)
                    await asyncio.sleep(0.005)

            task = asyncio.create_task(pinger())
            sent = time.monotonic()
            for _ in range(3):
                await stub.ModelInfer(request, timeout=120)
            took = (time.monotonic() - sent) / 3
            done.set()
            await task
            return worst, took

    try:
        for what, request in (("typed contents", typed), ("raw contents", raw)):
            worst, took = asyncio.run(stalls(request))
            print(f"  {what}, {request.ByteSize() / 1e6:.1f} MB: each call {took:.2f} s; "
                  f"ServerLive meanwhile at worst {worst * 1e3:.0f} ms")
    finally:
        server.terminate()


def scenario_readiness(args, tmp: Path) -> None:
    repository = tmp / "readiness"
    compile_lenet(repository)
    (repository / "lenet" / "1" / "weights.safetensors").write_bytes(b"not safetensors")
    server = Server(repository, "--log-level", "error")

    async def look():
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        async with channel(server.url) as ch:
            ready = (await pb_grpc.GRPCInferenceServiceStub(ch).ServerReady(pb.ServerReadyRequest())).ready
            try:
                health = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)
            except grpc.aio.AioRpcError as exc:
                status = code_of(exc)
            return ready, status

    try:
        ready, status = asyncio.run(look())
    finally:
        server.terminate()
    print(f"  every model failed to load: ServerReady {ready}, health {status}")


SCENARIOS = {
    "poison": scenario_poison, "fuzz": scenario_fuzz, "specs": scenario_specs, "repository": scenario_repository,
    "bomb": scenario_bomb, "shutdown": scenario_shutdown, "security": scenario_security, "typed": scenario_typed,
    "readiness": scenario_readiness,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load phase (default: 10)")
    parser.add_argument("--calls", type=int, default=12_000, help="fuzzed calls (default: 12,000)")
    parser.add_argument("--rounds", type=int, default=3, help="shutdown rounds (default: 3)")
    parser.add_argument("--timeout", type=float, default=60.0, help="cap on a child's seconds (default: 60)")
    parser.add_argument("--memory-cap-mb", type=int, default=4096, help="cap on a child's memory (default: 4096)")
    args = parser.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}")
    for name in args.scenarios or SCENARIOS:
        print(f"\n{name}")
        with tempfile.TemporaryDirectory() as tmp:
            SCENARIOS[name](args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
