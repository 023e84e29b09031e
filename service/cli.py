"""The `netspec serve` and `netspec infer` commands.

compiler/cli.py calls add_commands(subparsers). Heavy imports (torch, grpc,
tritonclient) happen inside the command functions, so `netspec --help` and
the compile commands stay fast. Bad arguments give a one-line error and exit
code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SERVE_EXAMPLE = """example:
  netspec compile specs/lenet.yaml --repository models/
  netspec serve --repository models/ --port 8001

The server speaks the KServe v2 / Triton gRPC protocol: tritonclient and
perf_analyzer work against it. SIGTERM or SIGINT stops it gracefully."""

INFER_EXAMPLE = """example:
  python -c "import numpy as np; np.save('x.npy', np.zeros((1, 1, 28, 28), np.float32))"
  netspec infer lenet --input image=x.npy -o out.npz

Without -o, each output's name, shape and first values are printed."""


def add_commands(subparsers) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="serve a model repository over gRPC (KServe v2 / Triton protocol)",
        description="Serve every model of a repository written by `netspec compile --repository`.",
        epilog=SERVE_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--repository", required=True, type=Path, metavar="DIR", help="model repository directory")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8001, help="port to listen on; 0 picks a free one (default: 8001)")
    serve.add_argument(
        "--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:K (default: auto)"
    )
    serve.add_argument(
        "--model", action="append", dest="models", metavar="NAME", help="load only this model (repeatable)"
    )
    serve.add_argument(
        "--grace", type=float, default=30.0, metavar="SECONDS",
        help="at shutdown, how long calls in flight may take to finish (default: 30)",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(func=run_serve)

    infer = subparsers.add_parser(
        "infer",
        help="send one inference request to a netspec (or Triton) server",
        description="Run MODEL on inputs read from .npy files, through a gRPC server.",
        epilog=INFER_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    infer.add_argument("model", metavar="MODEL")
    infer.add_argument(
        "--input", action="append", default=[], metavar="NAME=FILE.npy", required=True,
        help="an input tensor (repeatable)",
    )
    infer.add_argument("--url", default="127.0.0.1:8001", help="server address (default: 127.0.0.1:8001)")
    infer.add_argument("--model-version", default="", metavar="K", help="model version (default: the newest)")
    infer.add_argument("-o", "--output", type=Path, metavar="OUT.npz", help="write the outputs to this .npz file")
    infer.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="request timeout (default: 30)")
    infer.set_defaults(func=run_infer)


def _fail(message: str) -> int:
    print(f"netspec: error: {message}", file=sys.stderr)
    return 2


def run_serve(args: argparse.Namespace) -> int:
    if not args.repository.is_dir():
        return _fail(f"repository {args.repository} is not a directory")
    if not 0 <= args.port <= 65535:
        return _fail(f"--port {args.port} is not a port number")
    if args.grace < 0:
        return _fail("--grace must be 0 or more")
    for name in args.models or []:
        if not (args.repository / name).is_dir():
            return _fail(f"--model {name}: no such model in {args.repository}")
    import asyncio
    import logging

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    from service.runtime import resolve_device
    from service.server import serve

    try:
        resolve_device(args.device)
    except (ValueError, RuntimeError) as e:
        return _fail(str(e))

    def ready(host: str, port: int) -> None:
        # One parseable line on stdout: scripts and tests wait for it (with --port 0).
        print(f"netspec serve: ready on {host}:{port}", flush=True)

    try:
        return asyncio.run(
            serve(
                args.repository, host=args.host, port=args.port, device=args.device,
                models=args.models, grace_s=args.grace, on_listening=ready,
            )
        )
    except OSError as e:
        return _fail(f"cannot serve on {args.host}:{args.port}: {e}")


def run_infer(args: argparse.Namespace) -> int:
    import numpy as np

    arrays = {}
    for item in args.input:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            return _fail(f"--input {item!r}: expected NAME=FILE.npy")
        try:
            arrays[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            return _fail(f"--input {name}: cannot read {path} as .npy: {e}")

    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException, np_to_triton_dtype

    try:
        client = grpcclient.InferenceServerClient(url=args.url)
        meta = client.get_model_metadata(args.model, args.model_version, client_timeout=args.timeout)
        inputs = []
        for name, array in arrays.items():
            datatype = np_to_triton_dtype(array.dtype)
            if datatype is None:
                return _fail(f"--input {name}: numpy dtype {array.dtype} has no KServe datatype")
            inp = grpcclient.InferInput(name, list(array.shape), datatype)
            inp.set_data_from_numpy(np.ascontiguousarray(array))
            inputs.append(inp)
        outputs = [grpcclient.InferRequestedOutput(o.name) for o in meta.outputs]
        result = client.infer(
            args.model, inputs, model_version=args.model_version, outputs=outputs, client_timeout=args.timeout
        )
    except InferenceServerException as e:
        status = e.status() or "error"
        return _fail(f"{args.url}: {status}: {e.message()}")
    arrays_out = {o.name: result.as_numpy(o.name) for o in meta.outputs}
    if args.output is not None:
        np.savez(args.output, **arrays_out)
        print(f"wrote {', '.join(arrays_out)} to {args.output}")
    else:
        for name, value in arrays_out.items():
            preview = np.array2string(value.reshape(-1)[:8], precision=4, separator=", ")
            print(f"{name}: {value.dtype} {list(value.shape)} {preview}")
    return 0
