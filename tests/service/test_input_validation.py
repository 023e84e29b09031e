"""Malformed requests, as Triton's L0_input_validation sends them: each gets
INVALID_ARGUMENT, NOT_FOUND or RESOURCE_EXHAUSTED with a clear, short
message, never INTERNAL or UNKNOWN, and the server (its own process, over a
real socket) keeps serving. Requests are sent as bytes through a raw
`channel.unary_unary`, so undecodable ones can be sent too."""

from __future__ import annotations

import random

import grpc
import numpy as np
import pytest

from server_process import ROOT, Server, hostile, write_spec_model
from service.generated import grpc_service_pb2 as pb

TOKENS = hostile().TOKENS_SPEC  # token ids [N, T] -> an embedding of 1,000 -> last step -> 4 scores
MAX_MESSAGE_BYTES = 1 << 20
LONGEST_MESSAGE = 600  # characters: client strings are cut to a hundred in messages


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("validation") / "models"
    write_spec_model(root, (ROOT / "specs" / "lenet.yaml").read_text(), max_batch_size=8)
    write_spec_model(root, TOKENS, max_batch_size=8)
    server = Server(root, "--max-message-bytes", str(MAX_MESSAGE_BYTES))
    yield server
    assert server.stop() == 0
    # What was logged as an error: a model's errors, once per distinct cause; no bug in the server.
    errors = [line for line in server.log().splitlines() if " ERROR " in line]
    assert errors and len(errors) <= 3, errors
    assert all("failed on a request (each cause is logged once)" in line for line in errors), errors


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.url, options=[("grpc.max_send_message_length", 8 << 20)]) as channel:
        yield channel


def call(channel, method: str, data: bytes) -> tuple[grpc.StatusCode, str]:
    try:
        channel.unary_unary(f"/inference.GRPCInferenceService/{method}")(data, timeout=30)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


def infer(model="lenet", name="image", datatype="FP32", shape=(1, 1, 28, 28), raw=None, **fields):
    request = pb.ModelInferRequest(model_name=model, **fields)
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    if raw is None:
        raw = np.zeros(shape, np.float32).tobytes() if np.prod(shape) < 1e6 else b""
    request.raw_input_contents.append(raw)
    return request


def tokens(ids, shape=None):
    ids = np.asarray(ids, np.int64)
    return infer("tokens", "tokens", "INT64", shape or ids.shape, ids.tobytes())


def typed(model, name, datatype, shape, field, values):
    request = pb.ModelInferRequest(model_name=model)
    t = request.inputs.add(name=name, datatype=datatype, shape=shape)
    getattr(t.contents, field).extend(values)
    return request


def with_output(name):
    request = infer()
    request.outputs.add(name=name)
    return request


def stream_of(*messages: bytes):
    return iter(messages)


LONG = "x" * 20_000
INVALID, NOT_FOUND, EXHAUSTED = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                 grpc.StatusCode.RESOURCE_EXHAUSTED)

