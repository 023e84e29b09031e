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

from service.options import CONTROL_MODES, GRPC_MAX_MESSAGE_BYTES, ServeOptions

SERVE_EXAMPLE = """example:
  netspec compile specs/lenet.yaml --repository models/
  netspec serve --repository models/ --port 8001

  # four server processes on port 8001, each with its own copy of the models
  netspec serve --repository models/ --port 8001 --workers 4

  # reachable from other machines: TLS and a token
  netspec serve --repository models/ --host 0.0.0.0 \\
      --tls-cert server.crt --tls-key server.key --auth-token-file tokens.txt

The server speaks the KServe v2 / Triton gRPC protocol: tritonclient and
perf_analyzer work against it. SIGTERM or SIGINT stops it gracefully."""

INFER_EXAMPLE = """example:
  python -c "import numpy as np; np.save('x.npy', np.zeros((1, 1, 28, 28), np.float32))"
  netspec infer lenet --input image=x.npy -o out.npz
  netspec infer lenet --input image=x.npy --url host:8001 --tls-ca ca.crt --token-file token.txt

Without -o, each output's name, shape and first values are printed."""

DEFAULTS = ServeOptions()
MAX_WORKERS = 64  # each loads every model: a typo must not fork a thousand copies
PREVIEW = 8  # values of each output printed without -o


def _on_off(text: str) -> bool:
    """Triton's spelling: --strict-readiness=true|false."""
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "on", "off", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value in ("true", "1", "on", "yes")


