"""Every public RPC of facedb, detector and jobs as a Connect endpoint that forwards the call to its gRPC service.

The endpoints are built from the protos' service descriptors, not written per method: an RPC added to a proto is
served over HTTP as soon as the gateway runs with the new stubs. The gRPC service does all the work, its
interceptor included (the API key, its scopes and collections, rate limits, bounds on calls and streams, the
request checks), so each RPC has one implementation and HTTP callers meet the same rules as gRPC ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from connectrpc._server_shared import EndpointServerStream, EndpointUnary
from connectrpc.code import Code
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import Endpoint
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from protobuf.wkt import Any as AnyMessage

from argus.client import CHANNEL_OPTIONS, Tls
from argus.config import Settings
from argus.messages import PHOTO_OUTCOMES_KEY
from argus.proto.detector.v1 import detector_pb2
from argus.proto.facedb.v1 import facedb_pb2
from argus.proto.jobs.v1 import jobs_pb2

# The services the gateway serves, by the setting naming where each runs. The embedder stays internal: facedb
# calls it, clients do not.
FORWARDED: dict[str, ServiceDescriptor] = {
    "facedb_address": facedb_pb2.DESCRIPTOR.services_by_name["FaceDatabaseService"],
    "detector_address": detector_pb2.DESCRIPTOR.services_by_name["DetectorService"],
    "jobs_address": jobs_pb2.DESCRIPTOR.services_by_name["JobsService"],
}

# What the gateway serves: unary and response-streaming methods (the package names these classes only privately).
GatewayEndpoint = EndpointUnary[Any, Any] | EndpointServerStream[Any, Any]

# Request headers that go on to the gRPC service as metadata: the API key, in either of the forms it accepts.
FORWARDED_HEADERS = ("authorization", "x-api-key")

# gRPC trailing metadata that carries a message, sent to HTTP callers as a Connect error detail of that type.
DETAIL_MESSAGES: dict[str, type[Message]] = {PHOTO_OUTCOMES_KEY: facedb_pb2.EnrollResponse}

CODE_OF: dict[grpc.StatusCode, Code] = {
    grpc.StatusCode.CANCELLED: Code.CANCELED,
    grpc.StatusCode.UNKNOWN: Code.UNKNOWN,
    grpc.StatusCode.INVALID_ARGUMENT: Code.INVALID_ARGUMENT,
    grpc.StatusCode.DEADLINE_EXCEEDED: Code.DEADLINE_EXCEEDED,
    grpc.StatusCode.NOT_FOUND: Code.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: Code.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED: Code.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Code.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION: Code.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED: Code.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE: Code.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED: Code.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL: Code.INTERNAL,
    grpc.StatusCode.UNAVAILABLE: Code.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS: Code.DATA_LOSS,
    grpc.StatusCode.UNAUTHENTICATED: Code.UNAUTHENTICATED,
}


class Upstreams:
    """One grpc.aio channel per service, opened on first use within the server's event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tls = Tls.from_settings(settings)
        self._channels: dict[str, grpc.aio.Channel] = {}

    def address(self, setting: str) -> str:
        address: str = getattr(self.settings, setting)
        return address

    def channel(self, setting: str) -> grpc.aio.Channel:
        if setting not in self._channels:
            options = [
                *CHANNEL_OPTIONS,
                ("grpc.max_receive_message_length", self.settings.max_message_bytes),
                ("grpc.max_send_message_length", self.settings.max_message_bytes),
            ]
            address = self.address(setting)
            self._channels[setting] = (
                grpc.aio.secure_channel(address, self.tls.credentials(), options=options)
                if self.tls
                else grpc.aio.insecure_channel(address, options=options)
            )
        return self._channels[setting]

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


def forwarded_metadata(ctx: RequestContext[Any, Any]) -> list[tuple[str, str]]:
    headers = ctx.request_headers
    return [(name, value) for name in FORWARDED_HEADERS for value in headers.getall(name)]


def timeout_s(ctx: RequestContext[Any, Any]) -> float | None:
    """The caller's Connect-Timeout-Ms as the gRPC call's deadline; none given, none set (each service bounds its
    own work)."""
    return ctx.timeout_ms / 1000 if ctx.timeout_ms is not None else None


def connect_error(error: grpc.aio.AioRpcError) -> ConnectError:
    """The gRPC status as the Connect error of the same code and message, with the messages its trailing metadata
    carries (an all-or-nothing Enroll's photo outcomes) as details."""
    details = []
    for key, value in error.trailing_metadata() or ():
        message_type = DETAIL_MESSAGES.get(key)
        if message_type is not None and isinstance(value, bytes):
            type_url = f"type.googleapis.com/{message_type.DESCRIPTOR.full_name}"
            details.append(ErrorDetail(AnyMessage(type_url=type_url, value=value)))
    return ConnectError(CODE_OF.get(error.code(), Code.UNKNOWN), error.details() or "", details)


@dataclass(frozen=True)
class Forwarder:
    """How one method reaches its service: the channel's setting and the method's full path."""

    upstreams: Upstreams
    setting: str
    path: str
    request_type: type[Message]
    response_type: type[Message]

    async def unary(self, request: Message, ctx: RequestContext[Any, Any]) -> Message:
        call = self.upstreams.channel(self.setting).unary_unary(
            self.path,
            request_serializer=self.request_type.SerializeToString,
            response_deserializer=self.response_type.FromString,
        )
        try:
            response: Message = await call(request, metadata=forwarded_metadata(ctx), timeout=timeout_s(ctx))
        except grpc.aio.AioRpcError as error:
            raise connect_error(error) from None
        return response

    async def server_stream(self, request: Message, ctx: RequestContext[Any, Any]) -> AsyncIterator[Message]:
        call = self.upstreams.channel(self.setting).unary_stream(
            self.path,
            request_serializer=self.request_type.SerializeToString,
            response_deserializer=self.response_type.FromString,
        )(request, metadata=forwarded_metadata(ctx), timeout=timeout_s(ctx))
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as error:
            raise connect_error(error) from None
        finally:
            call.cancel()  # the HTTP caller left: the service's stream slot is given back at once


def method_info(service: ServiceDescriptor, method: MethodDescriptor) -> MethodInfo[Any, Any]:
    if method.client_streaming:
        raise ValueError(f"{service.full_name}/{method.name} streams requests; the gateway forwards none of those")
    return MethodInfo(
        name=method.name,
        service_name=service.full_name,
        input=message_factory.GetMessageClass(method.input_type),
        output=message_factory.GetMessageClass(method.output_type),
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type=StreamType.SERVER_STREAM if method.server_streaming else StreamType.UNARY,
    )


def forwarding_endpoints(upstreams: Upstreams) -> dict[str, GatewayEndpoint]:
    """`/package.Service/Method` -> the endpoint forwarding it, for every method of the forwarded services."""
    endpoints: dict[str, GatewayEndpoint] = {}
    for setting, service in FORWARDED.items():
        for method in service.methods:
            info = method_info(service, method)
            path = f"/{service.full_name}/{method.name}"
            forwarder = Forwarder(upstreams, setting, path, info.input, info.output)
            endpoints[path] = (
                Endpoint.server_stream(method=info, function=forwarder.server_stream)
                if method.server_streaming
                else Endpoint.unary(method=info, function=forwarder.unary)
            )
    return endpoints
