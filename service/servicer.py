"""GRPCInferenceService: translates protobuf messages to and from the domain
(repository, inference) and does nothing else. Errors are raised as domain
exceptions and mapped to status codes by service.status.
"""

from __future__ import annotations

import asyncio

from compiler.protocol.datatypes import BY_KSERVE
from service import __version__
from service.codec import encode_raw
from service.errors import ControlDisabled, InvalidInput, ServiceError, ShuttingDown, Unsupported, shown
from service.generated import grpc_service_pb2 as pb
from service.generated import grpc_service_pb2_grpc as pb_grpc
from service.inference import Inference, InferRequest, InferResponse, InputTensor
from service.options import ServeOptions
from service.readiness import Readiness
from service.repository import Repository, State
from service.shared_memory import Placement, SharedMemory
from service.status import status_for

SERVER_NAME = "netspec"
# The KServe v2 extensions this server really implements.
EXTENSIONS = ("model_repository", "model_configuration", "statistics")


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, repository: Repository, readiness: Readiness, options: ServeOptions | None = None,
                 shared_memory: SharedMemory | None = None):
        options = options or ServeOptions()
        self.repository = repository
        self.shared_memory = shared_memory or SharedMemory(enabled=options.allow_client_shm)
        self.inference = Inference(repository, options.max_message_bytes, self.shared_memory)
        self.readiness = readiness
        self.control_mode = options.model_control_mode

    # --- health and metadata ----------------------------------------------

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.readiness.server_ready())

    async def ModelReady(self, request, context):
        return pb.ModelReadyResponse(ready=self.readiness.model_ready(request.name, request.version))

    async def ServerMetadata(self, request, context):
        extensions = EXTENSIONS + (("system_shared_memory",) if self.shared_memory.enabled else ())
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=__version__, extensions=extensions)

    async def ModelMetadata(self, request, context):
        served = self.repository.get(request.name, request.version)
        entry = self.repository.entry(request.name)
        runtime = served.runtime
        return pb.ModelMetadataResponse(
            name=request.name,
            versions=sorted(entry.versions, key=int),
            platform=entry.config.platform or entry.config.backend or "netspec",
            inputs=[_tensor_metadata(s) for s in runtime.inputs],
            outputs=[_tensor_metadata(s) for s in runtime.outputs],
        )

    async def ModelConfig(self, request, context):
        self.repository.get(request.name, request.version)
        return pb.ModelConfigResponse(config=self.repository.entry(request.name).config)

    async def ModelStatistics(self, request, context):
        if request.name:
            entries = [self.repository.entry(request.name)]
            if request.version:
                self.repository.get(request.name, request.version)
        else:
            entries = list(self.repository.entries.values())
        response = pb.ModelStatisticsResponse()
        for entry in entries:
            for version, stats in sorted(entry.stats.items()):
                if request.version and version != request.version:
                    continue
                response.model_stats.append(_statistics(entry.name, version, stats))
        return response

    # --- inference ----------------------------------------------------------

    async def ModelInfer(self, request, context):
        # No readiness check here: at shutdown the gRPC server itself refuses
        # new calls, and a call it has accepted is in flight and must finish.
        result = await self.inference.infer(infer_request_from_pb(request))
        return infer_response_to_pb(result)

    async def ModelStreamInfer(self, request_iterator, context):
        """Each request runs as it arrives (so they batch together); responses
        are sent as they complete. A failed request answers with error_message
        and the stream goes on. At shutdown the stream reads no more requests,
        sends the responses of those it has, and ends UNAVAILABLE."""
        responses: asyncio.Queue = asyncio.Queue()
        tasks: set[asyncio.Task] = set()
        read_error: list[BaseException] = []
        draining = self.readiness.lifecycle.draining

        async def one(request):
            try:
                response = await self.ModelInfer(request, context)
                await responses.put(pb.ModelStreamInferResponse(infer_response=response))
            except Exception as exc:  # noqa: BLE001 - reported in the stream
                _, message = status_for(exc, "ModelStreamInfer")
                await responses.put(
                    pb.ModelStreamInferResponse(
                        error_message=message,
                        infer_response=pb.ModelInferResponse(
                            model_name=request.model_name, model_version=request.model_version, id=request.id
                        ),
                    )
                )

        async def read():
            try:
                async for request in _until(request_iterator, draining):
                    task = asyncio.create_task(one(request))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            except Exception as exc:  # noqa: BLE001 - a message that did not decode: raised after the rest
                read_error.append(exc)
            await asyncio.gather(*list(tasks))
            await responses.put(None)

        reader = asyncio.create_task(read())
        try:
            while (item := await responses.get()) is not None:
                yield item
            await reader
        finally:
            reader.cancel()
            for task in list(tasks):
                task.cancel()
        if read_error:
            raise read_error[0]
        if draining.is_set():
            raise ShuttingDown("the server is shutting down; the requests sent so far have been answered")

    # --- repository control -------------------------------------------------

    async def RepositoryIndex(self, request, context):
        response = pb.RepositoryIndexResponse()
        for name, version, state, reason in self.repository.index():
            if request.ready and state != State.READY.value:
                continue
            response.models.add(name=name, version=version, state=state, reason=reason)
        return response

    def _check_control(self, what: str) -> None:
        if self.control_mode != "explicit":
            raise ControlDisabled(
                f"{what} is refused: this server runs with --model-control-mode {self.control_mode}; "
                "start it with --model-control-mode explicit to load and unload models over the protocol"
            )

    async def RepositoryModelLoad(self, request, context):
        self._check_control("loading a model")
        if request.parameters:
            raise Unsupported(
                f"RepositoryModelLoad parameters ({shown(', '.join(request.parameters))}) are not supported; "
                "netspec loads the model as stored in the repository"
            )
        await self.repository.load(request.model_name)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request, context):
        self._check_control("unloading a model")
        await self.repository.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()

    # --- system shared memory ----------------------------------------------

    async def SystemSharedMemoryStatus(self, request, context):
        response = pb.SystemSharedMemoryStatusResponse()
        for region in self.shared_memory.status(request.name):
            response.regions[region.name].CopyFrom(pb.SystemSharedMemoryStatusResponse.RegionStatus(
                name=region.name, key=region.key, offset=region.offset, byte_size=region.byte_size))
        return response

    async def SystemSharedMemoryRegister(self, request, context):
        self.shared_memory.register(request.name, request.key, request.offset, request.byte_size)
        return pb.SystemSharedMemoryRegisterResponse()

    async def SystemSharedMemoryUnregister(self, request, context):
        self.shared_memory.unregister(request.name)
        return pb.SystemSharedMemoryUnregisterResponse()

    # --- not implemented ----------------------------------------------------

    CUDA_UNSUPPORTED = ("CUDA shared memory is not supported by netspec; use system shared memory "
                        "(SystemSharedMemoryRegister) or send tensors in the request")

    async def CudaSharedMemoryStatus(self, request, context):
        raise Unsupported(self.CUDA_UNSUPPORTED)

    async def CudaSharedMemoryRegister(self, request, context):
        raise Unsupported(self.CUDA_UNSUPPORTED)

    async def CudaSharedMemoryUnregister(self, request, context):
        # No CUDA region can be registered, so unregistering (all or one) has
        # nothing to do; perf_analyzer unregisters both kinds when it starts
        # and stops, even with --shared-memory system.
        return pb.CudaSharedMemoryUnregisterResponse()

    async def TraceSetting(self, request, context):
        raise Unsupported("trace settings are not supported by netspec")

    async def LogSettings(self, request, context):
        raise Unsupported("log settings are not supported by netspec; use netspec serve --log-level")


