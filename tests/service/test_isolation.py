"""A request can only fail itself. The poisoning scenario: good clients and
one bad one share a model with dynamic batching, on a server in its own
process. Ids past an embedding's vocabulary are refused before batching;
lengths past a sequence's end (which only the model finds out) make the
batch raise, and then each request runs alone. The good clients lose
nothing, the bad one hears what was wrong, and the log holds one error."""

from __future__ import annotations

import asyncio
import collections
import time

import grpc
import numpy as np
import pytest

from server_process import Server, hostile, write_spec_model
from service.generated import grpc_service_pb2 as pb
from service.generated import grpc_service_pb2_grpc as pb_grpc

TOKENS = hostile().TOKENS_SPEC  # an embedding of 1,000 ids
# A GRU over padded sequences with their lengths: a length past T fails
# inside torch's pack_padded_sequence, for the whole batch it is part of.
PACKED = """name: packed
inputs: {tokens: {shape: [N, T], dtype: int64}, lengths: {shape: [N], dtype: int64}}
nodes:
  embed: {op: embedding, num_embeddings: 100, embedding_dim: 8, in: tokens}
  rnn: {op: gru, hidden_size: 8, in: [embed, lengths]}
  last: {op: last_step}
outputs: {h: last}
"""
SECONDS = 3.0


def request(model: str, ids, lengths=None) -> pb.ModelInferRequest:
    r = pb.ModelInferRequest(model_name=model)
    ids = np.asarray(ids, np.int64)
    r.inputs.add(name="tokens", datatype="INT64", shape=ids.shape)
    r.raw_input_contents.append(ids.tobytes())
    if lengths is not None:
        r.inputs.add(name="lengths", datatype="INT64", shape=[len(lengths)])
        r.raw_input_contents.append(np.asarray(lengths, np.int64).tobytes())
    return r


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("isolation") / "models"
    write_spec_model(root, TOKENS, max_batch_size=32)
    write_spec_model(root, PACKED, max_batch_size=32)
    server = Server(root, "--log-level", "debug")
    yield server
    assert server.stop() == 0


def test_good_clients_lose_nothing_beside_a_bad_one(server):
    rng = np.random.default_rng(0)
    good, bad = collections.Counter(), collections.Counter()
    messages = collections.Counter()

    async def client(make, tally):
        async with grpc.aio.insecure_channel(server.url) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            stop = time.monotonic() + SECONDS
            while time.monotonic() < stop:
                try:
                    await stub.ModelInfer(make(), timeout=30)
                    tally["OK"] += 1
                except grpc.aio.AioRpcError as e:
                    tally[e.code().name] += 1
                    messages[e.details()] += 1

    good_tokens = lambda: request("tokens", rng.integers(0, 1000, (1, 8)))  # noqa: E731
    bad_tokens = lambda: request("tokens", [[5, 1234, 7]])  # noqa: E731
    good_packed = lambda: request("packed", rng.integers(0, 100, (1, 5)), [int(rng.integers(1, 6))])  # noqa: E731
    bad_packed = lambda: request("packed", rng.integers(0, 100, (1, 5)), [9])  # noqa: E731

    async def everyone():
        await asyncio.gather(*[client(good_tokens, good) for _ in range(4)],
                             *[client(good_packed, good) for _ in range(4)],
                             client(bad_tokens, bad), client(bad_packed, bad))

    asyncio.run(everyone())
    assert good["OK"] > 100 and set(good) == {"OK"}, good
    assert set(bad) == {"INVALID_ARGUMENT"} and bad["INVALID_ARGUMENT"] > 20, bad
    assert set(messages) == {
        "input 'tokens': id 1234 is out of range: the model's vocabulary has ids 0 to 999",
        "model 'packed' cannot run on this request: start (5) + length (1) exceeds dimension size (5).",
    }, messages
    log = server.log()
    assert "running each alone" in log  # bad requests did share batches with good ones
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "model 'packed' failed on a request" in errors[0], errors
