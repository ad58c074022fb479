"""Domain errors. Services raise these; the gRPC layer maps each to one status code with its message."""

from __future__ import annotations

import grpc


class ArgusError(Exception):
    """Base class: the message is meant for the person who sent the request."""

    status: grpc.StatusCode = grpc.StatusCode.INTERNAL


class InvalidInput(ArgusError):
    status = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ArgusError):
    status = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ArgusError):
    """Creating something whose name is taken, e.g. a collection."""

    status = grpc.StatusCode.ALREADY_EXISTS


class Overloaded(ArgusError):
    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class ModelUnavailable(ArgusError):
    """A model file is missing or fails its checksum; the message says how to get it."""

    status = grpc.StatusCode.FAILED_PRECONDITION


class DependencyUnavailable(ArgusError):
    """A service or database this one relies on does not answer; the caller may retry."""

    status = grpc.StatusCode.UNAVAILABLE
