"""Captured CUDA graphs for a set of batch sizes; a batch is padded up to the
next captured size and its rows are sliced back out.

A CUDA graph replays a fixed sequence of kernels on fixed memory, without
the Python and launch overhead of running the module (at batch 1 that
overhead is most of the time). One graph is captured per batch size, on
static input buffers, largest first and all in one memory pool, so the
smaller ones reuse the largest one's memory. A batch of n samples is copied
into the first n rows of the smallest captured size that holds it and has
its other dimensions; the rows after n are zeroed, so no earlier caller's
data enters a computation; the graph is replayed and the first n rows of
each output are copied out, since the next replay overwrites them. A batch
no graph fits is left to the caller (run() returns None), which runs it
eagerly. Padding relies on what dynamic batching relies on already: the
samples of a batch do not affect each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

# capture(fn, static_inputs) -> (replay, static_outputs): after replay(), the
# static outputs hold fn's outputs for what the static inputs hold.
Capture = Callable[[Callable, list[torch.Tensor]], tuple[Callable[[], None], tuple[torch.Tensor, ...]]]

WARM_UP_RUNS = 3  # cuDNN's algorithm search, the allocator and torch.compile settle before capture


def cuda_capture() -> Capture:
    """torch.cuda.CUDAGraph capture, with one memory pool for all the graphs it captures."""
    pool = torch.cuda.graph_pool_handle()

    def capture(fn: Callable, inputs: list[torch.Tensor]):
        # Warm up on a side stream, as torch.cuda.graphs' documentation asks.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARM_UP_RUNS):
                fn(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: models that serve or load meanwhile, in threads of
        # their own, are not hit by the capture's ban on synchronising calls
        # (the default, global, fails theirs).
        with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
            outputs = fn(*inputs)
        return graph.replay, _as_tuple(outputs)

    return capture


def _as_tuple(outputs) -> tuple[torch.Tensor, ...]:
    return (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)


@dataclass
class _Graph:
    batch_size: int
    inputs: list[torch.Tensor]
    outputs: tuple[torch.Tensor, ...]
    replay: Callable[[], None]


class PaddedGraphs:
    """Graphs of `fn` captured at each batch size of `sizes`, on the inputs
    `make_inputs(batch_size)` allocates (their dtypes, devices, memory
    formats and dimensions past the batch one are what a batch must have)."""

    def __init__(self, fn: Callable, sizes: Sequence[int], make_inputs: Callable[[int], list[torch.Tensor]],
                 capture: Capture):
        self.graphs: list[_Graph] = []
        with torch.inference_mode():
            for size in sorted(set(sizes), reverse=True):
                inputs = make_inputs(size)
                replay, outputs = capture(fn, inputs)
                self.graphs.append(_Graph(size, inputs, outputs, replay))
        self.graphs.reverse()  # smallest first: run() takes the first that fits

    @property
    def sizes(self) -> list[int]:
        return [g.batch_size for g in self.graphs]

    def _fitting(self, args: Sequence[torch.Tensor]) -> _Graph | None:
        n = args[0].shape[0]
        for graph in self.graphs:
            if graph.batch_size >= n and all(
                x.shape[1:] == s.shape[1:] and x.dtype == s.dtype for x, s in zip(args, graph.inputs)
            ):
                return graph
        return None

    @torch.inference_mode()  # the static buffers are inference tensors
    def run(self, args: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...] | None:
        """The outputs of `fn(*args)` through the graph that fits, or None
        when none does. `args` are on the graphs' device, batch dimension first."""
        graph = self._fitting(args)
        if graph is None:
            return None
        n = args[0].shape[0]
        for x, static in zip(args, graph.inputs):
            static[:n].copy_(x)
            if n < graph.batch_size:
                static[n:].zero_()
        graph.replay()
        return tuple(y[:n].clone() for y in graph.outputs)
