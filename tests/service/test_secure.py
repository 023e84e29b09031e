"""TLS, mutual TLS and token authentication, as Triton's L0_secure_grpc
checks them: certificates made here (the `cryptography` package), the
server in its own process, the real grpc and tritonclient clients."""

from __future__ import annotations

import datetime
import ipaddress

import grpc
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server_process import ROOT, Server, netspec, write_spec_model
from service.auth import TokenCheck, read_tokens
from service.errors import Unauthenticated
from service.generated import grpc_service_pb2 as pb
from service.generated import grpc_service_pb2_grpc as pb_grpc

TOKENS = "# one token a line\n\nfirst-token\nsecond-token\n"


def _certificate(subject: str, key, issuer=None, issuer_key=None, *, ca=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name((issuer or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


class Authority:
    """A certificate authority that signs server and client certificates into files."""

    def __init__(self, folder, name: str):
        self.folder, self.name = folder, name
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = _certificate(f"{name} CA", self.key, ca=True)
        self.cert_file = self._write(f"{name}-ca.crt", self.cert.public_bytes(serialization.Encoding.PEM))

    def _write(self, name: str, data: bytes):
        path = self.folder / name
        path.write_bytes(data)
        return path

    def issue(self, subject: str) -> tuple:
        """(certificate file, key file) for `subject`, valid for 127.0.0.1."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(subject, key, self.cert.subject, self.key)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return (self._write(f"{self.name}-{subject}.crt", cert.public_bytes(serialization.Encoding.PEM)),
                self._write(f"{self.name}-{subject}.key", key_pem))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca, rogue = Authority(folder, "trusted"), Authority(folder, "rogue")
    tokens = folder / "tokens.txt"
    tokens.write_text(TOKENS)
    token = folder / "token.txt"
    token.write_text("second-token\n")
    return {"ca": ca, "server": ca.issue("server"), "client": ca.issue("client"), "rogue": rogue.issue("client"),
            "tokens": tokens, "token": token, "folder": folder}


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("secure") / "models"
    write_spec_model(root, (ROOT / "specs" / "lenet.yaml").read_text())
    return root


@pytest.fixture(scope="module")
def servers(repository, pki):
    cert, key = pki["server"]
    tls = Server(repository, "--tls-cert", cert, "--tls-key", key, "--auth-token-file", pki["tokens"],
                 expect_ready=False)
    mtls = Server(repository, "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", pki["ca"].cert_file,
                  expect_ready=False)
    for server in (tls, mtls):
        server.wait_ready()
    yield {"tls": tls, "mtls": mtls}
    for server in (tls, mtls):
        assert server.stop() == 0


def secure(url: str, pki, client=None):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki["ca"].cert_file.read_bytes(),
        private_key=client[1].read_bytes() if client else None,
        certificate_chain=client[0].read_bytes() if client else None,
    )
    return grpc.secure_channel(url, credentials)


def status_of(call) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


def lenet_request():
    request = pb.ModelInferRequest(model_name="lenet")
    request.inputs.add(name="image", datatype="FP32", shape=[1, 1, 28, 28])
    request.raw_input_contents.append(np.zeros((1, 1, 28, 28), np.float32).tobytes())
    return request


def test_tls_with_tokens(servers, pki):
    url = servers["tls"].url
    with grpc.insecure_channel(url) as plain:  # no TLS: the handshake fails
        code, _ = status_of(lambda: pb_grpc.GRPCInferenceServiceStub(plain).ServerLive(pb.ServerLiveRequest(),
                                                                                        timeout=10))
        assert code == grpc.StatusCode.UNAVAILABLE
    with secure(url, pki) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        # Health answers without a token: probes carry none.
        assert health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status == \
            health_pb2.HealthCheckResponse.SERVING
        for metadata, words in ((None, "needs a token"), ((("authorization", "Bearer wrong"),), "not valid"),
                                ((("authorization", "Basic Zmlyc3QtdG9rZW4="),), "needs a token"),
                                ((("authorization", "Bearer first-token-and-more"),), "not valid")):
            for call in (lambda: stub.ServerLive(pb.ServerLiveRequest(), metadata=metadata, timeout=10),
                         lambda: stub.ModelInfer(lenet_request(), metadata=metadata, timeout=10),
                         lambda: stub.RepositoryIndex(pb.RepositoryIndexRequest(), metadata=metadata, timeout=10)):
                code, message = status_of(call)
                assert code == grpc.StatusCode.UNAUTHENTICATED and words in message, (metadata, message)
        for token in ("first-token", "second-token"):
            response = stub.ModelInfer(lenet_request(), metadata=(("authorization", f"Bearer {token}"),), timeout=10)
            assert len(response.raw_output_contents[0]) == 40


def test_tritonclient_and_netspec_infer_over_tls_with_a_token(servers, pki, tmp_path):
    import tritonclient.grpc as grpcclient

    url = servers["tls"].url
    client = grpcclient.InferenceServerClient(url, ssl=True, root_certificates=str(pki["ca"].cert_file))
    headers = {"authorization": "Bearer first-token"}
    image = grpcclient.InferInput("image", [1, 1, 28, 28], "FP32")
    image.set_data_from_numpy(np.zeros((1, 1, 28, 28), np.float32))
    assert client.infer("lenet", [image], headers=headers).as_numpy("logits").shape == (1, 10)
    client.close()

    np.save(tmp_path / "x.npy", np.zeros((1, 1, 28, 28), np.float32))
    base = ("infer", "lenet", "--input", f"image={tmp_path / 'x.npy'}", "--url", url, "--tls-ca", pki["ca"].cert_file)
    done = netspec(*base, "--token-file", pki["token"], timeout=120)
    assert done.returncode == 0 and "logits: float32 [1, 10]" in done.stdout, done.stderr
    refused = netspec(*base, timeout=120)
    assert refused.returncode == 2 and "UNAUTHENTICATED" in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.splitlines()) == 1, refused.stderr


def test_mutual_tls_refuses_clients_without_a_trusted_certificate(servers, pki, tmp_path):
    url = servers["mtls"].url
    live = lambda channel: pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(  # noqa: E731
        pb.ServerLiveRequest(), timeout=10)
    for client in (None, pki["rogue"]):
        with secure(url, pki, client) as channel:
            assert status_of(lambda: live(channel))[0] == grpc.StatusCode.UNAVAILABLE
    with secure(url, pki, pki["client"]) as channel:
        assert live(channel).live

    np.save(tmp_path / "x.npy", np.zeros((1, 1, 28, 28), np.float32))
    cert, key = pki["client"]
    done = netspec("infer", "lenet", "--input", f"image={tmp_path / 'x.npy'}", "--url", url,
                   "--tls-ca", pki["ca"].cert_file, "--tls-cert", cert, "--tls-key", key, timeout=120)
    assert done.returncode == 0, done.stderr


def test_bad_security_flags_are_one_line_errors(repository, pki, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    cert, key = pki["server"]
    cases = [
        (("--tls-cert", cert), "--tls-cert and --tls-key go together"),
        (("--tls-client-ca", pki["ca"].cert_file), "--tls-client-ca needs --tls-cert"),
        (("--auth-token-file", empty), "holds no token"),
        (("--auth-token-file", tmp_path / "missing.txt"), "missing.txt"),
        (("--tls-cert", key, "--tls-key", cert), "cannot serve"),  # the files swapped
        (("--model-control-mode", "poll"), "invalid choice"),
        (("--strict-readiness", "maybe"), "expected true or false"),
        (("--max-message-bytes", "10"), "--max-message-bytes"),
    ]
    for flags, words in cases:
        done = netspec("serve", "--repository", repository, "--port", "0", "--metrics-port", "0", *flags,
                       timeout=120)
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, (flags, done.stderr)


def test_tokens_file_and_check(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text(TOKENS)
    check = TokenCheck(read_tokens(path))
    check("/inference.GRPCInferenceService/ModelInfer", (("authorization", "Bearer second-token"),))
    check("/grpc.health.v1.Health/Check", ())
    for metadata in ((), (("authorization", "Bearer "),), (("authorization", "bearer first"),)):
        with pytest.raises(Unauthenticated):
            check("/inference.GRPCInferenceService/ServerLive", metadata)
    path.write_text("two words\n")
    with pytest.raises(ValueError, match="spaces"):
        read_tokens(path)


def _dockerfile_instruction(text: str, name: str) -> list[str]:
    """The exec-form array of a Dockerfile instruction (CMD, or HEALTHCHECK's CMD)."""
    import json
    import re

    joined = text.replace("\\\n", " ")
    line = next(line for line in joined.splitlines() if line.startswith(name + " "))
    return json.loads(re.search(r"\[.*\]", line).group(0))


def test_the_container_commands_serve_with_tls_and_tokens_and_pass_their_health_check(repository, pki, tmp_path):
    """No container engine here: the commands the Dockerfile and the compose
    file run are run as they are, with their paths pointed at test files."""
    import shutil
    import subprocess
    import sys

    import yaml

    dockerfile = (ROOT / "Dockerfile").read_text()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["netspec"]
    command = _dockerfile_instruction(dockerfile, "CMD")
    assert compose["command"] == command and "\nUSER netspec\n" in dockerfile and compose["user"] == "netspec"
    assert compose["volumes"] == ["./secrets:/run/secrets/netspec:ro"]

    secrets = tmp_path / "secrets"
    secrets.mkdir()
    shutil.copy(pki["server"][0], secrets / "server.crt")
    shutil.copy(pki["server"][1], secrets / "server.key")
    shutil.copy(pki["ca"].cert_file, secrets / "ca.crt")
    shutil.copy(pki["tokens"], secrets / "tokens.txt")

    def here(argv):
        return [str(a).replace("/run/secrets/netspec", str(secrets)).replace("/models", str(repository))
                for a in argv]

    args = here(command)
    assert args[:2] == ["netspec", "serve"]
    args = args[2:]
    del args[args.index("--repository"):args.index("--repository") + 2]  # Server passes the repository
    del args[args.index("--port"):args.index("--port") + 2]  # and a free port
    server = Server(repository, *args)
    try:
        health = here(_dockerfile_instruction(dockerfile, "HEALTHCHECK --interval=10s --timeout=5s "
                                                          "--start-period=60s --retries=3"))
        health[health.index("--url") + 1] = server.url
        done = subprocess.run([sys.executable if a == "python" else a for a in health], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "SERVING" in done.stdout, done.stdout + done.stderr
        local = "127.0.0.1:" + server.url.rsplit(":", 1)[1]  # it listens on 0.0.0.0; the certificate names 127.0.0.1
        with secure(local, pki) as channel:
            code, _ = status_of(lambda: pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(
                pb.ServerLiveRequest(), timeout=10))
            assert code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        assert server.stop() == 0
