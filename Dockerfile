# netspec: compile the specs in specs/ into a model repository at build time,
# serve it over gRPC (KServe v2 / Triton protocol) on port 8001, with TLS
# and token authentication, as an unprivileged user.
#
#   docker build -t netspec .
#   docker run --rm -p 8001:8001 -v "$PWD/secrets:/run/secrets/netspec:ro" netspec
#
# secrets/ holds server.crt and server.key (the TLS certificate and its key),
# ca.crt (the CA that signed server.crt, for the health check) and
# tokens.txt (one token a line; clients send `authorization: Bearer TOKEN`).
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
    && netspec compile specs/ --repository /models --quiet \
    && useradd --system --no-create-home --shell /usr/sbin/nologin netspec

# The server runs unprivileged and reads a repository it cannot change.
USER netspec

EXPOSE 8001

# grpc.health.v1 (no token needed) answers SERVING once every model is ready.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "service.healthcheck", "--url", "127.0.0.1:8001", \
         "--tls-ca", "/run/secrets/netspec/ca.crt", "--server-name", "localhost"]

# exec form: SIGTERM from `docker stop` reaches the server, which drains calls
# in flight for up to --grace seconds before exiting. 0.0.0.0 because the
# container's port is published; TLS and tokens guard it.
CMD ["netspec", "serve", "--repository", "/models", "--host", "0.0.0.0", "--port", "8001", "--grace", "30", \
     "--tls-cert", "/run/secrets/netspec/server.crt", "--tls-key", "/run/secrets/netspec/server.key", \
     "--auth-token-file", "/run/secrets/netspec/tokens.txt", "--model-control-mode", "none"]
