"""Domain errors. Services raise these; the gRPC layer maps each to one status code with its message."""

from __future__ import annotations

import grpc

# A status message travels in a response header, and headers have a size limit (8 KiB by default): a message over it
# turns the intended status into RESOURCE_EXHAUSTED. Messages are cut to this many bytes before they are sent.
MAX_MESSAGE_BYTES = 1000


class ArgusError(Exception):
    """Base class: the message is meant for the person who sent the request."""

    status: grpc.StatusCode = grpc.StatusCode.INTERNAL


def status_message(text: str) -> str:
    """The message as sent: at most MAX_MESSAGE_BYTES of UTF-8 (percent-encoding on the wire at most triples it)."""
    encoded = text.encode()
    if len(encoded) <= MAX_MESSAGE_BYTES:
        return text
    return encoded[: MAX_MESSAGE_BYTES - 20].decode(errors="ignore") + f"... ({len(encoded)} bytes)"


def shown(value: str, limit: int = 80) -> str:
    """A caller's value quoted in a message, shortened: an error must not echo whatever size the caller sent."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} characters)"


class InvalidInput(ArgusError):
    status = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ArgusError):
    status = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ArgusError):
    """Creating something whose name is taken, e.g. a collection."""

    status = grpc.StatusCode.ALREADY_EXISTS


class Overloaded(ArgusError):
    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(ArgusError):
    """The caller's deadline has passed (or will before the work could be done): the work is not started."""

    status = grpc.StatusCode.DEADLINE_EXCEEDED


class ModelUnavailable(ArgusError):
    """A model file is missing or fails its checksum; the message says how to get it."""

    status = grpc.StatusCode.FAILED_PRECONDITION


class DependencyUnavailable(ArgusError):
    """A service or database this one relies on does not answer; the caller may retry."""

    status = grpc.StatusCode.UNAVAILABLE