def add_commands(subparsers) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="Serve a model repository over gRPC (KServe v2 / Triton protocol).",
        description="Serve every model of a repository written by `netspec compile --repository`.",
        epilog=SERVE_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--repository", required=True, type=Path, metavar="DIR", help="model repository directory")
    serve.add_argument("--host", default=DEFAULTS.host, help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=DEFAULTS.port,
                       help="port to listen on; 0 picks a free one (default: 8001)")
    serve.add_argument(
        "--device", default=DEFAULTS.device,
        help="auto (CUDA when present, else CPU), cpu, cuda or cuda:K (default: auto)"
    )
    serve.add_argument(
        "--model", action="append", dest="models", metavar="NAME", help="load only this model (repeatable)"
    )
    serve.add_argument(
        "--grace", type=float, default=DEFAULTS.grace_s, metavar="SECONDS",
        help="at shutdown, how long calls already accepted may take to finish (default: 30)",
    )
    serve.add_argument(
        "--metrics-port", type=int, default=DEFAULTS.metrics_port, metavar="PORT",
        help="Prometheus metrics at http://HOST:PORT/metrics, in Triton's names; 0 turns them off (default: 8002)",
    )
    serve.add_argument("--metrics-host", default=None, metavar="HOST",
                       help="address the metrics listen on (default: --host); they are plain HTTP, unauthenticated")
    serve.add_argument(
        "--workers", type=int, default=DEFAULTS.workers, metavar="K",
        help=f"server processes sharing --port (SO_REUSEPORT), each with its own copy of the models, "
             f"at most {MAX_WORKERS}; the port must be free (default: 1)",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    limits = serve.add_argument_group("readiness and limits")
    limits.add_argument(
        "--strict-readiness", type=_on_off, default=DEFAULTS.strict_readiness, metavar="true|false",
        help="true: ready (and health SERVING) only while every model asked for is ready; "
             "false: ready once listening (default: true)",
    )
    limits.add_argument(
        "--model-control-mode", choices=CONTROL_MODES, default=DEFAULTS.model_control_mode,
        help="none: RepositoryModelLoad and RepositoryModelUnload are refused; explicit: allowed (default: none)",
    )
    limits.add_argument(
        "--model-load-timeout", type=float, default=DEFAULTS.model_load_timeout_s, metavar="SECONDS",
        help="a model whose load takes longer fails to load (default: 120)",
    )
    limits.add_argument(
        "--model-load-thread-count", type=int, default=DEFAULTS.model_load_threads, metavar="N",
        help="models loading at once, while free memory allows (default: 4)",
    )
    limits.add_argument(
        "--intra-op-threads", type=int, default=DEFAULTS.intra_op_threads, metavar="N",
        help="threads torch uses within one operation (default: torch's, one per core); "
             "with small models on few cores, 1 leaves the others to gRPC",
    )
    limits.add_argument(
        "--max-message-bytes", type=int, default=DEFAULTS.max_message_bytes, metavar="BYTES",
        help="largest request and response message (default: 268435456, 256 MiB)",
    )
    security = serve.add_argument_group("security")
    security.add_argument("--tls-cert", type=Path, metavar="FILE", help="serve TLS with this PEM certificate (chain)")
    security.add_argument("--tls-key", type=Path, metavar="FILE", help="the PEM private key of --tls-cert")
    security.add_argument("--tls-client-ca", type=Path, metavar="FILE",
                          help="mutual TLS: refuse clients without a certificate signed by this PEM CA")
    security.add_argument("--auth-token-file", type=Path, metavar="FILE",
                          help="tokens, one a line: every RPC but health needs metadata 'authorization: Bearer TOKEN'")
    security.add_argument(
        "--allow-client-shm", type=_on_off, default=DEFAULTS.allow_client_shm, metavar="true|false",
        help="let clients register system shared memory (/dev/shm) regions and send and receive tensors "
             "through them, as Triton's flag of the same name (default: false)",
    )
    serve.set_defaults(func=run_serve)

    infer = subparsers.add_parser(
        "infer",
        help="Send one inference request to a netspec (or Triton) server.",
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
    infer.add_argument("--tls-ca", type=Path, metavar="FILE",
                       help="connect with TLS, trusting this PEM CA (the server's --tls-cert signer)")
    infer.add_argument("--tls-cert", type=Path, metavar="FILE", help="client certificate, for mutual TLS")
    infer.add_argument("--tls-key", type=Path, metavar="FILE", help="the private key of --tls-cert")
    infer.add_argument("--token-file", type=Path, metavar="FILE",
                       help="send the token in this file as 'authorization: Bearer TOKEN'")
    infer.set_defaults(func=run_infer)


def _fail(message: str) -> int:
    print(f"netspec: error: {message}", file=sys.stderr)
    return 2


def _readable(path: Path | None, flag: str) -> str | None:
    """None if `path` is unset or a readable file, else the error."""
    if path is None:
        return None
    try:
        path.read_bytes()
    except OSError as e:
        return f"{flag} {path}: {e.strerror}"
    return None


def serve_options(args: argparse.Namespace) -> ServeOptions | str:
    """The options of `netspec serve`, or the first error in them."""
    if not args.repository.is_dir():
        return f"repository {args.repository} is not a directory"
    if not 0 <= args.port <= 65535:
        return f"--port {args.port} is not a port number"
    if not 0 <= args.metrics_port <= 65535:
        return f"--metrics-port {args.metrics_port} is not a port number"
    if args.metrics_port and args.metrics_port == args.port:
        return f"--metrics-port {args.metrics_port} is the gRPC --port too: choose another, or 0 for no metrics"
    if args.grace < 0:
        return "--grace must be 0 or more"
    if args.model_load_timeout <= 0:
        return "--model-load-timeout must be more than 0"
    if args.model_load_thread_count < 1:
        return "--model-load-thread-count must be 1 or more"
    if args.intra_op_threads is not None and args.intra_op_threads < 1:
        return "--intra-op-threads must be 1 or more"
    if not 1024 <= args.max_message_bytes <= GRPC_MAX_MESSAGE_BYTES:
        return f"--max-message-bytes must be between 1024 and {GRPC_MAX_MESSAGE_BYTES} (what gRPC can carry)"
    if (args.tls_cert is None) != (args.tls_key is None):
        return "--tls-cert and --tls-key go together"
    if args.tls_client_ca is not None and args.tls_cert is None:
        return "--tls-client-ca needs --tls-cert and --tls-key"
    for path, flag in ((args.tls_cert, "--tls-cert"), (args.tls_key, "--tls-key"),
                       (args.tls_client_ca, "--tls-client-ca"), (args.auth_token_file, "--auth-token-file")):
        if error := _readable(path, flag):
            return error
    tokens: tuple[str, ...] = ()
    if args.auth_token_file is not None:
        from service.auth import read_tokens

        try:
            tokens = read_tokens(args.auth_token_file)
        except (ValueError, UnicodeDecodeError) as e:
            return f"--auth-token-file: {e}"
    for name in args.models or []:
        if not (args.repository / name).is_dir():
            return f"--model {name}: no such model in {args.repository}"
    if not 1 <= args.workers <= MAX_WORKERS:
        return f"--workers {args.workers}: must be between 1 and {MAX_WORKERS}"
    if args.workers > 1 and args.model_control_mode != "none":
        # A load or unload reaches the one worker holding the caller's connection.
        return "--model-control-mode explicit cannot be used with --workers: it would reach one worker only"
    return ServeOptions(
        host=args.host, port=args.port, device=args.device, models=args.models, grace_s=args.grace,
        strict_readiness=args.strict_readiness, model_control_mode=args.model_control_mode,
        model_load_timeout_s=args.model_load_timeout, model_load_threads=args.model_load_thread_count,
        max_message_bytes=args.max_message_bytes, tls_cert=args.tls_cert, tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca, auth_tokens=tokens, metrics_port=args.metrics_port,
        metrics_host=args.metrics_host, allow_client_shm=args.allow_client_shm, workers=args.workers,
        intra_op_threads=args.intra_op_threads,
    )


def run_serve(args: argparse.Namespace) -> int:
    options = serve_options(args)
    if isinstance(options, str):
        return _fail(options)
    import asyncio
    import logging
    import os

    _passive_openmp()
    process = "[%(process)d]" if options.workers > 1 else ""  # which worker says it
    logging.basicConfig(
        level=args.log_level.upper(), format=f"%(asctime)s %(levelname)s %(name)s{process}: %(message)s",
        stream=sys.stderr,
    )

    def ready(host: str, port: int) -> None:
        # One parseable line on stdout: scripts and tests wait for it (with --port 0).
        print(f"netspec serve: ready on {host}:{port}", flush=True)

    if options.workers > 1:
        from service.workers import GroupError, run_group  # imports neither grpc nor torch: it forks

        try:
            code = run_group(args.repository, options, on_ready=ready)
        except GroupError as e:
            return _fail(str(e))
        logging.shutdown()
        return code

    from service.reuseport import check_free

    if options.port:
        try:
            check_free(options.host, options.port)
        except OSError as e:  # PortBusy, or an address this machine does not have
            return _fail(f"cannot serve on {options.host}:{options.port}: {e}")
    from compiler.cli import settle_imports
    from service.metrics import MetricsPortError
    from service.runtime import resolve_device
    from service.server import serve

    settle_imports(args)
    try:
        resolve_device(options.device)
    except (ValueError, RuntimeError) as e:
        return _fail(str(e))

    try:
        code = asyncio.run(serve(args.repository, options, on_listening=ready))
    except MetricsPortError as e:
        return _fail(str(e))
    except (OSError, RuntimeError) as e:  # grpc reports unusable TLS files as RuntimeError
        return _fail(f"cannot serve on {options.host}:{options.port}: {e}")
    # The server has stopped and released its models: nothing is left to
    # finalise. Tearing down the interpreter with torch loaded takes most
    # of a second here, and a load abandoned past its time limit may still
    # run in a daemon thread; the process owns the server, so it ends now.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _passive_openmp() -> None:
    """OpenMP threads that sleep between torch's operations, unless the user
    chose otherwise. By default they spin for a while after each one, and a
    server runs one small operation after another: the spinning threads take
    the cores that gRPC's threads and the event loop need (on 2 shared cores
    lenet served 10 to 30 times fewer requests). Read once, when torch loads its OpenMP runtime, so
    this must run before torch is imported."""
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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
    if (args.tls_cert is None) != (args.tls_key is None):
        return _fail("--tls-cert and --tls-key go together")
    for path, flag in ((args.tls_ca, "--tls-ca"), (args.tls_cert, "--tls-cert"), (args.tls_key, "--tls-key"),
                       (args.token_file, "--token-file")):
        if error := _readable(path, flag):
            return _fail(error)
    headers = None
    if args.token_file is not None:
        token = args.token_file.read_text(encoding="utf-8", errors="replace").strip()
        if not token or any(c.isspace() for c in token):
            return _fail(f"--token-file {args.token_file}: expected one token")
        headers = {"authorization": f"Bearer {token}"}

    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException, np_to_triton_dtype

    tls = args.tls_ca is not None or args.tls_cert is not None
    try:
        client = grpcclient.InferenceServerClient(
            url=args.url, ssl=tls,
            root_certificates=str(args.tls_ca) if args.tls_ca else None,
            private_key=str(args.tls_key) if args.tls_key else None,
            certificate_chain=str(args.tls_cert) if args.tls_cert else None,
        )
        meta = client.get_model_metadata(args.model, args.model_version, headers=headers,
                                          client_timeout=args.timeout)
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
            args.model, inputs, model_version=args.model_version, outputs=outputs, headers=headers,
            client_timeout=args.timeout,
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
            preview = np.array2string(value.reshape(-1)[:PREVIEW], precision=4, separator=", ")
            if value.size > PREVIEW:  # say that the values go on
                preview = preview[:-1] + ", ...]"
            print(f"{name}: {value.dtype} {list(value.shape)} {preview}")
    return 0
