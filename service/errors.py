"""Errors of the inference service, in domain terms.

Each class says what went wrong, not how a transport reports it: the mapping
to gRPC status codes lives in one place, service/status.py.
"""


class ServiceError(Exception):
    """A request the service refuses, with a message meant for the caller."""


class NotFound(ServiceError):
    """The model, or the version of it, is not in the repository."""


class InvalidInput(ServiceError):
    """The request does not match the model: input names, datatypes, shapes, sizes."""


class Unavailable(ServiceError):
    """The model exists but cannot serve now: failed to load, unloaded, shutting down."""


class Unsupported(ServiceError):
    """A protocol feature netspec does not implement."""


class ConfigError(ServiceError):
    """A model's config.pbtxt or stored artifact cannot be used."""