async def _until(requests, stop: asyncio.Event):
    """The requests of a stream until `stop` is set."""
    iterator = aiter(requests)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        while True:
            following = asyncio.ensure_future(anext(iterator))
            await asyncio.wait({following, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                following.cancel()
                return
            try:
                yield following.result()
            except StopAsyncIteration:
                return
    finally:
        stopped.cancel()


# --- protobuf <-> domain ------------------------------------------------------


def _tensor_metadata(spec) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(name=spec.name, datatype=spec.dtype.kserve, shape=spec.shape)


def infer_request_from_pb(request: pb.ModelInferRequest) -> InferRequest:
    raw = request.raw_input_contents
    placements = [_placement(t, "input") for t in request.inputs]
    in_messages = sum(p is None for p in placements)
    if raw and len(raw) != in_messages:
        raise InvalidInput(
            f"the request has {in_messages} inputs outside shared memory but {len(raw)} raw_input_contents; "
            "send one raw entry per input (but those in shared memory), in the order of the inputs"
        )
    inputs = []
    sent = iter(raw)
    for t, placement in zip(request.inputs, placements):
        has_contents = t.HasField("contents")
        if placement is not None:
            if has_contents:
                raise InvalidInput(f"input '{shown(t.name)}' names a shared memory region and has typed "
                                   "contents; use one")
            inputs.append(InputTensor(t.name, t.datatype, tuple(t.shape), placement=placement))
            continue
        if raw and has_contents:
            raise InvalidInput(f"input '{shown(t.name)}' has typed contents and the request has "
                               "raw_input_contents; use one")
        if raw:
            inputs.append(InputTensor(t.name, t.datatype, tuple(t.shape), raw=next(sent)))
            continue
        if not has_contents:
            raise InvalidInput(f"input '{shown(t.name)}' has no data: set raw_input_contents or its contents")
        dtype = BY_KSERVE.get(t.datatype)
        if dtype is not None and dtype.contents is None:
            raise InvalidInput(f"input '{shown(t.name)}': {t.datatype} data can only be sent in raw_input_contents")
        values = getattr(t.contents, dtype.contents) if dtype is not None else ()
        inputs.append(InputTensor(t.name, t.datatype, tuple(t.shape), contents=values))
    return InferRequest(
        model=request.model_name,
        version=request.model_version,
        id=request.id,
        inputs=inputs,
        outputs=[o.name for o in request.outputs],
        output_placements={o.name: p for o in request.outputs
                           if (p := _placement(o, "output")) is not None},
    )


SHM_REGION, SHM_OFFSET, SHM_SIZE = "shared_memory_region", "shared_memory_offset", "shared_memory_byte_size"


def _placement(tensor, kind: str) -> Placement | None:
    """The shared memory parameters of an input or requested output (`kind`), as Triton reads them."""
    params = tensor.parameters
    if not params:
        return None
    what = f"{kind} '{shown(tensor.name)}'"  # only a tensor with parameters gets this far
    if SHM_REGION not in params:
        for key in (SHM_OFFSET, SHM_SIZE):
            if key in params:
                raise InvalidInput(f"{what}: '{key}' is set without '{SHM_REGION}'")
        return None
    region = params[SHM_REGION]
    if region.WhichOneof("parameter_choice") != "string_param":
        raise InvalidInput(f"{what}: '{SHM_REGION}' must be a string_param")
    if SHM_SIZE not in params:
        raise InvalidInput(f"{what}: '{SHM_SIZE}' must be given with '{SHM_REGION}'")
    size = _count_param(params[SHM_SIZE], SHM_SIZE, what)
    offset = _count_param(params[SHM_OFFSET], SHM_OFFSET, what) if SHM_OFFSET in params else 0
    return Placement(region.string_param, offset, size)


def _count_param(param, key: str, what: str) -> int:
    kind = param.WhichOneof("parameter_choice")
    if kind not in ("int64_param", "uint64_param"):
        raise InvalidInput(f"{what}: '{key}' must be an int64_param")
    value = getattr(param, kind)
    if value < 0:
        raise InvalidInput(f"{what}: '{key}' is {value}; it cannot be negative")
    return value


def infer_response_to_pb(result: InferResponse) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(model_name=result.model, model_version=result.version, id=result.id)
    for out in result.outputs:
        response.outputs.add(name=out.name, datatype=out.datatype, shape=tuple(out.tensor.shape))
        # An output in shared memory keeps its (empty) entry, as in Triton:
        # clients find an output's raw contents by its position.
        response.raw_output_contents.append(b"" if out.in_shared_memory else encode_raw(out.tensor))
    return response


def _duration(d) -> pb.StatisticDuration:
    return pb.StatisticDuration(count=d.count, ns=d.ns)


def _statistics(name: str, version: str, stats) -> pb.ModelStatistics:
    return pb.ModelStatistics(
        name=name,
        version=version,
        last_inference=stats.last_inference_ms,
        inference_count=stats.inference_count,
        execution_count=stats.execution_count,
        inference_stats=pb.InferStatistics(
            success=_duration(stats.success),
            fail=_duration(stats.fail),
            queue=_duration(stats.queue),
            compute_input=_duration(stats.compute_input),
            compute_infer=_duration(stats.compute_infer),
            compute_output=_duration(stats.compute_output),
        ),
        batch_stats=[
            pb.InferBatchStatistics(
                batch_size=size,
                compute_input=_duration(b.compute_input),
                compute_infer=_duration(b.compute_infer),
                compute_output=_duration(b.compute_output),
            )
            for size, b in sorted(stats.batches.items())
        ],
    )