CASES = [
    # (what, method, request bytes, status, words the message holds)
    ("bytes that are no protobuf", "ModelInfer", b"\xff\xff\xff\xff", INVALID,
     ["not a valid inference.ModelInferRequest"]),
    ("a truncated message", "ModelInfer", infer().SerializeToString()[:-7], INVALID, ["not a valid"]),
    ("undecodable metadata request", "ModelMetadata", b"\x0a\xff", INVALID, ["inference.ModelMetadataRequest"]),
    ("no model name", "ModelInfer", infer(model="").SerializeToString(), NOT_FOUND, ["model ''"]),
    ("a name past 255 bytes", "ModelInfer", infer(model="y" * 300).SerializeToString(), NOT_FOUND,
     ["(300 characters)"]),
    ("a name of 20,000 characters", "ModelInfer", infer(model=LONG).SerializeToString(), NOT_FOUND,
     ["(20,000 characters)"]),
    ("a name with a NUL", "ModelInfer", infer(model="len\0et").SerializeToString(), NOT_FOUND, ["len\\x00et"]),
    ("a path as name", "ModelInfer", infer(model="../lenet").SerializeToString(), NOT_FOUND, ["'../lenet'"]),
    ("a long version", "ModelInfer", infer(model_version=LONG).SerializeToString(), NOT_FOUND,
     ["(20,000 characters)"]),
    ("a long input name", "ModelInfer", infer(name=LONG).SerializeToString(), INVALID, ["(20,000 characters)"]),
    ("a long datatype", "ModelInfer", infer(datatype="Q" * 5000).SerializeToString(), INVALID,
     ["(5,000 characters)", "not supported"]),
    ("shape [0, 2**63 - 1]", "ModelInfer", tokens([], shape=(0, 2**63 - 1)).SerializeToString(), INVALID,
     ["'tokens'", "more than 2,147,483,647 elements"]),
    ("shape [2**62, 2**62]", "ModelInfer", tokens([], shape=(2**62, 2**62)).SerializeToString(), INVALID,
     ["'tokens'", "elements"]),
    ("a negative dimension", "ModelInfer", infer(shape=(1, 1, 28, -28), raw=b"").SerializeToString(), INVALID,
     ["'image'", "[1, 1, 28, -28]"]),
    ("batch size 0", "ModelInfer", infer(shape=(0, 1, 28, 28), raw=b"").SerializeToString(), INVALID,
     ["batch size 0"]),
    ("a huge batch", "ModelInfer", infer(shape=(2**31, 1, 28, 28), raw=b"").SerializeToString(), INVALID,
     ["'image'"]),
    ("many dimensions", "ModelInfer", infer(shape=(1,) * 200, raw=b"\0" * 4).SerializeToString(), INVALID,
     ["(200 dimensions)"]),
    ("raw bytes that do not fit the shape", "ModelInfer", infer(raw=b"\0" * 10).SerializeToString(), INVALID,
     ["'image'", "10 bytes", "3136 bytes"]),
    ("an id past the vocabulary", "ModelInfer", tokens([[1, 2, 1000]]).SerializeToString(), INVALID,
     ["'tokens'", "id 1000", "0 to 999"]),
    ("a negative id", "ModelInfer", tokens([[-1, 2]]).SerializeToString(), INVALID, ["id -1", "0 to 999"]),
    ("typed ids past the vocabulary", "ModelInfer",
     typed("tokens", "tokens", "INT64", [1, 3], "int64_contents", [1, 2**63 - 1, 3]).SerializeToString(),
     INVALID, ["id 9223372036854775807"]),
    ("typed values in the field of another type", "ModelInfer",
     typed("tokens", "tokens", "INT64", [1, 2], "uint_contents", [300, 4]).SerializeToString(),
     INVALID, ["'tokens'", "contents hold 0 elements"]),
    ("typed contents of the wrong count", "ModelInfer",
     typed("lenet", "image", "FP32", [1, 1, 28, 28], "fp32_contents", [1.5] * 10).SerializeToString(),
     INVALID, ["10 elements", "784"]),
    ("typed FP16", "ModelInfer",
     typed("lenet", "image", "FP16", [1, 1, 28, 28], "fp32_contents", [1.5] * 784).SerializeToString(),
     INVALID, ["raw_input_contents"]),
    ("a sequence the model cannot run on", "ModelInfer", tokens([], shape=(1, 0)).SerializeToString(), INVALID,
     ["model 'tokens' cannot run on this request"]),
    ("a long output name", "ModelInfer", with_output(LONG).SerializeToString(), INVALID,
     ["requested output", "(20,000 characters)"]),
    ("metadata of a long name", "ModelMetadata", pb.ModelMetadataRequest(name=LONG).SerializeToString(),
     NOT_FOUND, ["(20,000 characters)"]),
    ("statistics of a long name", "ModelStatistics", pb.ModelStatisticsRequest(name=LONG).SerializeToString(),
     NOT_FOUND, ["(20,000 characters)"]),
    ("a request past --max-message-bytes", "ModelInfer",
     infer(model="x", raw=b"\0" * (MAX_MESSAGE_BYTES + 10)).SerializeToString(), EXHAUSTED, ["larger than max"]),
]


@pytest.mark.parametrize("what,method,data,code,words", CASES, ids=[c[0] for c in CASES])
def test_a_malformed_request_gets_a_clear_status(channel, what, method, data, code, words):
    got, message = call(channel, method, data)
    assert got == code, (got, message)
    for word in words:
        assert word in message, message
    assert len(message) < LONGEST_MESSAGE, message
    assert "Error" not in message and "Exception" not in message, message  # no Python type names
    assert call(channel, "ModelInfer", infer().SerializeToString())[0] == grpc.StatusCode.OK


def test_an_undecodable_message_in_a_stream_ends_it_invalid_after_the_answers_before_it(channel):
    stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
    answers = stream(stream_of(infer(id="first").SerializeToString(), b"\xff\xff"), timeout=30)
    with pytest.raises(grpc.RpcError) as info:
        for answer in answers:
            response = pb.ModelStreamInferResponse.FromString(answer)
            assert response.infer_response.id == "first" and not response.error_message
    assert info.value.code() == INVALID and "not a valid inference.ModelInferRequest" in info.value.details()


def test_fuzzed_requests_never_get_internal_or_unknown(channel):
    # bench/hostile.py's fuzzer (python bench/hostile.py fuzz sends 12,000).
    answered = {}
    for method, data in hostile().fuzzed_calls(random.Random(1), 600):
        code, message = call(channel, method, data)
        answered[code] = answered.get(code, 0) + 1
        assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), message
        assert len(message) < LONGEST_MESSAGE, message
    assert answered.get(INVALID, 0) > 100 and answered.get(NOT_FOUND, 0) > 50, answered
