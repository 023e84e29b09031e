"""Where every call passes: domain errors become gRPC status codes, requests
that do not decode are refused, and the optional token check and the
shutdown drain (service/auth.py, service/lifecycle.py) are applied.

Known errors keep their message; anything else is a bug: it is logged with its
traceback and the caller gets INTERNAL with a generic message, so internals
never leak into responses.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable

import grpc

from service import errors
from service.auth import HEALTH_PREFIX
from service.lifecycle import Lifecycle

log = logging.getLogger("netspec.serve")

_CODES: dict[type[errors.ServiceError], grpc.StatusCode] = {
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.Unsupported: grpc.StatusCode.UNIMPLEMENTED,
    errors.ConfigError: grpc.StatusCode.UNAVAILABLE,
}

INTERNAL_MESSAGE = "internal error while handling the request; the server log has the details"
# Every message is built with client strings cut (errors.shown); this is the
# backstop: gRPC fails a call whose status message passes 16 KB.
MAX_MESSAGE_CHARS = 2000


def status_for(exc: BaseException, method: str = "") -> tuple[grpc.StatusCode, str]:
    """(code, message) to answer for `exc`, raised while handling `method`."""
    for cls in type(exc).__mro__:
        if cls in _CODES:
            message = str(exc)
            if len(message) > MAX_MESSAGE_CHARS:
                message = message[:MAX_MESSAGE_CHARS] + "..."
            return _CODES[cls], message
    log.error("unexpected error in %s", method or "a call", exc_info=exc)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE


class Undecodable:
    """Stands for a request message that did not parse: the handler refuses
    it with INVALID_ARGUMENT, where gRPC would answer UNKNOWN and print the
    parser's exception."""

    def __init__(self, message_type: str):
        self.message_type = message_type

    def error(self) -> errors.InvalidInput:
        return errors.InvalidInput(f"the request is not a valid {self.message_type} protobuf message")


def _safe_deserializer(deserialize):
    if deserialize is None:
        return None
    owner = getattr(deserialize, "__self__", None)  # Message.FromString is a class method
    message_type = getattr(getattr(owner, "DESCRIPTOR", None), "full_name", "request")

    def safe(data: bytes):
        try:
            return deserialize(data)
        except Exception:  # noqa: BLE001 - any parse failure is the sender's
            return Undecodable(message_type)

    return safe


def _checked(request):
    if isinstance(request, Undecodable):
        raise request.error()
    return request


async def _checked_stream(requests):
    async for request in requests:
        yield _checked(request)


class Guard(grpc.aio.ServerInterceptor):
    """Wraps every handler. Health (grpc.health.v1) is never refused: probes
    need it without a token and during shutdown, when it says NOT_SERVING."""

    def __init__(self, lifecycle: Lifecycle | None = None,
                 authenticate: Callable[[str, object], None] | None = None):
        self.lifecycle = lifecycle
        self.authenticate = authenticate
        # Each method's wrapped handler, built at its first call: building
        # one per call cost more than the rest of the interceptor.
        self._wrapped: dict[str, tuple[object, object]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if self.authenticate is not None:
            try:
                self.authenticate(method, handler_call_details.invocation_metadata)
            except errors.ServiceError as exc:
                return _refusal(handler, *status_for(exc, method))  # the request is never decoded
        inner, wrapped = self._wrapped.get(method, (None, None))
        if inner is not handler:
            tracked = self.lifecycle is not None and not method.startswith(HEALTH_PREFIX)
            wrapped = _rebuild(handler, lambda inner, streaming_request: self._guard(inner, method, tracked,
                                                                                      streaming_request))
            self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _guard(self, inner, method: str, tracked: bool, streaming_request: bool):
        # The try blocks are written out in each wrapper rather than shared
        # through a context manager: this runs on every call.
        check = _checked_stream if streaming_request else _checked
        lifecycle = self.lifecycle
        if inspect.isasyncgenfunction(inner):
            async def generator(request, context):
                try:
                    with lifecycle.call() if tracked else contextlib.nullcontext():
                        async for response in inner(check(request), context):
                            yield response
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:  # noqa: BLE001 - this is the catch-all
                    await context.abort(*status_for(exc, method))

            return generator

        async def coroutine(request, context):
            try:
                with lifecycle.call() if tracked else contextlib.nullcontext():
                    return await inner(check(request), context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - this is the catch-all
                await context.abort(*status_for(exc, method))

        return coroutine


_KINDS = (
    ("unary_unary", False, grpc.unary_unary_rpc_method_handler),
    ("unary_stream", False, grpc.unary_stream_rpc_method_handler),
    ("stream_unary", True, grpc.stream_unary_rpc_method_handler),
    ("stream_stream", True, grpc.stream_stream_rpc_method_handler),
)


def _rebuild(handler, wrap, deserialize=True):
    """The same handler with its behaviour wrapped and a deserializer that never raises."""
    for kind, streaming_request, make in _KINDS:
        inner = getattr(handler, kind)
        if inner is not None:
            return make(wrap(inner, streaming_request),
                        request_deserializer=_safe_deserializer(handler.request_deserializer) if deserialize else None,
                        response_serializer=handler.response_serializer)
    return handler


def _refusal(handler, code: grpc.StatusCode, message: str):
    """A handler of the same kind that answers `code` without reading the request."""
    def wrap(inner, streaming_request):
        async def refuse(request, context):
            await context.abort(code, message)

        return refuse

    return _rebuild(handler, wrap, deserialize=False)
