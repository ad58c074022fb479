"""The one table between domain errors and gRPC status codes.

The domain raises plain exceptions (argus.errors); the server layer ends a failed call with the status this table
gives, and a client of another Argus service turns the status it receives back into the same exception, so an error
crosses a hop unchanged.
"""

from __future__ import annotations

import grpc

from argus.errors import (
    AlreadyExists,
    ArgusError,
    DeadlineExceeded,
    DependencyUnavailable,
    InvalidInput,
    ModelUnavailable,
    NotFound,
    Overloaded,
)
from argus.keys import KeysFileError, PermissionDenied, Unauthenticated

STATUS_OF: dict[type[ArgusError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    ModelUnavailable: grpc.StatusCode.FAILED_PRECONDITION,
    DependencyUnavailable: grpc.StatusCode.UNAVAILABLE,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    KeysFileError: grpc.StatusCode.FAILED_PRECONDITION,
}

# A status message travels in a response header, and headers have a size limit (8 KiB by default): a message over it
# turns the intended status into RESOURCE_EXHAUSTED. Messages are cut to this many bytes before they are sent.
MAX_MESSAGE_BYTES = 1000


def status_of(error: ArgusError) -> grpc.StatusCode:
    """The status a call that raised this error ends with: that of its nearest listed class, INTERNAL for others."""
    for kind in type(error).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return grpc.StatusCode.INTERNAL


def status_message(text: str) -> str:
    """The message as sent: at most MAX_MESSAGE_BYTES of UTF-8 (percent-encoding on the wire at most triples it)."""
    encoded = text.encode()
    if len(encoded) <= MAX_MESSAGE_BYTES:
        return text
    return encoded[: MAX_MESSAGE_BYTES - 20].decode(errors="ignore") + f"... ({len(encoded)} bytes)"


# The statuses a dependency's failure keeps when it is passed on to this service's caller: the caller's own mistake,
# an overload, a missing model, the caller's deadline. Any other status means the dependency itself failed.
PASSED_ON: dict[grpc.StatusCode, type[ArgusError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Overloaded,
    grpc.StatusCode.FAILED_PRECONDITION: ModelUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def error_from_dependency(service: str, address: str, error: grpc.RpcError) -> ArgusError:
    """The domain error for a failed call to another service: its own error passed on where the caller can act on it
    (PASSED_ON), DependencyUnavailable otherwise."""
    code, details = error.code(), error.details()
    passed_on = PASSED_ON.get(code)
    if passed_on is not None:
        return passed_on(details or "")
    return DependencyUnavailable(f"the {service} at {address} failed: {code.name}: {details}")
