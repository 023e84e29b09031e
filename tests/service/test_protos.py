"""The generated code is up to date with protos/, and the protocol matches
Triton's own definitions (as shipped in tritonclient) field for field."""

from __future__ import annotations

import importlib.metadata
import re

import pytest

from compiler.protocol.generated import model_config_pb2
from service import protos_gen
from service.generated import grpc_service_pb2


def test_generated_code_is_up_to_date():
    header = (protos_gen.folder("service.generated") / "grpc_service_pb2_grpc.py").read_text()
    generated_with = re.search(r"GRPC_GENERATED_VERSION = '([^']+)'", header).group(1)
    installed = importlib.metadata.version("grpcio-tools")
    if installed != generated_with:
        pytest.skip(f"grpcio-tools {installed} differs from {generated_with}, which made service/generated/")
    files = protos_gen.generate()
    assert {str(p.parent) for p in files} == {"compiler/protocol/generated", "service/generated"}
    assert protos_gen.stale_files(files) == [], "run: python -m service.protos_gen"
    for path in files:  # the check sees an edit in either home
        assert protos_gen.stale_files({path: files[path] + "# edited\n"}) == [str(path)]


def _fields(message) -> dict[str, tuple]:
    return {
        f.name: (f.number, f.type, f.is_repeated, f.message_type.name if f.message_type else None)
        for f in message.fields
    }


def _messages(file):
    def walk(messages):
        for m in messages:
            yield m
            yield from walk(m.nested_types)

    return {m.full_name: m for m in walk(file.message_types_by_name.values())}


@pytest.mark.parametrize("ours_module,theirs_name", [
    (grpc_service_pb2, "service_pb2"), (model_config_pb2, "model_config_pb2"),
])
def test_messages_match_triton(ours_module, theirs_name):
    theirs_module = pytest.importorskip(f"tritonclient.grpc.{theirs_name}")
    ours, theirs = _messages(ours_module.DESCRIPTOR), _messages(theirs_module.DESCRIPTOR)
    for name, message in ours.items():
        assert name in theirs, f"{name} is not a Triton message"
        their_fields = _fields(theirs[name])
        for field, signature in _fields(message).items():
            assert their_fields.get(field) == signature, f"{name}.{field}: ours {signature}, Triton's {their_fields.get(field)}"
    if ours_module is grpc_service_pb2:  # every message of the service, none left out
        assert set(theirs) == set(ours)


def test_service_matches_triton():
    theirs_module = pytest.importorskip("tritonclient.grpc.service_pb2")
    ours = grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = theirs_module.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert ours.full_name == theirs.full_name == "inference.GRPCInferenceService"
    signature = lambda s: {m.name: (m.input_type.full_name, m.output_type.full_name, m.client_streaming,
                                    m.server_streaming) for m in s.methods}
    assert signature(ours) == signature(theirs)
