"""deploy/'s Kubernetes and KServe files, read as the cluster would: the
fields KServe and Kubernetes act on, and the netspec command lines they run
parsed by netspec's own argument parser. (There is no cluster here; a
cluster's admission checks are not run.)"""
from __future__ import annotations


import pytest
import yaml

from compiler.cli import _parser

from common import ROOT

DEPLOY = ROOT / "deploy"


def documents(relative: str) -> dict[str, dict]:
    """{kind: document} of a YAML file (one document per kind here)."""
    docs = [d for d in yaml.safe_load_all((DEPLOY / relative).read_text()) if d]
    kinds = {d["kind"]: d for d in docs}
    assert len(kinds) == len(docs), f"{relative}: two documents of one kind"
    return kinds


def serve_args(container: dict):
    """The container's command line, parsed by `netspec`'s parser."""
    assert container["command"] == ["netspec"]
    args = _parser()[0].parse_args(container["args"])
    assert args.command == "serve"
    # Plaintext inside the cluster: nobody there may load or unload models.
    assert args.model_control_mode == "none"
    return args


def test_every_deploy_file_is_read_here():
    files = {str(p.relative_to(DEPLOY)) for p in DEPLOY.rglob("*.yaml")}
    assert files == {"kserve/inferenceservice-triton.yaml", "kserve/servingruntime-netspec.yaml",
                     "kserve/inferenceservice-netspec.yaml", "kubernetes/netspec.yaml"}


def test_inference_service_on_the_stock_triton_runtime():
    isvc = documents("kserve/inferenceservice-triton.yaml")["InferenceService"]
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    model = isvc["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "triton"  # selects KServe's kserve-tritonserver runtime
    assert "runtime" not in model  # the stock one, chosen by format
    assert model["storageUri"].split("://")[0] in ("pvc", "gs", "s3", "https", "hf")
    # KServe's convention for gRPC: one port named h2c
    (port,) = model["ports"]
    assert port["name"] == "h2c" and port["protocol"] == "TCP" and isinstance(port["containerPort"], int)
    assert str(model["runtimeVersion"]).endswith("-py3")  # a tag of nvcr.io/nvidia/tritonserver


def test_serving_runtime_runs_netspec_serve_on_its_grpc_port():
    runtime = documents("kserve/servingruntime-netspec.yaml")["ServingRuntime"]
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    spec = runtime["spec"]
    assert "grpc-v2" in spec["protocolVersions"]
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container"  # the name KServe injects the model mount into
    args = serve_args(container)
    assert str(args.repository) == "/mnt/models"  # where KServe's storage initializer puts storageUri
    assert args.host == "0.0.0.0"
    (port,) = container["ports"]
    assert port["name"] == "h2c" and port["containerPort"] == args.port
    assert container["readinessProbe"]["grpc"]["port"] == args.port

    isvc = documents("kserve/inferenceservice-netspec.yaml")["InferenceService"]
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] in {f["name"] for f in spec["supportedModelFormats"]}


def test_deployment_and_service_of_netspec_replicas():
    kinds = documents("kubernetes/netspec.yaml")
    deployment, service = kinds["Deployment"], kinds["Service"]
    spec = deployment["spec"]
    assert spec["replicas"] > 1
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = spec["template"]["spec"]["containers"]
    args = serve_args(container)
    assert args.host == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == args.port
    assert container["readinessProbe"]["grpc"]["port"] == args.port  # grpc.health.v1, SERVING once loaded
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] > args.grace
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in ports
    # the image the Dockerfile builds and docker-compose.yml names
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert container["image"] == compose["services"]["netspec"]["image"]
    assert "/models" in (ROOT / "Dockerfile").read_text() and str(args.repository) == "/models"


@pytest.mark.parametrize("relative", ["kserve/inferenceservice-triton.yaml", "kserve/servingruntime-netspec.yaml",
                                      "kserve/inferenceservice-netspec.yaml", "kubernetes/netspec.yaml"])
def test_names_are_valid_kubernetes_names(relative):
    import re

    for doc in documents(relative).values():
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
