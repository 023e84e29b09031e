"""`python -m service.healthcheck`: exit 0 if a server's grpc.health.v1 says
SERVING, 1 otherwise, for container and orchestrator probes. Health needs no
token; with TLS give the CA (and, for mutual TLS, a client certificate).

    python -m service.healthcheck --url 127.0.0.1:8001
    python -m service.healthcheck --url 127.0.0.1:8001 --tls-ca ca.crt --server-name localhost
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="127.0.0.1:8001")
    parser.add_argument("--tls-ca", type=Path, metavar="FILE", help="connect with TLS, trusting this PEM CA")
    parser.add_argument("--tls-cert", type=Path, metavar="FILE", help="client certificate, for mutual TLS")
    parser.add_argument("--tls-key", type=Path, metavar="FILE", help="the private key of --tls-cert")
    parser.add_argument("--server-name", help="the name the server's certificate is for, when not the url's host")
    parser.add_argument("--timeout", type=float, default=4.0, metavar="SECONDS")
    args = parser.parse_args(argv)

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
    try:
        if args.tls_ca or args.tls_cert:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=args.tls_ca.read_bytes() if args.tls_ca else None,
                private_key=args.tls_key.read_bytes() if args.tls_key else None,
                certificate_chain=args.tls_cert.read_bytes() if args.tls_cert else None,
            )
            channel = grpc.secure_channel(args.url, credentials, options=options)
        else:
            channel = grpc.insecure_channel(args.url, options=options)
        with channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                               timeout=args.timeout).status
    except (grpc.RpcError, OSError) as e:
        print(f"{args.url}: {getattr(e, 'code', lambda: e)()}", file=sys.stderr)
        return 1
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    print(f"{args.url}: {name}")
    return 0 if status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
