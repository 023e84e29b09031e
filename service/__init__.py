"""netspec's inference service: a KServe v2 / Triton gRPC server for compiled models."""

__version__ = "0.1.0"
