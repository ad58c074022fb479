"""GatewayService/GetStackStatus: every service's health and what it runs, as the console's status page shows it."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import Endpoint
from grpc_health.v1 import health_pb2, health_pb2_grpc

from argus.proto.common.v1 import status_pb2, status_pb2_grpc
from argus.proto.gateway.v1 import gateway_pb2
from argus.services.gateway.forwarding import GatewayEndpoint, Upstreams, connect_error, forwarded_metadata

# Every service of the stack by the setting naming where it runs, the embedder included (facedb's dependency).
STACK = {
    "detector": "detector_address",
    "embedder": "embedder_address",
    "facedb": "facedb_address",
    "jobs": "jobs_address",
}
PROBE_TIMEOUT_S = 3.0
UNREACHABLE = "UNREACHABLE"
GATEWAY_SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"]


async def service_state(
    upstreams: Upstreams, name: str, setting: str, metadata: list[tuple[str, str]]
) -> gateway_pb2.ServiceState:
    """A service's health answer and, once it answers, its own status, asked with the caller's key (so a refused
    key is refused here as it would be there)."""
    channel = upstreams.channel(setting)
    state = gateway_pb2.ServiceState(name=name, address=upstreams.address(setting))
    try:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=PROBE_TIMEOUT_S
        )
    except grpc.aio.AioRpcError as error:
        state.health = UNREACHABLE
        state.detail = error.details() or error.code().name
        return state
    state.health = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)
    try:
        status = await status_pb2_grpc.StatusServiceStub(channel).GetServerStatus(
            status_pb2.GetServerStatusRequest(), metadata=metadata, timeout=PROBE_TIMEOUT_S
        )
    except grpc.aio.AioRpcError as error:
        if error.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            raise connect_error(error) from None
        state.detail = error.details() or error.code().name
        return state
    state.status.CopyFrom(status)
    return state


def stack_status_endpoint(upstreams: Upstreams) -> dict[str, GatewayEndpoint]:
    async def get_stack_status(
        request: gateway_pb2.GetStackStatusRequest, ctx: RequestContext[Any, Any]
    ) -> gateway_pb2.StackStatus:
        metadata = forwarded_metadata(ctx)
        states = await asyncio.gather(
            *(service_state(upstreams, name, setting, metadata) for name, setting in STACK.items())
        )
        if not any(state.HasField("status") for state in states):
            # No service took the caller's key (none answered): health alone, nothing of the inside of the stack.
            for state in states:
                state.ClearField("address")
                state.ClearField("detail")
        return gateway_pb2.StackStatus(services=states)

    method = MethodInfo(
        name="GetStackStatus",
        service_name=GATEWAY_SERVICE.full_name,
        input=gateway_pb2.GetStackStatusRequest,
        output=gateway_pb2.StackStatus,
        idempotency_level=IdempotencyLevel.NO_SIDE_EFFECTS,
        stream_type=StreamType.UNARY,
    )
    return {f"/{GATEWAY_SERVICE.full_name}/GetStackStatus": Endpoint.unary(method=method, function=get_stack_status)}
