"""Domain errors: plain exceptions, whatever carries them. Services raise these; the gRPC layer ends a failed call
with the status argus.grpc_status gives each class, and the error's message."""

from __future__ import annotations


class ArgusError(Exception):
    """Base class: the message is meant for the person who sent the request."""


def shown(value: str, limit: int = 80) -> str:
    """A caller's value quoted in a message, shortened: an error must not echo whatever size the caller sent."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} characters)"


class InvalidInput(ArgusError):
    """The request itself is wrong: retrying it unchanged cannot succeed."""


class NotFound(ArgusError):
    """What the request names does not exist."""


class AlreadyExists(ArgusError):
    """Creating something whose name is taken, e.g. a collection."""


class Overloaded(ArgusError):
    """The server is at one of its bounds and refuses the excess at once; the caller may retry shortly."""


class DeadlineExceeded(ArgusError):
    """The caller's deadline has passed (or will before the work could be done): the work is not started."""


class ModelUnavailable(ArgusError):
    """A model file is missing or fails its checksum; the message says how to get it."""


class DependencyUnavailable(ArgusError):
    """A service or database this one relies on does not answer; the caller may retry."""
