"""Generated gRPC code for protos/grpc_service.proto (see service/protos_gen.py). Do not edit."""

from compiler.protocol.generated import POOL  # the one pool: grpc_service.proto imports model_config.proto

__all__ = ["POOL"]
