"""Errors of the inference service, in domain terms.

Each class says what went wrong, not how a transport reports it: the mapping
to gRPC status codes lives in one place, service/status.py.
"""

# Strings a client sent are quoted at most this long in messages and logs:
# an error must never grow with the request (gRPC refuses status messages
# past 16 KB, and logs are read by people).
QUOTE_CHARS = 100


def shown(value: object, limit: int = QUOTE_CHARS) -> str:
    """A client's string as messages quote it: cut, control characters escaped."""
    text = str(value)
    cut = text[:limit]
    cut = "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)
    return cut + (f"... ({len(text):,} characters)" if len(text) > limit else "")


class ServiceError(Exception):
    """A request the service refuses, with a message meant for the caller."""


class NotFound(ServiceError):
    """The model, or the version of it, is not in the repository."""


class AlreadyExists(ServiceError):
    """The name is taken: a shared memory region registered twice."""


class InvalidInput(ServiceError):
    """The request does not match the model: input names, datatypes, shapes, sizes, values."""


class ExecutionError(InvalidInput):
    """The model raised on this request alone, though it passed every check."""


class ResourceExhausted(ServiceError):
    """The request or its response is larger than the server accepts, or memory ran out."""


class Unavailable(ServiceError):
    """The model exists but cannot serve now: failed to load, unloaded, shutting down."""


class ShuttingDown(Unavailable):
    """The server is draining: it finishes the calls it has and takes no new ones."""


class Unauthenticated(ServiceError):
    """The call carries no valid token."""


class Unsupported(ServiceError):
    """A protocol feature netspec does not implement."""


class ConfigError(ServiceError):
    """A model's config.pbtxt or stored artifact cannot be used. `detail`,
    when set, is the full story for the server log, which the message (what
    clients see) leaves out."""

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.detail = detail


class ControlDisabled(Unavailable):
    """Loading and unloading over the protocol is off (--model-control-mode none)."""


class SharedMemoryDisabled(Unavailable):
    """Client shared memory is off (--allow-client-shm false)."""
