# netspec: compile the specs in specs/ into a model repository at build time,
# serve it over gRPC (KServe v2 / Triton protocol) on port 8001.
#
#   docker build -t netspec .
#   docker run --rm -p 8001:8001 netspec
#
# The default torch wheel from PyPI runs on CPU and, on a host with an NVIDIA
# GPU and the container toolkit (see docker-compose.yml), on CUDA.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/netspec

# Dependencies first, so editing the sources does not reinstall torch.
COPY pyproject.toml README.md ./
RUN mkdir compiler service \
    && touch compiler/__init__.py service/__init__.py \
    && pip install . \
    && pip uninstall -y netspec

COPY protos/ protos/
COPY compiler/ compiler/
COPY service/ service/
COPY specs/ specs/
RUN pip install --no-deps . \
    && netspec compile specs/ --repository /models --quiet

EXPOSE 8001

# grpc.health.v1 answers SERVING once the models are loaded.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import grpc, sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; \
s = g.HealthStub(grpc.insecure_channel('127.0.0.1:8001')).Check(h.HealthCheckRequest(), timeout=4).status; \
sys.exit(0 if s == h.HealthCheckResponse.SERVING else 1)"

# exec form: SIGTERM from `docker stop` reaches the server, which drains calls
# in flight for up to --grace seconds before exiting.
CMD ["netspec", "serve", "--repository", "/models", "--host", "0.0.0.0", "--port", "8001", "--grace", "30"]
