"""The one place where domain errors become gRPC status codes.

Known errors keep their message; anything else is a bug: it is logged with its
traceback and the caller gets INTERNAL with a generic message, so internals
never leak into responses.
"""

from __future__ import annotations

import logging

import grpc

from service import errors

log = logging.getLogger("netspec.serve")

_CODES: dict[type[errors.ServiceError], grpc.StatusCode] = {
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unsupported: grpc.StatusCode.UNIMPLEMENTED,
    errors.ConfigError: grpc.StatusCode.UNAVAILABLE,
}

INTERNAL_MESSAGE = "internal error while handling the request; the server log has the details"


def status_for(exc: BaseException, method: str = "") -> tuple[grpc.StatusCode, str]:
    """(code, message) to answer for `exc`, raised while handling `method`."""
    for cls in type(exc).__mro__:
        if cls in _CODES:
            return _CODES[cls], str(exc)
    log.error("unexpected error in %s", method or "a call", exc_info=exc)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Answers every exception a handler raises with status_for's code and message."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary_unary(request, context):
                try:
                    return await inner(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:  # noqa: BLE001 - this is the catch-all
                    await context.abort(*status_for(exc, method))

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            inner_stream = handler.stream_stream

            async def stream_stream(request_iterator, context):
                try:
                    async for response in inner_stream(request_iterator, context):
                        yield response
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    await context.abort(*status_for(exc, method))

            return grpc.stream_stream_rpc_method_handler(
                stream_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
